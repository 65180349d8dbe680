"""Op list: FLOP counts against the closed form, bytes against the parameter count, tensor-parallel
sharding and its all-reduces, MoE expectations, and the roofline time of single ops."""
import numpy as np
import pytest

from simulator.arch import ArchSpec
from simulator.gpus import get_gpu
from simulator.ops import decode_ops, expected_experts_touched, prefill_ops, total_flops
from simulator.timemodel import ALLREDUCE_LATENCY_S, LAUNCH_S, RooflineModel

# Stand-in architectures (not catalog entries): sizes chosen so every split over t <= 8 is even.
GPT = ArchSpec(name="gpt-style", n_layers=12, hidden=1024, n_heads=16, n_kv_heads=16, head_dim=64,
               ffn_hidden=4096, ffn_kind="gelu", vocab=50304, max_positions=4096, positions="learned")
LLAMA = ArchSpec(name="llama-style", n_layers=4, hidden=1024, n_heads=16, n_kv_heads=8, head_dim=64,
                 ffn_hidden=2816, ffn_kind="swiglu", vocab=32000, max_positions=8192, norm="rmsnorm")
MOE = LLAMA.with_(name="moe-style", n_experts=8, experts_per_token=2, expert_ffn_hidden=1408,
                  n_shared_experts=1, ffn_hidden=0)
PARALLEL = GPT.with_(name="parallel-style", parallel_block=True, positions="rotary")


def by_name(ops, name):
    (op,) = [op for op in ops if op.name == name]
    return op


def test_prefill_flops_match_closed_form_for_gpt_style():
    # Closed form (Narayanan et al.): 24·h²·l·p·(1 + p/(6h) + V/(16·l·h)) counts attention over all p²
    # query-key pairs and logits for all p tokens. Two conventions differ from ours and are added back:
    # - its LM-head term V/(16lh) is the training formula's 96/4; a forward LM head is 2·p·h·V, i.e.
    #   V/(12lh), so ours is larger by 0.5·p·h·V;
    # - we count causal attention, s(s+1)/2 pairs: per layer 4p²h − 2p(p+1)h = 2p(p−1)h fewer FLOPs.
    h, l, V = GPT.hidden, GPT.n_layers, GPT.vocab
    p = np.array([1, 7, 128, 2048])
    ours = total_flops(prefill_ops(GPT, 1, p, 1, logits="all"))
    closed = 24.0 * h**2 * l * p * (1 + p / (6 * h) + V / (16 * l * h))
    np.testing.assert_allclose(ours, closed + 0.5 * p * h * V - l * 2 * p * (p - 1) * h, rtol=1e-12)


def test_flops_scale_with_batch_and_last_token_logits():
    p = np.array([16, 512])
    full = total_flops(prefill_ops(GPT, 1, p, 1, logits="all"))
    last = total_flops(prefill_ops(GPT, 1, p, 1))
    np.testing.assert_allclose(full - last, 2.0 * (p - 1) * GPT.hidden * GPT.vocab)  # LM head on 1 token, not p
    np.testing.assert_allclose(total_flops(prefill_ops(GPT, 3, p, 1)), 3 * last)
    assert by_name(prefill_ops(GPT, 3, p, 1), "lm_head").shape["m"] == 3
    assert by_name(decode_ops(GPT, 5, 100, 1), "lm_head").shape["m"] == 5


@pytest.mark.parametrize("arch", [GPT, LLAMA, MOE, PARALLEL], ids=lambda a: a.name)
@pytest.mark.parametrize("t", [2, 4, 8])
def test_tensor_parallel_keeps_total_flops(arch, t):
    # Every GEMM and attention is split over t GPUs (the MoE router is replicated, so it is left out; the LM
    # head's rows are padded per GPU, checked below).
    def sharded(ops):
        return total_flops([op for op in ops if op.name not in ("router", "lm_head")])

    p = np.array([1, 100, 3000])
    assert np.allclose(t * sharded(prefill_ops(arch, 2, p, t)), sharded(prefill_ops(arch, 2, p, 1)), rtol=1e-12)
    assert np.allclose(t * sharded(decode_ops(arch, 2, p, t)), sharded(decode_ops(arch, 2, p, 1)), rtol=1e-12)
    rows = by_name(decode_ops(arch, 2, p, t), "lm_head").shape["n"]
    assert rows % 64 == 0 and arch.vocab <= t * rows < arch.vocab + 64 * t


def test_vocab_rows_padded_per_gpu():
    # GPT-3's vocabulary over 8 GPUs: 6283 rows would leave the LM head's rows 16-byte unaligned
    from simulator.ops import vocab_shard

    assert [vocab_shard(50257, t) for t in (1, 2, 4, 8)] == [50304, 25152, 12608, 6336]
    assert vocab_shard(128256, 4) == 32064  # already aligned: unchanged


