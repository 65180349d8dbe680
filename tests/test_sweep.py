"""The calibration sweep on CPU: a FAKE timer stands in for the GPU (its numbers are made up and only ever
written under tmp_path). Resume after a kill, fail-soft points, the time guard, merging, op builders."""
import json

import numpy as np
import pytest
import torch

from calibration import opbench, opbench_base
from calibration.grids import grid_points, point
from calibration.sweep import run_sweep
from calibration.table_io import TableWriter, merge_points, point_key
from idealrt import cli
from simulator.errors import UserError

PROV = {"gpu_name": "FAKE GPU", "gpu": "h100-sxm", "command": "test"}


def fake_row(p):
    return {"kernel": "fake", "median_us": 10.0 + len(p.shape), "min_us": 9.0, "p10_us": 9.5, "p90_us": 11.0,
            "std_us": 0.5, "reps": 3, "inner": 1, "mode": "graph", "flagged": False, "compile_s": 0.0}


def test_killed_sweep_resumes_without_losing_or_repeating_points(tmp_path):
    out, points = tmp_path / "t.json", grid_points("quick", ("torch",), ("gemm",))[:12]
    calls = []

    def dies_after_five(p):
        if len(calls) == 5:  # the kill: the file on disk already holds every point measured so far
            assert len(json.loads(out.read_text())["points"]) == 5
            raise KeyboardInterrupt
        calls.append(p)
        return fake_row(p)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, TableWriter(out, PROV, every_s=0), measure_point=dies_after_five, show_progress=False)
    again = []
    res = run_sweep(points, TableWriter(out, PROV), measure_point=lambda p: again.append(p) or fake_row(p),
                    show_progress=False)
    table = json.loads(out.read_text())
    assert res.skipped == 5 and res.measured == 7 and set(again).isdisjoint(calls)
    keys = [point_key(p["op"], p["stack"], p["shape"]) for p in table["points"]]
    assert len(keys) == len(set(keys)) == 12 and table["status"] == "complete"
    assert table["provenance"]["resumed_by"] and table["provenance"]["gpu_seconds"] >= 0
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def smooth_row(p, slow=1.0):
    """FAKE time, a power law of the shape (a straight line in log-log along every grid axis), times `slow`."""
    return dict(fake_row(p), median_us=slow * float(np.prod([float(v) for _, v in p.shape])) ** 0.3)


def test_a_point_that_stands_out_is_measured_again_and_the_faster_kept(tmp_path):
    """A FAKE transient slowdown: one interior GEMM node takes 1.5x on its first measurement only. The sweep
    measures it a second time (only it), keeps the faster median, notes the first; a rerun measures nothing."""
    out, points = tmp_path / "t.json", grid_points("quick", ("torch",), ("gemm",))
    victim = point("gemm", "torch", m=256, n=4096, k=4096)
    seen = []

    def timer(p):
        seen.append(p)
        return smooth_row(p, 1.5 if p == victim and seen.count(p) == 1 else 1.0)

    run_sweep(points, TableWriter(out, PROV), measure_point=timer, show_progress=False)
    rows = {point_key(r["op"], r["stack"], r["shape"]): r for r in json.loads(out.read_text())["points"]}
    row = rows[point_key("gemm", "torch", victim.shape_dict)]
    assert len(seen) == len(points) + 1 and seen[-1] == victim
    assert row["rechecked"] and row["median_us"] == pytest.approx(smooth_row(victim)["median_us"])
    assert row["first_median_us"] == pytest.approx(1.5 * row["median_us"])
    assert sum(bool(r.get("rechecked")) for r in rows.values()) == 1
    seen.clear()
    run_sweep(points, TableWriter(out, PROV), measure_point=timer, show_progress=False)
    assert seen == []


