"""Properties over random valid architectures, GPUs and requests (hypothesis): times are finite and
positive, more tokens never take less time, a decode step never gets cheaper with context, and tensor
parallelism keeps the total FLOPs."""
import copy

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from simulator.arch import ArchSpec
from simulator.catalog import ARCHS, get_arch
from simulator.errors import UserError
from simulator.gpus import GPUS
from simulator.memory import valid_tps
from simulator.ops import decode_ops, prefill_ops, total_flops
from simulator.predict import predict
from simulator.profile import ProfileForm
from simulator.timemodel import RooflineModel


@st.composite
def archs(draw):
    """Random valid architectures; FFN and vocabulary sizes split evenly over t <= 8."""
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    moe = draw(st.booleans())
    experts = draw(st.integers(2, 16)) if moe else 0
    return ArchSpec(
        name="random", n_layers=draw(st.integers(1, 8)), hidden=draw(st.sampled_from([256, 512, 1024, 1536])),
        n_heads=heads, n_kv_heads=kv, head_dim=head_dim, ffn_hidden=0 if moe else 64 * draw(st.integers(1, 128)),
        ffn_kind=draw(st.sampled_from(["gelu", "swiglu"])), vocab=8 * draw(st.integers(13, 25_000)),
        max_positions=8192, n_experts=experts, experts_per_token=draw(st.integers(1, experts)) if moe else 0,
        expert_ffn_hidden=64 * draw(st.integers(1, 64)) if moe else 0,
        n_shared_experts=draw(st.integers(0, 2)) if moe else 0, parallel_block=draw(st.booleans()),
        positions=draw(st.sampled_from(["rotary", "learned", "alibi"])), tied_embeddings=draw(st.booleans()))


def valid_t(arch, draw_index):
    tps = [t for t in (1, 2, 4, 8) if arch.n_heads % t == 0 and arch.n_kv_heads % t == 0]
    return tps[draw_index % len(tps)]


coefficients = st.one_of(st.none(), st.fixed_dictionaries({
    "gemm": st.floats(0.5, 3), "decode_attn": st.floats(0.5, 3), "launch": st.floats(0, 3),
    "prefill_fixed_s": st.floats(0, 1e-2), "decode_fixed_s": st.floats(0, 1e-3)}))


@settings(max_examples=200, deadline=None)
@given(arch=archs(), gpu=st.sampled_from(sorted(GPUS)), t_index=st.integers(0, 3),
       p=st.integers(1, 4000), o=st.integers(1, 4000), b=st.integers(1, 64), coef=coefficients)
def test_more_tokens_never_take_less_time(arch, gpu, t_index, p, o, b, coef):
    gpu, t = GPUS[gpu], valid_t(arch, t_index)
    # each request next to the one with one more prompt token, output token or sequence
    ps, os_, bs = np.array([p, p + 1, p, p]), np.array([o, o, o + 1, o]), np.array([b, b, b, b + 1])
    pred = predict(arch, gpu, ps, os_, bs, t, model=RooflineModel(gpu), coefficients=coef)
    for name in ("prefill_s", "decode_s", "decode_step_s", "total_s", "tokens_per_s", "cost_usd", "energy_j"):
        values = getattr(pred, name)
        assert np.all(np.isfinite(values)) and np.all(values >= 0), name
    assert np.all(pred.total_s > 0) and np.all(pred.prefill_s > 0) and np.all(pred.decode_first_step_s > 0)
    base = pred.total_s[0]
    assert np.all(pred.total_s[1:] >= base * (1 - 1e-12))
    assert pred.prefill_s[1] >= pred.prefill_s[0] and pred.prefill_s[3] >= pred.prefill_s[0]
    assert np.all(pred.decode_last_step_s >= pred.decode_first_step_s * (1 - 1e-12))
    assert np.all(pred.mem_per_gpu_bytes[1:] >= pred.mem_per_gpu_bytes[0])


