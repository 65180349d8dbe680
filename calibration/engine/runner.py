"""Runs and times configuration queries on the reference engine: prefill, then CUDA-graph decode.

Decode is captured once per (batch, context bucket): a step at context c replays the graph of the
smallest bucket >= c, which reads that many cache rows (masked to the true length). Prefills of up
to PREFILL_GRAPH_TOKENS tokens are captured once per prompt shape; longer ones run eagerly (their
kernels are long enough to hide the launches). Timing: CUDA events around the prefill and around
all o-1 decode steps of one run; graphs are captured and a short warm-up run is done first; the
statistic over runs (median of at least 3, measured again when wide) is calibration/query_timing.py's.
"""
from __future__ import annotations

import math
import time

import torch

from calibration.engine.backends import get_backend
from calibration.engine.kvcache import kv_bytes
from calibration.engine.model import Transformer, init_random_
from calibration.engine.tp import LocalShape, local_shape
from calibration.query_timing import EnergyReader, RunTimes, measure_query, metered
from simulator.arch import ArchSpec

# context buckets: steps of sqrt(2) from 256, so a step reads at most ~1.5x the rows it needs
BUCKETS = (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768,
           49152, 65536, 98304, 131072)
PREFILL_GRAPH_TOKENS = 2048  # prompts of up to b x p tokens replay a captured prefill graph


def bucket_for(context: int, s_max: int) -> int:
    """Cache rows a decode step at `context` tokens reads: the smallest bucket that holds it, at most s_max."""
    return min(next((c for c in BUCKETS if c >= context), s_max), s_max)


def cache_rows(s_needed: int) -> int:
    """Rows to allocate for contexts up to s_needed: its bucket, so the last bucket's window fits."""
    return bucket_for(s_needed, max(s_needed, BUCKETS[-1]))