def test_a_step_along_one_axis_is_not_suspect():
    """A tile boundary steps the time along one axis only: not an outlier (calibration.recheck)."""
    from calibration.recheck import suspects

    rows = [dict(smooth_row(p, 1.6 if p.shape_dict["m"] == 256 else 1.0), op=p.op, stack=p.stack, shape=p.shape_dict)
            for p in grid_points("quick", ("torch",), ("gemm",))]
    assert suspects(rows) == []
    slow = next(r for r in rows if r["shape"] == {"m": 1024, "n": 4096, "k": 4096})
    slow["median_us"] *= 1.6  # slow on every axis through it: a slow moment
    assert suspects(rows) == [slow]


def test_sweep_order_is_shuffled_and_repeatable(tmp_path):
    """Points run in a fixed shuffled order (heavy and light interleave), the same on every run."""
    points = grid_points("quick", ("torch",), ("gemm",))
    orders = []
    for i in range(2):
        seen = []
        run_sweep(points, TableWriter(tmp_path / f"t{i}.json", PROV), measure_point=lambda p: seen.append(p) or
                  fake_row(p), show_progress=False)
        orders.append(seen)
    assert orders[0] == orders[1] and sorted(map(str, orders[0])) == sorted(map(str, points))
    assert orders[0] != points


def test_failing_point_is_recorded_and_retried(tmp_path):
    out, points = tmp_path / "t.json", grid_points("quick", ("torch",), ("elementwise",))
    bad = points[2]

    def flaky(p):
        if p == bad:
            raise RuntimeError("CUDA out of memory (fake)")
        return fake_row(p)

    res = run_sweep(points, TableWriter(out, PROV), measure_point=flaky, show_progress=False)
    table = json.loads(out.read_text())
    assert res.errors == 1 and len(table["points"]) == len(points) - 1 and table["status"] == "partial"
    assert "out of memory" in table["errors"][0]["error"]
    res = run_sweep(points, TableWriter(out, PROV), measure_point=fake_row, show_progress=False)
    assert res.measured == 1 and json.loads(out.read_text())["errors"] == []


def test_time_guard_stops_cleanly(tmp_path):
    out = tmp_path / "t.json"
    res = run_sweep(grid_points("quick"), TableWriter(out, PROV), measure_point=fake_row, max_seconds=0.0,
                    show_progress=False)
    assert res.stopped_early and json.loads(out.read_text())["status"] == "partial"


def test_table_of_another_gpu_is_not_resumed(tmp_path):
    out = tmp_path / "t.json"
    TableWriter(out, PROV).finish(complete=False)
    with pytest.raises(UserError, match="--fresh"):
        TableWriter(out, dict(PROV, gpu_name="OTHER GPU"))


def test_merge_replaces_allreduce_points_with_their_provenance(tmp_path):
    out = tmp_path / "t.json"
    row = {"op": "allreduce", "stack": "torch", "shape": {"bytes": 4096, "t": 2}, "median_us": 20.0}
    merge_points(out, [row], {"run": 1})
    table = merge_points(out, [dict(row, median_us=15.0)], {"run": 2})
    assert len(table["points"]) == 1 and table["points"][0]["median_us"] == 15.0
    assert table["points"][0]["provenance"] == {"run": 2}


@pytest.mark.parametrize("stack", ["torch", "triton"])
@pytest.mark.parametrize("op,shape,out_shape", [
    ("gemm", dict(m=3, n=32, k=48), (3, 32)),
    ("prefill_attn", dict(b=1, h=4, kv_h=2, s=20, d=32, causal=1), (1, 4, 20, 32)),
    ("decode_attn", dict(b=2, h=4, kv_h=2, c=40, d=32), (2, 4, 32)),
    ("elementwise", dict(bytes=600), (100,)),
])
def test_op_builders_run_on_cpu(stack, op, shape, out_shape):
    bench = opbench.build(op, stack, shape, device="cpu")
    out = bench.call(0)
    assert tuple(out.shape) == out_shape and torch.isfinite(out.float()).all() and bench.kernel