def test_megatron_sharding_shapes_and_allreduces():
    t, ops = 4, prefill_ops(LLAMA, 1, 64, 4)
    d = LLAMA.head_dim
    assert by_name(ops, "qkv").shape["n"] == (16 + 2 * 8) * d // t  # column-parallel, heads split
    assert by_name(ops, "attn_out").shape["k"] == 16 * d // t  # row-parallel
    assert by_name(ops, "ffn_gate_up").shape["n"] == 2 * 2816 // t
    assert by_name(ops, "ffn_down").shape["k"] == 2816 // t
    attn = by_name(ops, "attn").shape
    assert (attn["h"], attn["kv_h"], attn["s"]) == (4, 2, 64)
    reduces = [op for op in ops if op.op_class == "allreduce" and op.count == LLAMA.n_layers]
    assert [op.shape["bytes"] for op in reduces] == [2 * 64 * LLAMA.hidden] * 2  # two per layer, bf16
    assert not [op for op in prefill_ops(LLAMA, 1, 64, 1) if op.op_class == "allreduce"]


def test_parallel_block_has_one_norm_and_one_allreduce_per_layer():
    ops = decode_ops(PARALLEL, 1, 10, 2)
    layer_norms = [op for op in ops if op.name.startswith("norm") and op.count == PARALLEL.n_layers]
    layer_reduces = [op for op in ops if op.op_class == "allreduce" and op.count == PARALLEL.n_layers]
    assert len(layer_norms) == 1 and len(layer_reduces) == 1
    assert len([op for op in decode_ops(GPT, 1, 10, 2) if op.op_class == "allreduce"]) == 3  # 2 + logits


@pytest.mark.parametrize("arch", [GPT, LLAMA], ids=lambda a: a.name)
def test_decode_step_reads_every_weight_once(arch):
    # b = 1: each GEMM's weight bytes n·k·2 sum to the parameters, less the embedding table (looked up,
    # not multiplied; an untied LM head is its own matrix) and learned positions.
    ops = decode_ops(arch, 1, 1, 1)
    weights = sum(op.shape["n"] * op.shape["k"] * op.count for op in ops if op.op_class == "gemm")
    lookup = arch.vocab * arch.hidden + (arch.max_positions * arch.hidden if arch.positions == "learned" else 0)
    assert weights == arch.param_count() - lookup


def test_moe_decode_of_one_token_reads_its_active_experts():
    ops = decode_ops(MOE, 1, 1, 1)
    weights = sum(op.shape["n"] * op.shape["k"] * op.count for op in ops if op.op_class == "gemm")
    assert weights == pytest.approx(MOE.param_count(active=True) - MOE.vocab * MOE.hidden, rel=1e-12)
    assert by_name(ops, "expert_down").shape["m"] == pytest.approx(1.0)  # one token per touched expert
    # one grouped launch a layer over the k touched experts: a GEMM k times as wide
    down = by_name(ops, "expert_down")
    assert down.count == MOE.n_layers and down.shape["n"] == pytest.approx(MOE.experts_per_token * MOE.hidden)


def test_expected_experts_touched_matches_sampling():
    rng = np.random.default_rng(0)
    E, k, tokens = 16, 2, np.array([1, 3, 10, 40])
    for n, expect in zip(tokens, expected_experts_touched(E, k, tokens)):
        picks = np.argsort(rng.random((4000, n, E)), axis=-1)[..., :k].reshape(4000, -1)  # k distinct each
        distinct = np.array([np.unique(row).size for row in picks])
        assert distinct.mean() == pytest.approx(expect, rel=0.02)
    assert expected_experts_touched(E, k, 1) == pytest.approx(k)
    assert expected_experts_touched(E, k, 10**6) == pytest.approx(E)


def test_decode_attention_reads_the_kv_cache():
    c = np.array([1, 1000])
    attn = by_name(decode_ops(LLAMA, 2, c, 1), "attn")
    kv_bytes = 2 * 2 * 2 * LLAMA.n_kv_heads * LLAMA.head_dim * c  # K and V, bf16, b = 2
    assert np.all(attn.bytes > kv_bytes) and np.all(attn.bytes < 1.01 * kv_bytes + 4 * 2 * 1024 * 2)
    np.testing.assert_allclose(attn.flops, 4 * 2 * LLAMA.n_heads * LLAMA.head_dim * c)


def test_launch_op_counts_every_kernel_run():
    ops = prefill_ops(MOE, 1, np.array([1, 64]), 2)
    launch = by_name(ops, "launch")
    assert by_name(decode_ops(MOE, 1, 5, 2), "launch").shape["mode"] == "graph_launch"
    assert launch.shape["mode"] == "graph_launch" and launch.count == 1  # one graph launch a phase
    eager = by_name(prefill_ops(MOE, 1, np.array([1, 64]), 2, host="eager"), "launch")
    np.testing.assert_allclose(eager.count, sum(op.count for op in ops[:-1]))  # one launch a kernel run


