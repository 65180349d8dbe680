"""Serving simulator: a hand-computed schedule, memory-limited admission, chunked prefill, the step cost against
predict, workloads and bad traces, and the planner's pruning and SLO filter."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idealrt.cli import main
from simulator.catalog import get_arch
from simulator.deployment import Deployment, serve
from simulator.errors import UserError
from simulator.gpus import get_gpu
from simulator.plan import meets, parse_slo, plan, prune_reason
from simulator.predict import predict
from simulator.serving import simulate
from simulator.stepcost import StepCost
from simulator.timemodel import RooflineModel
from simulator.workload import Workload, load_trace, synthetic


class Stub:
    """An iteration costs 1 s plus 0.01 s per prefill token; every call is recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[tuple[int, int]]]] = []

    def one(self, n_decode: int, context_sum: int, chunks: list[tuple[int, int]]) -> float:
        self.calls.append((n_decode, list(chunks)))
        return 1.0 + 0.01 * sum(b - a for a, b in chunks)

    def decode_run(self, n: int, context_sum: int, steps: int) -> np.ndarray:
        self.pending = [(n, [])] * steps
        return np.ones(steps)

    def advance(self, steps: int) -> None:
        self.calls += self.pending[:steps]


def _sim(arrival, prompt, output, max_batch=2, kv_tokens=10_000, chunk=None, policy="prefill-first", step=None):
    return simulate(np.array(arrival, dtype=float), np.array(prompt), np.array(output), step or Stub(), max_batch,
                    kv_tokens, chunk, policy)


def test_hand_computed_schedule():
    # R0 prefills 0-2; R1 (batch of 2 full: R2 waits) prefills 2-5; one decode 5-6 ends R1; R2 prefills 6-8 and
    # ends (one output token); R0's last decode 8-9 (R3 arrives at 10 only); R3 prefills 10-12, decodes 12-13.
    s = _sim([0.0, 0.5, 1.0, 10.0], [100, 200, 100, 100], [3, 2, 1, 2])
    np.testing.assert_allclose(s.start_s, [0, 2, 6, 10])
    np.testing.assert_allclose(s.first_token_s, [2, 5, 8, 12])
    np.testing.assert_allclose(s.finish_s, [9, 6, 8, 13])
    assert s.iterations == 7


def test_hand_computed_latencies_through_serve(monkeypatch):
    arrival, prompt, output = np.array([0.0, 0.5, 1.0, 10.0]), np.array([100, 200, 100, 100]), np.array([3, 2, 1, 2])
    arch, gpu = get_arch("llama-3.1-8b"), get_gpu("h100-sxm")
    stub = Stub()
    stub.prepare = lambda positions: None
    stub.reset = lambda: None
    r = serve(arch, gpu, Workload(arrival, prompt, output, "hand"), Deployment(gpu.name, 1, 1, 2),
              model=RooflineModel(gpu), step=stub)
    np.testing.assert_allclose(r.queue_s, [0, 1.5, 5, 0])
    np.testing.assert_allclose(r.ttft_s, [2, 4.5, 7, 2])
    np.testing.assert_allclose(r.e2e_s, [9, 5.5, 7, 3])
    np.testing.assert_allclose(r.tpot_s, [3.5, 1, np.nan, 1])
    assert r.makespan_s == 13 and r.output_tokens == 8
    assert r.tokens_per_s == pytest.approx(8 / 13)
    assert r.gpu_hours == pytest.approx(13 / 3600)
    assert r.usd_per_1k_tokens == pytest.approx(13 / 3600 * gpu.price_per_hour_usd / 8 * 1000)
    assert r.row()["ttft_p50"] == pytest.approx(np.percentile([2, 4.5, 7, 2], 50))


