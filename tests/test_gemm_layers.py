"""calibration.gemm_layers: the plan, the measuring loop (fake timer) and the merge into a table."""
import json

import calibration.gemm_layers as gl
from calibration import sweep


def test_plan_covers_each_layer_shape_once_t1_first():
    by_t = gl.layer_shapes_by_t()
    assert min(by_t) == 1
    seen = [nk for shapes in by_t.values() for nk in shapes]
    assert len(seen) == len(set(seen))
    plan = gl.plan(("torch",))
    assert len(plan) == len(seen) * len(gl.M_NODES)
    first = {(s["n"], s["k"]) for _, s in plan[:len(by_t[1]) * len(gl.M_NODES)]}
    assert first == set(by_t[1])


def test_measure_and_merge(tmp_path, monkeypatch):
    monkeypatch.setattr(gl, "plan", lambda stacks, ms, t: [(s, {"m": 1, "n": 256, "k": 512}) for s in stacks])
    monkeypatch.setattr(gl, "after_plan", lambda stacks, ms: [("torch", {"m": 1, "n": 256, "k": 512})])
    monkeypatch.setattr(sweep, "measure_on_gpu", lambda p: {"kernel": "fake", "median_us": 5.0})
    monkeypatch.setattr(gl, "measure_after", lambda st, sh, cache: {"kernel": "fake", "median_us": 6.0,
                                                                    "context": "after_add_norm"})
    monkeypatch.setattr("calibration.provenance.provenance", lambda: {"gpu_name": "fake"})
    out = tmp_path / "layers.json"
    sec = gl.measure(str(out), ("torch", "triton"), 60.0, after=True)
    assert sec["status"] == "complete" and len(sec["points"]) == 3
    assert json.loads(out.read_text())["points"] == sec["points"]
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"points": [], "gemm_layers": {"points": [
        {"op": "gemm", "stack": "torch", "shape": {"m": 1, "n": 256, "k": 512}, "median_us": 9.0, "context": "alone"},
        {"op": "gemm", "stack": "torch", "shape": {"m": 2, "n": 256, "k": 512}, "median_us": 9.0, "context": "alone"}]}}))
    assert gl.merge(str(out), str(table)) == 3
    pts = json.loads(table.read_text())["gemm_layers"]["points"]
    got = sorted((p["stack"], p["shape"]["m"], p["context"], p["median_us"]) for p in pts)
    assert got == [("torch", 1, "after_add_norm", 6.0), ("torch", 1, "alone", 5.0), ("torch", 2, "alone", 9.0),
                   ("triton", 1, "alone", 5.0)]
    gl.merge(str(out), str(table))
    runs = json.loads(table.read_text())["gemm_layers"]["runs"]
    assert [r["points"] for r in runs] == [3, 3] and runs[0]["provenance"] == {"gpu_name": "fake"}


def test_measure_stops_at_the_time_guard(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "measure_on_gpu", lambda p: {"median_us": 1.0})
    monkeypatch.setattr("calibration.provenance.provenance", dict)
    sec = gl.measure(str(tmp_path / "x.json"), ("torch",), -1.0)
    assert sec["status"] == "partial" and sec["points"] == []


def test_a_cuda_error_ends_the_run_and_ours_skips_weights_it_cannot_index(tmp_path, monkeypatch):
    def crash(p):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(sweep, "measure_on_gpu", crash)
    monkeypatch.setattr("calibration.provenance.provenance", dict)
    sec = gl.measure(str(tmp_path / "x.json"), ("torch",), 60.0)
    assert sec["status"] == "partial" and len(sec["errors"]) == 1
    assert not gl.runs("triton", 250880, 14336) and gl.runs("torch", 250880, 14336) and gl.runs("triton", 4096, 4096)
    assert all(s["n"] * s["k"] < gl.OURS_MAX_ELEMENTS for st, s in gl.plan(("triton",), (1,), 1))


def test_measure_after_subtracts_the_elementwise_kernel(monkeypatch):
    from types import SimpleNamespace

    from calibration.timing import Timing

    calls = []
    monkeypatch.setattr("calibration.opbench.build", lambda op, stack, shape: SimpleNamespace(
        call=lambda i, op=op: calls.append(op), rotate=2, kernel=op))

    def fake_time(call, rotate=1):
        calls.clear()
        call(0)
        us = 3.0 if calls == ["add_norm"] else 13.0
        return Timing(us, us, us, us, 0.0, 7, 1, "graph", False, 0.0)
    monkeypatch.setattr("calibration.timing.measure", fake_time)
    cache: dict = {}
    row = gl.measure_after("torch", {"m": 1, "n": 256, "k": 512}, cache)
    assert row["median_us"] == 10.0 and row["pair_us"] == 13.0 and row["sep_us"] == 3.0
    assert cache == {(1, 512): 3.0}