def test_roofline_op_times():
    gpu = get_gpu("h100-sxm")
    model = RooflineModel(gpu)
    big = model.op_time_s("gemm", {"m": 8192, "n": 8192, "k": 8192})
    assert big == pytest.approx(2 * 8192**3 / gpu.peak_bf16_flops)  # compute-bound
    small = model.op_time_s("gemm", {"m": 1, "n": 4096, "k": 4096})
    assert small == pytest.approx(2 * (4096 + 4096 * 4096 + 4096) / gpu.hbm_bw_bytes_s)  # memory-bound
    ring = model.op_time_s("allreduce", {"bytes": 1e6, "t": 4})
    assert ring == pytest.approx(2 * 3 / 4 * 1e6 / gpu.interconnect_bw_bytes_s + ALLREDUCE_LATENCY_S)
    assert model.op_time_s("allreduce", {"bytes": 1e6, "t": 1}) == 0
    assert model.op_time_s("launch", {"mode": "graph_launch"}) == LAUNCH_S["graph_launch"]
    assert model.warnings  # says it is a roofline


def test_fused_elementwise_kernels_read_less_and_launch_fewer():
    def elementwise(ops):
        ew = [op for op in ops if op.op_class == "elementwise"]
        return sum(op.count for op in ew), sum(op.bytes * op.count for op in ew)

    for build in (lambda f: prefill_ops(LLAMA, 2, 64, 1, fused=f), lambda f: decode_ops(LLAMA, 2, 64, 1, fused=f)):
        (n_fused, b_fused), (n_torch, b_torch) = elementwise(build(True)), elementwise(build(False))
        assert n_fused < n_torch and b_fused < b_torch
    names = {op.name for op in decode_ops(LLAMA, 1, 8, 1, fused=True)}
    assert "rope_kv_write" in names and not names & {"rotary_mul", "residual", "ffn_silu"}
    torch_names = {op.name for op in decode_ops(LLAMA, 1, 8, 1, fused=False)}
    assert {"rotary_mul", "rotary_swap", "rotary_addcmul", "kv_cache_write", "residual", "ffn_silu", "ffn_mul"} <= torch_names
    # the FLOPs do not depend on how the elementwise kernels are cut
    assert total_flops(prefill_ops(LLAMA, 2, 64, 1, fused=True)) == total_flops(prefill_ops(LLAMA, 2, 64, 1, fused=False))


def _per_class(ops):
    out = {}
    for op in ops:
        out[op.op_class] = out.get(op.op_class, 0) + int(np.sum(op.count))
    return out


def test_torch_stack_op_list_counts_the_engine_kernels():
    """The torch stack's kernels per layer as the H200 engine profile counts them (benchmarks/results/
    profile_engine_h200_torch.json): rotary 3 strided kernels, SwiGLU 2 (contiguous, so vectorized, on one row), K and
    V written by two strided copies in a prefill and two index_copy_ in a decode step, 2 adds and 2 norms a layer
    plus the final norm, no copy of SDPA's output."""
    L = LLAMA.n_layers
    pre = _per_class(prefill_ops(LLAMA, 1, 64, 1, fused=False))
    assert (pre["strided"], pre["transpose"], pre["elementwise"], pre["norm"]) == (5 * L, 2 * L, 2 * L, 2 * L + 1)
    assert int(by_name(prefill_ops(LLAMA, 1, 64, 1, fused=True), "attn_transpose").count) == L  # ours copies it
    for b, strided, elementwise in ((8, 7 * L, 2 * L), (1, 5 * L, 4 * L)):
        dec = _per_class(decode_ops(LLAMA, b, 100, 1, fused=False))
        assert (dec["strided"], dec["elementwise"], dec.get("transpose", 0)) == (strided, elementwise, 0)
    norms = {op.shape["fn"] for op in prefill_ops(GPT, 1, 8, 1, fused=False) if op.op_class == "norm"}
    assert norms == {"layer_norm"}


def test_torch_stack_decode_attention_reads_the_context_bucket():
    """The engine's graph reads the bucket's rows (calibration/engine/runner.py), masked past c: SDPA computes them
    all, our kernel stops at c, and transformers' eager generate has no bucket."""
    c = np.array([100, 257, 1000, 1025])
    attn = {f: by_name(decode_ops(LLAMA, 1, c, 1, fused=f), "attn").shape["c"] for f in (True, False)}
    np.testing.assert_array_equal(attn[False], [256, 384, 1024, 1536])
    np.testing.assert_array_equal(attn[True], c)
    eager = by_name(decode_ops(LLAMA, 1, c, 1, fused=False, host="hf-eager"), "attn").shape["c"]
    np.testing.assert_array_equal(eager, c)