def test_memory_limits_admission():
    # R0 needs 103 KV tokens, R1 102: with 150 R1 waits for R0 to end (at 4), with 300 it enters at once
    tight = _sim([0.0, 0.0], [100, 100], [3, 2], max_batch=8, kv_tokens=150)
    np.testing.assert_allclose(tight.start_s, [0, 4])
    np.testing.assert_allclose(tight.finish_s, [4, 7])
    roomy = _sim([0.0, 0.0], [100, 100], [3, 2], max_batch=8, kv_tokens=300)
    np.testing.assert_allclose(roomy.start_s, [0, 0])  # both prefill in the first iteration
    np.testing.assert_allclose(roomy.finish_s, [5, 4])
    with pytest.raises(UserError, match="exceeds the KV cache"):
        _sim([0.0], [100], [3], kv_tokens=50)


def test_chunked_prefill_decode_first():
    stub = Stub()
    s = _sim([0.0, 0.0], [100, 50], [2, 2], chunk=64, policy="decode-first", step=stub)
    assert stub.calls == [(0, [(0, 64)]), (0, [(64, 100), (0, 28)]), (1, [(28, 50)]), (1, [])]
    np.testing.assert_allclose(s.start_s, [0, 1.64])
    np.testing.assert_allclose(s.first_token_s, [3.28, 4.5])
    np.testing.assert_allclose(s.finish_s, [4.5, 5.5])


def test_step_cost_matches_predict_for_lone_requests():
    arch, gpu = get_arch("llama-3.1-8b"), get_gpu("h100-sxm")
    model = RooflineModel(gpu)
    step = StepCost(arch, gpu, 2, model)
    step.prepare([100, 3000])  # whole prompts: exact (serve prepares every prompt length of its workload)
    pred = predict(arch, gpu, [100, 3000], 4, 1, 2, model=model)
    assert step.one(0, 0, [(0, 100)]) == pytest.approx(pred.prefill_s[0], rel=1e-12)
    assert step.one(0, 0, [(0, 3000)]) == pytest.approx(pred.prefill_s[1], rel=1e-12)
    assert step.one(1, 101, []) == pytest.approx(pred.decode_first_step_s[0], rel=1e-12)
    batch = predict(arch, gpu, 500, 4, 8, 2, model=model)  # 8 decoders at context 501
    np.testing.assert_allclose(step.decode_run(8, 8 * 501, 3)[0], batch.decode_first_step_s, rtol=1e-12)
    # a boundary inside a prompt is interpolated between multiples of CHUNK_GRID, close to the exact value
    fresh = StepCost(arch, gpu, 2, model)
    inside = fresh.one(0, 0, [(0, 1500)])
    fresh.prepare([1500])
    assert inside == pytest.approx(fresh.one(0, 0, [(0, 1500)]), rel=0.01)
    # chunks of a prompt cost more than nothing and add up to about the whole prompt
    halves = step.one(0, 0, [(0, 1500)]) + step.one(0, 0, [(1500, 3000)])
    assert step.one(0, 0, [(0, 3000)]) < halves < 2 * step.one(0, 0, [(0, 3000)])


def test_synthetic_workloads_are_seeded():
    a, b = synthetic("lognormal:p=512,o=128,sigma=0.5", 10, 200, seed=3), synthetic(
        "lognormal:p=512,o=128,sigma=0.5", 10, 200, seed=3)
    np.testing.assert_array_equal(a.prompt, b.prompt)
    assert not np.array_equal(a.prompt, synthetic("lognormal:p=512,o=128,sigma=0.5", 10, 200, seed=4).prompt)
    u = synthetic("uniform:p=10-20,o=1-3", 5, 500)
    assert u.prompt.min() >= 10 and u.prompt.max() <= 20 and set(u.output) == {1, 2, 3}
    assert np.all(np.diff(u.arrival_s) >= 0) and 50 < u.arrival_s[-1] < 150  # 500 at 5/s: about 100 s
    f = synthetic("fixed:p=7,o=2", 1, 3)
    assert f.prompt.tolist() == [7, 7, 7] and f.output.tolist() == [2, 2, 2]


@pytest.mark.parametrize("lengths, needle", [("gauss:p=1,o=1", "unknown distribution"), ("fixed:p=1", "o=..."),
                                             ("fixed:p=1-5,o=2", "one number"), ("uniform:p=9-3,o=1", "low <= high"),
                                             ("fixed:p=1,o=1,q=2", "not key=value")])
def test_bad_lengths(lengths, needle):
    with pytest.raises(UserError, match=needle):
        synthetic(lengths, 1.0, 10)


