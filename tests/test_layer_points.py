"""simulator.layer_points on a FAKE table (tests/test_tables.py's made-up law, never a measurement): a GEMM at a
measured layer shape takes the layer's points, others the grid's, and the best stack's choice stays the grid's."""
import numpy as np
import pytest

from simulator.dispatch import Dispatch
from simulator.layer_points import CONTEXT, ENV
from simulator.tables import BestModel, TableModel
from tests.test_tables import H100, fake_table


@pytest.fixture(autouse=True)
def layers_on(monkeypatch):
    monkeypatch.setenv(ENV, "on")


def with_layers(table: dict, stack: str, n: int, k: int, us: dict[int, float], context: str = CONTEXT) -> dict:
    pts = [{"op": "gemm", "stack": stack, "shape": {"m": m, "n": n, "k": k}, "median_us": t, "context": context}
           for m, t in us.items()]
    return {**table, "gemm_layers": {"points": (table.get("gemm_layers") or {}).get("points", []) + pts}}


def both_stacks(table: dict) -> dict:
    torch_pts = [{**p, "stack": "torch"} for p in table["points"] if p["op"] == "gemm"]
    return {**table, "points": table["points"] + torch_pts}


def test_layer_shape_takes_its_points_inside_its_m_nodes_only():
    base = both_stacks(fake_table())
    table = with_layers(base, "torch", 3000, 5000, {1: 50.0, 4: 80.0})
    grid, layered = TableModel(base, H100, "torch"), TableModel(table, H100, "torch")
    m = np.array([1, 2, 4, 8])
    got = layered.op_time_s("gemm", {"m": m, "n": 3000, "k": 5000}) * 1e6
    np.testing.assert_allclose(got[:3], [50.0, 60.0, 80.0])
    assert got[3] == pytest.approx(grid.op_time_s("gemm", {"m": 8, "n": 3000, "k": 5000}) * 1e6)
    other = {"m": m, "n": 3000, "k": 4096}  # another (n, k): the grid's
    np.testing.assert_allclose(layered.op_time_s("gemm", other), grid.op_time_s("gemm", other))
    np.testing.assert_allclose(layered.op_time_s("gemm", {"m": 1, "n": 3000, "k": 5000}, layers=False),
                               grid.op_time_s("gemm", {"m": 1, "n": 3000, "k": 5000}))
    assert not TableModel(table, H100, "triton").layers  # the other stack's points only
    assert not TableModel(table, H100, "torch", ideal=True).layers


def test_layer_points_time_the_choice_but_do_not_move_it():
    base = both_stacks(fake_table())
    shape = {"m": 1, "n": 3000, "k": 5000}
    grid = BestModel([TableModel(base, H100, s) for s in ("triton", "torch")])
    ours_s = float(grid.stacks[0].op_time_s("gemm", shape))
    slow = ours_s * 1e6 * 3  # the vendor's layer point: 3x ours, yet on the grids the stacks tie (ours chosen)
    table = with_layers(base, "torch", 3000, 5000, {1: slow, 2: slow})
    table = with_layers(table, "triton", 3000, 5000, {1: 7.0, 2: 7.0})
    best = BestModel([TableModel(table, H100, s) for s in ("triton", "torch")])
    assert isinstance(best.dispatch, Dispatch)
    assert best.dispatch.choose("gemm", shape) == grid.dispatch.choose("gemm", shape)
    assert float(best.op_time_s("gemm", shape)) == pytest.approx(7e-6)


def test_other_contexts_are_not_read():
    table = with_layers(both_stacks(fake_table()), "torch", 3000, 5000, {1: 50.0, 4: 80.0}, "alone")
    assert not TableModel(table, H100, "torch").layers


def test_exclusive_shapes_are_the_architectures_alone():
    from simulator.catalog import get_arch, list_archs
    from simulator.layer_points import exclusive_shapes, gemm_shapes

    falcon = get_arch("falcon-7b")
    own = exclusive_shapes(falcon, 1)
    assert own and own <= gemm_shapes(falcon, 1)
    assert not any(own & gemm_shapes(get_arch(a), 1) for a in list_archs() if a != "falcon-7b")


def test_leave_one_out_features_hide_the_left_out_architectures_points(monkeypatch):
    from calibration.fit import SimulatorFeatures
    from simulator.catalog import get_arch
    from simulator.gpus import get_gpu
    from simulator.layer_points import exclusive_shapes

    own = exclusive_shapes(get_arch("falcon-7b"), 1)
    table = both_stacks(fake_table())
    for n, k in own:
        table = with_layers(table, "torch", n, k, {1: 5.0, 8: 6.0})
    monkeypatch.setattr("simulator.tables.default_model", lambda gpu, stack: BestModel(
        [TableModel(table, H100, s) for s in ("triton", "torch")]))
    fold = SimulatorFeatures("best").without_layers_of([{"arch": "falcon-7b", "t": 1}])
    assert fold.hide_layers == frozenset(own)
    assert not fold.model(get_gpu("h100-sxm")).stacks[1].layers
    assert SimulatorFeatures("best").model(get_gpu("h100-sxm")).stacks[1].layers


def test_layer_points_are_off_by_default(monkeypatch):
    monkeypatch.delenv(ENV)
    table = with_layers(both_stacks(fake_table()), "torch", 3000, 5000, {1: 50.0, 4: 80.0})
    assert not TableModel(table, H100, "torch").layers