@settings(max_examples=200, deadline=None)
@given(arch=archs(), t_index=st.integers(1, 3), p=st.integers(1, 4000), b=st.integers(1, 16))
def test_tensor_parallel_splits_flops_exactly(arch, t_index, p, b):
    t = valid_t(arch, t_index)

    def sharded(ops):  # every op but the replicated MoE router and the padded LM head runs 1/t of the work
        return total_flops([op for op in ops if op.name not in ("router", "lm_head")])

    for build in (prefill_ops, decode_ops):
        one, each = sharded(build(arch, b, p, 1)), sharded(build(arch, b, p, t))
        assert np.isclose(t * each, one, rtol=1e-12) and one > 0


@settings(max_examples=25, deadline=None)
@example("falcon-7b", "h100-sxm", 1749, 300, 1)  # p + o - 1 == max_positions: every entry point accepts it
@given(st.sampled_from(["llama-3.2-1b", "qwen2.5-1.5b", "falcon-7b", "olmoe-1b-7b"]),
       st.sampled_from(["h100-sxm", "h200", "a100-80gb"]), st.integers(1, 3000), st.integers(1, 300),
       st.sampled_from([1, 3, 8]))
def test_shipped_predictions_are_consistent_everywhere(model, gpu, p, o, b):
    """On the shipped tables and fits: finite, positive times; cost and energy from time, GPUs, price and power;
    memory the sum of its parts; the API, sweep rows and a Predictor give the CLI's numbers."""
    import idealrt

    limit = get_arch(model).max_positions  # p + o - 1 positions at most: the last token is not fed
    o = min(o, limit)
    p = min(p, limit + 1 - o)
    pred = idealrt.predict(model, gpu, prompt=p, output=o, batch=b)
    total = float(pred.total_s)
    assert np.isfinite(total) and total > 0 and float(pred.prefill_s) > 0 and float(pred.decode_s) >= 0
    assert total == float(pred.prefill_s) + float(pred.decode_s)
    assert float(pred.cost_usd) == total * pred.n_gpus * pred.price_per_hour_usd / 3600
    assert float(pred.energy_j) == pytest.approx(total * pred.n_gpus * float(pred.power_w), rel=1e-12)
    m = pred.memory
    assert float(m.total_bytes) == float(m.weights_bytes + m.kv_cache_bytes + m.activation_bytes)
    row = idealrt.sweep([model], [gpu], [p], [o], [b])[0]
    assert row["total_s"] == total and row["t"] == pred.t
    fast = idealrt.predictor(model, gpu, pred.t)(p, o, b)
    assert np.isclose(fast.total_s, total, rtol=1e-9) and np.isclose(fast.prefill_s, float(pred.prefill_s),
                                                                      rtol=1e-12)


_IDEAL: dict = {}


def ideal_model(gpu: str):
    """The shipped tables' ideal-stack model of a GPU (the envelope of `best`), built once for the whole test."""
    from simulator.tables import default_model

    if gpu not in _IDEAL:
        _IDEAL[gpu] = default_model(GPUS[gpu], "ideal")
    return _IDEAL[gpu]


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(ARCHS)), gpu=st.sampled_from(sorted(GPUS)), t_index=st.integers(0, 3),
       p=st.integers(1, 8191), o=st.integers(1, 512), b=st.integers(1, 64), step=st.sampled_from([1, 7, 128, 1000]))
def test_the_ideal_stack_never_predicts_less_time_for_more_work(name, gpu, t_index, p, o, b, step):
    """On the shipped tables, the idealized stack (`ideal`, the padded envelope of `best`): total time
    non-decreasing in p, o and b (one more token or sequence, or `step` more), every time finite and positive."""
    arch = get_arch(name)
    tps = valid_tps(arch)
    t = tps[t_index % len(tps)]
    o = min(o, arch.max_positions)
    p = min(p, arch.max_positions + 1 - o - step)
    if p < 1:
        return
    ps = np.array([p, p + step, p, p])
    os_ = np.array([o, o, o + step if arch.positions_used(p, o + step) <= arch.max_positions else o, o])
    bs = np.array([b, b, b, b + step])
    pred = predict(arch, GPUS[gpu], ps, os_, bs, t, model=ideal_model(gpu))
    total = pred.total_s
    assert np.all(np.isfinite(total)) and np.all(total > 0) and np.all(pred.prefill_s > 0)
    assert np.all(total[1:] >= total[0] * (1 - 1e-12)), (total, pred.prefill_s, pred.decode_s)
    assert np.all(pred.decode_last_step_s >= pred.decode_first_step_s * (1 - 1e-12))