def test_trace_loads_and_sorts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens,user\n2.5,10,3,a\n0,20,1,b\n")
    w = load_trace(path)
    assert w.arrival_s.tolist() == [0, 2.5] and w.prompt.tolist() == [20, 10] and w.output.tolist() == [1, 3]


@pytest.mark.parametrize("text, needle", [
    ("arrival_s,prompt_tokens\n0,1\n", "column output_tokens is missing"),
    ("arrival_s,prompt_tokens,output_tokens\n", "no requests"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5,2\n1,x,2\n", "row 3, column prompt_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n-1,5,2\n", "row 2, column arrival_s"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5,0\n", "row 2, column output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5.5,2\n", "row 2, column prompt_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\nnan,5,2\n", "row 2, column arrival_s"),
])
def test_bad_traces_one_line_exit_2(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    rc = main(["plan", "--model", "llama-3.1-8b", "--gpus", "h100-sxm", "--workload", str(path),
               "--slo", "ttft_p95=1"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_slo_parsing_and_filter():
    assert parse_slo("ttft_p95=0.5, tpot_p99=0.05") == {"ttft_p95": 0.5, "tpot_p99": 0.05}
    for bad in ("ttft=1", "ttft_p95=-1", "ttft_p95=x", ""):
        with pytest.raises(UserError, match="--slo"):
            parse_slo(bad)
    row = {"ttft_p95": 0.4, "tpot_p95": float("nan"), "e2e_p95": 2.0}
    assert meets(row, {"ttft_p95": 0.5, "tpot_p95": 0.01})  # no request with a second token: no TPOT to miss
    assert not meets(row, {"ttft_p95": 0.5, "e2e_p95": 1.0})


def test_plan_prunes_by_memory_and_sorts_by_cost():
    arch, gpus = get_arch("llama-3.1-70b"), [get_gpu("h100-sxm"), get_gpu("h200")]
    w = synthetic("fixed:p=256,o=16", 2.0, 40, seed=1)
    settings = {g.name: (RooflineModel(g), None) for g in gpus}
    result = plan(arch, gpus, w, {"ttft_p95": 10.0, "tpot_p95": 1.0}, settings, tps=[1, 2, 4],
                  replicas=(1, 2), batches=(4, 16))
    # 70B in bf16 (131 GiB of weights) leaves no KV cache on an 80 GiB H100 at t=1: pruned, never simulated;
    # the 141 GiB H200 holds about 31k tokens beside them, enough for these requests but not for one of 32k
    assert [(p["gpu"], p["t"]) for p in result.pruned] == [("h100-sxm", 1)] * 2  # both max batches
    assert "KV cache holds 0 tokens" in result.pruned[0]["reason"]
    long = synthetic("fixed:p=32000,o=16", 1.0, 2)
    assert prune_reason(arch, gpus[1], 1, long, 4, None) is not None
    assert prune_reason(arch, gpus[1], 2, long, 4, None) is None
    assert len(result.rows) == 5 * 2 * 2 and ("h100-sxm", 1) not in {(r["gpu"], r["t"]) for r in result.rows}
    meeting = [r for r in result.rows if r["meets_slo"]]
    assert meeting and result.rows[:len(meeting)] == meeting  # SLO-meeting first
    costs = [r["usd_per_1k_tokens"] for r in meeting]
    assert costs == sorted(costs)
    strict = plan(arch, gpus, w, {"ttft_p95": 1e-6}, settings, tps=[2], replicas=(1,), batches=(4,))
    assert not strict.meeting and len(strict.rows) == 2


def test_api_plan_marks_the_pareto_front_and_renders_the_page(tmp_path):
    import idealrt
    from reports.serving_report import render_serving, write_serving

    w = idealrt.synthetic("uniform:p=50-400,o=2-40", 20.0, 60, seed=2)
    result = idealrt.plan("llama-3.2-1b", ["h100-sxm"], w, "ttft_p95=0.2", tps=[1, 2], replicas=(1, 2),
                          max_batch=(2, 16), fit=False)
    rows = result.rows
    assert len(rows) == 8 and len(result.best) == 3 and result.best[0].row()["max_batch"] == rows[0]["max_batch"]
    key = ("tokens_per_s_per_gpu", "tokens_per_s_per_user")
    point = lambda r: (r[key[0]], r[key[1]])
    for r in rows:  # on the front when no other beats it on both (of equal points, one is marked)
        beaten = any(o[key[0]] >= r[key[0]] and o[key[1]] >= r[key[1]] and point(o) != point(r) for o in rows)
        twin_marked = any(o is not r and o["pareto"] and point(o) == point(r) for o in rows)
        assert r["pareto"] == (not beaten and not twin_marked) or (not r["pareto"] and twin_marked)
    assert any(r["pareto"] for r in rows) and not all(r["pareto"] for r in rows)
    html = render_serving(result, "llama-3.2-1b", w.source)
    assert "Pareto front" in html and "Latency distributions" in html and html.rstrip().endswith("</html>")
    write_serving(tmp_path / "plan.html", result, "llama-3.2-1b", w.source)
    assert (tmp_path / "plan.html").read_text() == html or (tmp_path / "plan.html").stat().st_size > 10_000


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_schedule_invariants(data):
    n = data.draw(st.integers(1, 25), label="requests")
    arrival = np.sort(np.array(data.draw(st.lists(st.floats(0, 30), min_size=n, max_size=n))))
    prompt = np.array(data.draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)))
    output = np.array(data.draw(st.lists(st.integers(1, 12), min_size=n, max_size=n)))
    need = prompt + output
    kv = data.draw(st.integers(int(need.max()), int(need.sum()) + 1), label="kv")
    max_batch = data.draw(st.integers(1, 6), label="max_batch")
    chunk = data.draw(st.sampled_from([None, 16, 100]))
    policy = data.draw(st.sampled_from(["prefill-first", "decode-first"]))
    s = _sim(arrival, prompt, output, max_batch, kv, chunk, policy)
    assert np.all(np.isfinite(s.finish_s))  # every request is served
    assert np.all(arrival <= s.start_s) and np.all(s.start_s < s.first_token_s)
    assert np.all(s.first_token_s <= s.finish_s)
    np.testing.assert_array_equal(s.first_token_s == s.finish_s, output == 1)
    for t in np.concatenate((s.start_s, s.first_token_s)):  # at any moment: batch and KV cache within limits
        live = (s.start_s <= t) & (t < s.finish_s)
        assert live.sum() <= max_batch and need[live].sum() <= kv
    served = np.argsort(s.start_s, kind="stable")  # first come, first served
    assert np.all(np.diff(arrival[served]) >= 0)


@pytest.mark.parametrize("b, p, o", [(8, 1900, 128), (1, 4000, 50), (32, 512, 64)])
def test_static_batch_served_as_predicted(b, p, o):
    # b requests at once, max batch b: one iteration prefills them all, then o - 1 decode steps. On the H200's
    # measured table with its fit, sustained throttling, post-prefill recovery and op power, the serving
    # simulator gives predict's prefill and total times, and its energy
    from simulator.defaults import model_and_fit

    arch, gpu = get_arch("llama-3.1-8b"), get_gpu("h200")
    model, coef, _ = model_and_fit(gpu, "triton", False)
    assert model.throttles and model.recovery is not None  # what the check is about
    pred = predict(arch, gpu, p, o, b, 1, model=model, coefficients=coef)
    r = serve(arch, gpu, Workload(np.zeros(b), np.full(b, p), np.full(b, o), "static"),
              Deployment(gpu.name, 1, 1, b), model=model, coefficients=coef)
    np.testing.assert_allclose(r.ttft_s, float(pred.prefill_s), rtol=1e-9)
    np.testing.assert_allclose(r.e2e_s, float(pred.total_s), rtol=1e-9)
    # joules of the throttled time are scaled per part here, per class over the whole phase in predict
    assert r.energy_j == pytest.approx(float(pred.energy_j), rel=1e-4)
    assert r.power_source == pred.power_source
    assert r.joules_per_1k_tokens == pytest.approx(r.energy_j / (b * o) * 1000)
