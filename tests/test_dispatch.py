"""The `best` stack's dispatch rule (simulator.dispatch): the simulator times the kernel the rule chooses, and the
engine variant `best` (calibration/engine_variants/best.py) sees the same shapes and makes the same choices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from calibration.best_check import compare_choices, simulated_choices
from calibration.engine.runner import BUCKETS, bucket_for
from calibration.engine_variants import best as best_variant
from calibration.engine_variants.base import engine_with_backend
from simulator.catalog import ARCHS
from simulator.dispatch import DECODE_BUCKETS, OURS, VENDOR, decode_bucket
from simulator.gpus import GPUS
from simulator.ops import shard
from simulator.tables import default_model
from tests.test_engine import tiny

GPU_NAMES = ("h200", "h100-sxm", "a100-80gb")  # measured, measured, derived


def catalog_shapes(seed: int, n: int) -> dict[str, list[dict]]:
    """n random shapes per dispatched class from the catalog's layers at t = 1-8 (m 1-16384, contexts to 32k)."""
    rng = np.random.default_rng(seed)
    archs = [ARCHS[k] for k in sorted(ARCHS)]
    out: dict[str, list[dict]] = {"gemm": [], "prefill_attn": [], "decode_attn": []}
    for _ in range(n):
        a, t = archs[rng.integers(len(archs))], int(rng.choice([1, 2, 4, 8]))
        hq, hkv = max(1, a.n_heads // t), max(1, a.n_kv_heads // t)
        n_k = [((hq + 2 * hkv) * a.head_dim, a.hidden), (a.hidden, hq * a.head_dim),
               (2 * shard(max(a.ffn_hidden, 64), t), a.hidden), (a.hidden, shard(max(a.ffn_hidden, 64), t))]
        nn, k = n_k[rng.integers(len(n_k))]
        out["gemm"].append({"m": int(rng.integers(1, 16385)), "n": nn, "k": k})
        b = int(rng.choice([1, 2, 4, 8, 16, 32]))
        out["prefill_attn"].append({"b": b, "h": hq, "kv_h": hkv, "s": int(rng.integers(1, 8193)),
                                    "d": a.head_dim, "causal": 1})
        out["decode_attn"].append({"b": b, "h": hq, "kv_h": hkv, "c": int(rng.integers(1, 32769)),
                                   "d": a.head_dim})
    return out


def test_decode_buckets_are_the_engines() -> None:
    assert DECODE_BUCKETS == BUCKETS
    for c in (1, 256, 257, 1000, 4097, 131072):
        assert decode_bucket(c) == bucket_for(c, 10**9)
    assert decode_bucket(200_000) == 200_000


@pytest.mark.parametrize("gpu", GPU_NAMES)
def test_best_times_the_kernel_the_rule_chooses(gpu: str) -> None:
    """On 150 shapes a class: best's time is the chosen stack's, and (but for decode, chosen at its bucket) the
    faster one's; the rule takes the vendor somewhere and ours somewhere on the measured tables."""
    best = default_model(GPUS[gpu], "best")
    rule, chosen = best.dispatch, []
    for op, shapes in catalog_shapes(seed=1, n=150).items():
        for shape in shapes:
            mine, theirs = float(rule.ours.op_time_s(op, shape)), float(rule.vendor.op_time_s(op, shape))
            stack = rule.choose(op, shape)
            chosen.append(stack)
            assert float(best.op_time_s(op, shape)) == (theirs if stack == VENDOR else mine)
            if op != "decode_attn":
                assert float(best.op_time_s(op, shape)) == min(mine, theirs)
            else:
                at = {**shape, "c": int(decode_bucket(shape["c"]))}
                faster = float(rule.vendor.op_time_s(op, at)) < float(rule.ours.op_time_s(op, at))
                assert stack == (VENDOR if faster else OURS)
    if gpu != "a100-80gb":
        assert set(chosen) == {OURS, VENDOR}


def test_vectorised_times_equal_scalar_choices() -> None:
    best = default_model(GPUS["h200"], "best")
    for op, shapes in catalog_shapes(seed=2, n=40).items():
        batch = {k: np.array([s[k] for s in shapes]) for k in shapes[0]}
        many = best.op_time_s(op, batch)
        assert np.array_equal(many, [float(best.op_time_s(op, s)) for s in shapes])


def test_grouped_gemms_and_single_stack_classes_run_ours() -> None:
    best = default_model(GPUS["h200"], "best")
    ours = best.dispatch.ours
    grouped = {"m": 3.0, "n": 8 * 2048, "k": 2048, "grouped": 1}
    assert best.dispatch.choose("gemm", grouped) == OURS
    assert best.op_time_s("gemm", grouped) == ours.op_time_s("gemm", grouped)
    assert best.op_time_s("add_norm", {"rows": 8, "hidden": 4096}) == ours.op_time_s("add_norm", {"rows": 8,
                                                                                                   "hidden": 4096})


def test_engine_choices_equal_the_rules_over_many_shapes() -> None:
    """The engine's shape of each call (from its tensors) gives the rule's choice of the simulator's shape."""
    rule = default_model(GPUS["h200"], "best").dispatch
    chooser = best_variant.Chooser(rule)
    meta = {"device": "meta", "dtype": torch.bfloat16}
    shapes = catalog_shapes(seed=3, n=100)
    for s in shapes["gemm"]:
        x, w = torch.empty(s["m"], s["k"], **meta), torch.empty(s["n"], s["k"], **meta)
        assert chooser("gemm", best_variant.gemm_shape(x, w)) == rule.choose("gemm", s)
    for s in shapes["prefill_attn"]:
        q = torch.empty(s["b"], s["h"], s["s"], s["d"], **meta)
        k = torch.empty(s["b"], s["kv_h"], s["s"], s["d"], **meta)
        assert chooser("prefill_attn", best_variant.prefill_shape(q, k)) == rule.choose("prefill_attn", s)
    for s in shapes["decode_attn"]:  # the engine's graph reads the bucket's rows: the rule chooses there too
        q = torch.empty(s["b"], s["h"], s["d"], **meta)
        cache = torch.empty(s["b"], s["kv_h"], bucket_for(s["c"], 10**9), s["d"], **meta)
        assert chooser("decode_attn", best_variant.decode_shape(q, cache)) == rule.choose("decode_attn", s)


class _Always:
    """A stand-in rule: one stack for every shape (the vendor's runs fast on the CPU)."""

    def __init__(self, stack: str):
        self.stack = stack

    def choose(self, op_class: str, shape: dict) -> str:
        return self.stack


@pytest.mark.parametrize("family,b,p", [("llama", 3, 7), ("falcon", 2, 9), ("moe", 3, 5), ("opt", 1, 4)])
def test_engine_dispatches_the_shapes_the_simulator_lists(family: str, b: int, p: int) -> None:
    """A prefill and two decode steps of the best engine call exactly the dispatched shapes of the simulated
    op list, and the real rule chooses the same for them on both sides."""
    arch = tiny(family)
    chooser = best_variant.Chooser(_Always(VENDOR))
    engine = engine_with_backend(arch, best_variant.best_backend(chooser), device="cpu", dtype=torch.bfloat16)
    engine.prepare(b, p + 3)
    engine.prefill(torch.randint(0, arch.vocab, (b, p), generator=torch.Generator().manual_seed(0)))
    engine.step()
    engine.step()
    rule = best_variant.rule_for("cpu", "h200")
    simulated = simulated_choices(arch, rule, b, p, steps=2)
    engine_choices = {k: rule.choose(k[0], dict(zip(_KEYS[k[0]], k[1:]))) for k in chooser.choices}
    report = compare_choices(engine_choices, simulated)
    assert set(chooser.choices) == set(simulated)
    assert report["common"] == len(simulated) and not report["disagree"]


_KEYS = {"gemm": ("m", "n", "k"), "prefill_attn": ("b", "h", "kv_h", "s", "d", "causal"),
         "decode_attn": ("b", "h", "kv_h", "c", "d")}


def test_mixed_kernels_give_the_triton_engines_logits() -> None:
    """Ours for some shapes, the vendor's for others: the logits of the triton engine within bf16 rounding."""
    from calibration.engine.runner import Engine
    from tests.test_engine_fused import _rel, logits_in_lockstep

    class Alternate:
        def choose(self, op_class: str, shape: dict) -> str:  # the vendor for decode and the 64-wide GEMMs
            return VENDOR if op_class == "decode_attn" or shape.get("n") == 64 else OURS

    arch = tiny("llama")
    chooser = best_variant.Chooser(Alternate())
    best = engine_with_backend(arch, best_variant.best_backend(chooser), device="cpu", dtype=torch.bfloat16)
    ref = Engine(arch, "triton", device="cpu", dtype=torch.bfloat16, seed=3)
    best.model.load_state_dict(ref.model.state_dict())
    prompt = torch.randint(0, arch.vocab, (2, 5), generator=torch.Generator().manual_seed(1))
    got, want = logits_in_lockstep([best, ref], prompt, steps=2)
    assert set(chooser.choices.values()) == {OURS, VENDOR}
    assert _rel(got, want) < 3e-2