def without_sustained_clocks(gpu: str):
    """The ideal-stack model of a GPU with burst clocks throughout: no settled throttling, no post-prefill recovery
    (the board's measured clock drop, simulator.sustained, which slows a longer phase per unit of work)."""
    model = copy.copy(ideal_model(gpu))  # shares the stacks' grids; only these two attributes differ
    model.throttles, model.recovery = {}, None
    return model


@settings(max_examples=60, deadline=None)
@example("phi-3-mini", "h200", 3, 128, 64, 33, 1)  # decode attention: b*kv_h 132 -> 136 crosses a node at 133
@example("gpt-neox-20b", "h200", 0, 128, 64, 8, 1)  # prefill GEMM rows 1024 -> 1152 past the node at 1025
@given(name=st.sampled_from(sorted(ARCHS)), gpu=st.sampled_from(sorted(GPUS)), t_index=st.integers(0, 3),
       p=st.integers(1, 8191), o=st.integers(1, 512), b=st.integers(1, 64), step=st.sampled_from([1, 3, 16]))
def test_the_ideal_stack_never_predicts_more_time_per_sequence_for_a_larger_batch(name, gpu, t_index, p, o, b, step):
    """On the shipped tables, the ideal stack at burst clocks: time per sequence (total / b, so per generated token
    at fixed p and o), prefill and decode each, non-increasing in b (docs/decisions.md: the rate envelope)."""
    arch = get_arch(name)
    tps = valid_tps(arch)
    o = min(o, arch.max_positions)
    p = min(p, arch.max_positions + 1 - o)
    bs = np.array([b, b + step])
    pred = predict(arch, GPUS[gpu], p, o, bs, tps[t_index % len(tps)], model=without_sustained_clocks(gpu))
    for name_, v in (("total_s", pred.total_s), ("prefill_s", pred.prefill_s), ("decode_s", pred.decode_s)):
        per = v / bs
        assert np.all(np.isfinite(per)) and per[1] <= per[0] * (1 + 1e-12), (name_, per)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(sorted(ARCHS)), gpu=st.sampled_from(sorted(GPUS)),
       stack=st.sampled_from(["triton", "torch", "best", "ideal"]), b=st.sampled_from([1, 4]))
def test_the_profiles_prefill_term_never_falls(name, gpu, stack, b):
    """`idealrt profile --simulated` on the shipped tables: each form's F(p) (and F + q·p²) non-decreasing and
    positive over the prompts, g ≥ 0 (calibration.profile_fit constrains the slopes)."""
    import argparse

    from calibration.profile_fit import profile
    from idealrt.cli_profile import simulated_grid

    args = argparse.Namespace(gpu=gpu, prompts=None, outputs=None, b=b, t=None, stack=stack)
    try:
        _, p, o, y = simulated_grid(args, get_arch(name))
    except UserError:  # the model does not fit on this GPU at any t
        assume(False)
    dense = np.linspace(1, p.max(), 512)
    for fit in profile(p, o, y, max_knots=2):
        form = ProfileForm(**{k: tuple(v) if isinstance(v, list) else v for k, v in fit["form"].items()})
        f = form.prefill_s(dense)
        assert np.all(np.isfinite(f)) and np.all(f > 0) and form.g_s >= 0, form
        assert np.all(np.diff(f) >= -1e-12 * f[1:]), form