def test_random_input_sets_are_separate_aligned_views_of_one_fill():
    """Each copy's tensors have their shapes, start 256 bytes apart at least (TMA and cuBLAS want 16), and do
    not overlap: writing one leaves the others as drawn."""
    sets = opbench._random_sets(3, [(3, 5), (7,)], device="cpu")
    assert [tuple(t.shape) for t in sets[1]] == [(3, 5), (7,)]
    base = sets[0][0].data_ptr()
    assert all((t.data_ptr() - base) % 256 == 0 for s in sets for t in s)
    before = [t.clone() for s in sets for t in s]
    sets[1][0].zero_()
    after = [t for s in sets for t in s]
    assert all(torch.equal(a, b) for i, (a, b) in enumerate(zip(after, before)) if i != 2)
    assert len({float(t.float().std()) for t in before}) == len(before)  # fresh draws, not copies


def test_decode_builders_agree():
    """The torch decode (matmul-softmax-matmul) and the Triton kernel compute the same attention."""
    torch.manual_seed(0)
    shape = dict(b=2, h=4, kv_h=2, c=40, d=32)
    ref = opbench.build("decode_attn", "torch", shape, device="cpu")
    q, k, v = torch.randn(2, 4, 32), torch.randn(2, 2, 40, 32), torch.randn(2, 2, 40, 32)
    got = opbench._torch_decode(q.bfloat16(), k.bfloat16(), v.bfloat16()).float()
    from kernels.decode_attention import decode_attention_ref
    want = decode_attention_ref(q, k, v, torch.full((2,), 40, dtype=torch.int32)).float()
    assert ref.rotate == 1 and np.allclose(got.numpy(), want.numpy(), atol=3e-2)