def memory_need_bytes(arch: ArchSpec, t: int, b: int, p: int, s_rows: int) -> int:
    """Device bytes one rank needs: weights/t (embedding whole), KV cache, prefill activations, 1 GiB slack."""
    emb = arch.vocab * arch.hidden * arch.bytes_per_weight
    weights = (arch.weight_bytes() - emb) / t + emb
    kv = kv_bytes(b, arch.n_layers, max(1, arch.n_kv_heads // t), s_rows, arch.head_dim)
    ffn = max(arch.ffn_hidden, arch.expert_ffn_hidden * (arch.experts_per_token + arch.n_shared_experts))
    act = b * p * (6 * arch.hidden + 3 * ffn // t + 3 * arch.q_dim // t) * 2  # bf16 temporaries of a layer
    return int(weights + kv + act + 2 ** 30)


class Engine:
    """One model on one rank with its caches and CUDA graphs; reused across queries of one arch."""

    def __init__(self, arch: ArchSpec, backend: str = "triton", t: int = 1, rank: int = 0, group=None,
                 device: str = "cuda", dtype=torch.bfloat16, seed: int = 0, init: bool = True):
        self.arch, self.t, self.group = arch, t, group
        self.device = torch.device(device)
        self.shape: LocalShape = local_shape(arch, t, rank)
        self.model = Transformer(arch, self.shape, get_backend(backend), dtype, self.device, group)
        if init:
            init_random_(self.model, seed + 1000 * rank)
        self.use_graphs = self.device.type == "cuda"
        self.b, self.s_rows, self.pos_host = 0, 0, 0
        self.graphs: dict = {}  # context bucket -> (graph, logits)
        self.prefill_graphs: dict = {}  # prompt length -> (graph, static prompt, logits)

    def prepare(self, b: int, s_needed: int) -> None:
        """Caches for b sequences of up to s_needed tokens; graphs of another batch size are dropped."""
        rows = cache_rows(s_needed)
        if b == self.b and rows <= self.s_rows:
            return
        self.graphs.clear()
        self.prefill_graphs.clear()
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None  # the old one died with its graphs
        self.model.setup_caches(b, rows)
        self.b, self.s_rows = b, rows
        self.tokens = torch.zeros(b, dtype=torch.long, device=self.device)  # static decode input
        self.pos = torch.zeros(1, dtype=torch.long, device=self.device)

    def _prefill_body(self, prompt: torch.Tensor) -> torch.Tensor:
        logits = self.model.prefill(prompt)
        self.tokens.copy_(logits.argmax(-1))
        self.pos.fill_(prompt.shape[1])
        return logits

    def _step_body(self, c: int) -> torch.Tensor:
        logits = self.model.decode(self.tokens, self.pos, c)
        self.tokens.copy_(logits.argmax(-1))
        self.pos.add_(1)
        return logits

    def _graphed_prefill(self, b: int, p: int) -> bool:
        return self.use_graphs and b * p <= PREFILL_GRAPH_TOKENS and self.model.graph_safe(b * p)

    def _capture(self, body, arg):
        """(graph, output) of body(arg) captured in this engine's pool after one warm-up call; state restored."""
        saved = (self.tokens.clone(), self.pos.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: JIT, cuBLAS workspaces
            body(arg)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = body(arg)
        self.tokens.copy_(saved[0])
        self.pos.copy_(saved[1])
        return graph, out

    @torch.no_grad()
    def capture_prefill(self, b: int, p: int) -> None:
        """Capture (once) the prefill graph of a (b, p) prompt when it is short enough to need one."""
        if self._graphed_prefill(b, p) and p not in self.prefill_graphs:
            static = torch.zeros(b, p, dtype=torch.long, device=self.device)
            self.prefill_graphs[p] = (*self._capture(self._prefill_body, static), static)

    @torch.no_grad()
    def capture(self, first_context: int, last_context: int) -> None:
        """Capture (once) the decode graphs of every bucket between the two contexts."""
        if not self.use_graphs:
            return
        buckets = {bucket_for(c, self.s_rows) for c in range(first_context, last_context + 1)}
        for c in sorted(buckets - set(self.graphs)):
            self.graphs[c] = self._capture(self._step_body, c)

    @torch.no_grad()
    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        """prompt (B, S) -> logits (B, vocab); leaves the first output token and position S for decode.

        Short prompts replay their captured graph, so prefill is not bound by Python launching kernels.
        """
        self.pos_host = prompt.shape[1]
        if not self._graphed_prefill(*prompt.shape):
            return self._prefill_body(prompt)
        self.capture_prefill(*prompt.shape)
        graph, logits, static = self.prefill_graphs[prompt.shape[1]]
        static.copy_(prompt)
        graph.replay()
        return logits

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """One decode step (graph replay on the GPU) -> logits (B, vocab) of the token it read."""
        c = bucket_for(self.pos_host + 1, self.s_rows)
        self.pos_host += 1
        if not self.use_graphs:
            return self._step_body(c)
        self.capture(self.pos_host, self.pos_host)
        graph, logits = self.graphs[c]
        graph.replay()
        return logits

    def _sync(self) -> None:
        if self.use_graphs:
            torch.cuda.synchronize()
        if self.group is not None:
            torch.distributed.barrier(group=self.group)

    def run_once(self, prompt: torch.Tensor, o: int) -> RunTimes:
        """Prefill, then o-1 decode steps; times both with CUDA events (host clock on the CPU)."""
        self._sync()
        if not self.use_graphs:
            t0 = time.perf_counter()
            self.prefill(prompt)
            t1 = time.perf_counter()
            for _ in range(o - 1):
                self.step()
            return RunTimes(t1 - t0, time.perf_counter() - t1)
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        ev[0].record()
        self.prefill(prompt)
        ev[1].record()
        for _ in range(o - 1):
            self.step()
        ev[2].record()
        ev[2].synchronize()
        return RunTimes(ev[0].elapsed_time(ev[1]) / 1e3, ev[1].elapsed_time(ev[2]) / 1e3)

    def time_query(self, p: int, o: int, b: int, repeats: int = 3, warmup: int = 1, seed: int = 0,
                   energy: EnergyReader | None = None) -> dict:
        """Row fields of (p, o, b) from `repeats` timed runs (calibration/query_timing.py), graphs captured
        and `warmup` short runs (prefill + one step) done first; `energy` reads this rank's GPU counter."""
        self.prepare(b, p + o)
        g = torch.Generator(device="cpu").manual_seed(seed)
        prompt = torch.randint(0, self.arch.vocab, (b, p), generator=g).to(self.device)
        self.capture_prefill(b, p)
        self.capture(p + 1, p + o - 1)
        for _ in range(warmup):
            self.run_once(prompt, min(o, 2))

        def run() -> RunTimes:
            times, joules = metered(energy, lambda: self.run_once(prompt, o))
            return RunTimes(times.prefill_s, times.decode_s, self._all_gpus(joules))
        return measure_query(run, repeats, o, self._any)

    def _any(self, flag: bool) -> bool:
        """True on every rank when any rank says so (ranks re-measure together)."""
        if self.group is None:
            return flag
        x = torch.tensor([int(flag)], device=self.device)
        torch.distributed.all_reduce(x, op=torch.distributed.ReduceOp.MAX, group=self.group)
        return bool(x.item())

    def _all_gpus(self, joules: float | None) -> float | None:
        """The energy of all t GPUs of the run (NaN when a rank has no counter); one GPU's when t = 1."""
        if self.group is None:
            return joules
        x = torch.tensor([math.nan if joules is None else joules], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(x, group=self.group)
        return float(x.item())