def test_unknown_op_and_no_gpu_are_one_line_errors(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no microbenchmark"):
        opbench.build("softmax", "torch", {})
    assert point("gemm", "torch", m=1, n=2, k=3).shape_dict == {"m": 1, "n": 2, "k": 3}
    assert cli.main(["calibrate", "--quick"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_derive_command_writes_a_marked_table(tmp_path, monkeypatch):
    from idealrt import cli_calibrate
    src = {"provenance": {"gpu": "h100-sxm", "gpu_name": "FAKE"}, "derived": None,
           "points": [{"op": "gemm", "stack": "triton", "shape": {"m": 1, "n": 4096, "k": 4096}, "median_us": 20.0}]}
    (tmp_path / "h100-sxm.json").write_text(json.dumps(src))
    monkeypatch.setattr(cli_calibrate, "TABLES", tmp_path)
    assert cli.main(["calibrate", "--derive", "a100-80gb", "--from", "h100-sxm"]) == 0
    der = json.loads((tmp_path / "a100-80gb.derived.json").read_text())
    assert der["derived"]["from"] == "h100-sxm.json" and der["points"][0]["median_us"] > 20.0


@pytest.fixture
def fake_cuda(monkeypatch):
    """FAKE CUDA clock for calibration.timing on CPU: events read state["clock"] (perf_counter unless a test
    sets its own), graphs capture nothing."""
    import contextlib
    import time

    class Event:
        def __init__(self, enable_timing=True):
            self.t = 0.0

        def record(self):
            self.t = state["clock"]()

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3

    class Stream:
        def wait_stream(self, other):
            pass

    class Graph:
        def replay(self):
            pass

    state = {"capture_ok": True, "clock": time.perf_counter}

    @contextlib.contextmanager
    def graph(g):
        if not state["capture_ok"]:
            raise RuntimeError("operation not permitted when stream is capturing (fake)")
        yield

    for name, value in {"Event": Event, "Stream": Stream, "CUDAGraph": Graph, "graph": graph,
                        "synchronize": lambda: None, "current_stream": Stream,
                        "stream": lambda s: contextlib.nullcontext()}.items():
        monkeypatch.setattr(torch.cuda, name, value, raising=False)
    return state


def test_timer_statistics_retry_and_eager_fallback(fake_cuda):
    from calibration.timing import BATCH_S, REPS, measure

    now, n = [0.0], iter(range(10**6))  # a clock only the calls advance: the test depends on no machine's timing
    fake_cuda["clock"] = lambda: now[0]

    def takes(seconds):
        now[0] += seconds

    t = measure(lambda i: takes(2e-4), rotate=3, use_graph=False)
    assert t.mode == "eager" and np.isclose(t.median_us, 200) and t.min_us <= t.p10_us <= t.median_us <= t.p90_us
    assert t.inner == max(3, int(np.ceil(BATCH_S / 2e-4))) and t.reps == REPS and not t.flagged
    fake_cuda["capture_ok"] = False
    assert measure(lambda i: None, rotate=2).mode == "eager"
    fake_cuda["capture_ok"] = True
    assert measure(lambda i: None, rotate=2).mode == "graph"
    seen = []  # calls ever slower: the spread over batches stays wide
    wild = measure(lambda i: takes(5e-5 * (1 + next(n) / 8)), use_graph=False, agree=lambda x: seen.append(x) or x)
    assert wild.flagged and wild.reps == 2 * REPS and len(seen) == 3  # estimate + two spread checks, all agreed


def test_sweep_to_table_model_end_to_end_on_cpu(tmp_path, fake_cuda):
    """Real builders (torch stack, CPU) through the timer on the FAKE clock into a file the simulator reads."""
    from calibration.timing import measure
    from simulator.gpus import get_gpu
    from simulator.tables import TableModel, load_table

    def on_cpu(p):
        bench = opbench.build(p.op, p.stack, p.shape_dict, device="cpu")
        return {"kernel": bench.kernel, **measure(bench.call, rotate=bench.rotate, reps=3).row()}

    points = [point("gemm", "torch", m=m, n=64, k=64) for m in (1, 16)]
    points += [point("decode_attn", "torch", b=1, h=2, kv_h=1, c=c, d=32) for c in (16, 64)]
    out = tmp_path / "cpu.json"
    run_sweep(points, TableWriter(out, PROV), measure_point=on_cpu, show_progress=False)
    model = TableModel(load_table(out), get_gpu("h100-sxm"), "torch")
    t = model.op_time_s("gemm", {"m": np.array([1, 4, 16]), "n": 64, "k": 64})
    assert t.shape == (3,) and np.all(t > 0) and not model.warnings


@pytest.mark.parametrize("stack,mode", [("triton", "eager"), ("torch", "graph")])
def test_launch_builder_runs_on_cpu(stack, mode):
    bench = opbench.build("launch", stack, {"mode": mode}, device="cpu")
    assert bench.graph == (mode == "graph") and bench.call(0).numel() >= 1


def test_torch_prefill_bench_runs_the_engine_layout_and_matches_sdpa(monkeypatch):
    """The torch stack's prefill node reads q from a token-major projection and K/V from cache windows, as the
    engine does, and computes the attention plain SDPA does on contiguous, expanded operands."""
    import torch
    import torch.nn.functional as F

    drawn = []
    monkeypatch.setattr(opbench, "_random_sets", lambda *a, **k: drawn.extend(opbench_base._random_sets(*a, **k))
                        or drawn)
    bench = opbench.build("prefill_attn", "torch", {"b": 2, "h": 8, "kv_h": 2, "s": 5, "d": 64, "causal": 1}, "cpu")
    out = bench.call(0).float()  # (b, h, s, d)
    qk, k_cache, v_cache = (x.float() for x in drawn[0])
    assert qk.shape == (2, 5, 10, 64) and k_cache.shape[2] >= 5
    q, k, v = qk[:, :, :8].transpose(1, 2), k_cache[:, :, :5], v_cache[:, :, :5]
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), is_causal=True)
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
