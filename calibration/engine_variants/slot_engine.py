"""The reference engine with B_max slots in its static KV cache, each at its own length: a prompt is prefilled
into a free slot, and a decode step runs over slots 0..n-1 (n a slot-count bucket) at per-slot positions.

CUDA graphs: a decode step per (slot-count bucket, context bucket) (calibration/engine/runner.py's context
buckets), a prefill per prompt length up to PREFILL_GRAPH_TOKENS (longer ones run eagerly, as in the engine).
Graph inputs live in static device tensors: the decode tokens and positions of every slot, the prefill's prompt
and slot. Decode rows of free slots run at position 0 (one cache row read, their own row 0 written: a slot's
rows are all rewritten by its next prefill). Every decode and prefill leaves its argmax token in `tokens`.
"""
from __future__ import annotations

import torch

from calibration.engine.runner import (
    PREFILL_GRAPH_TOKENS,
    Engine,
    bucket_for,
    cache_rows,
)
from calibration.engine_variants.slot_model import decode_slots, prefill_slot
from simulator.arch import ArchSpec

SLOT_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # decode rows a graph runs


def slot_bucket(n: int, max_batch: int) -> int:
    """Rows a decode step over slots 0..n-1 runs: the smallest bucket that holds n, at most max_batch."""
    return min(next((b for b in SLOT_BUCKETS if b >= n), max_batch), max_batch)


def slot_rope(backend: str):
    """The per-slot rotary + KV write of a stack: the Triton kernel, or torch ops."""
    if backend == "triton":
        from kernels.rope_slots import rope_slots
        return rope_slots
    from kernels.rope_slots import rope_slots_torch
    return rope_slots_torch


class SlotEngine:
    """One model with `max_batch` cache slots of `s_needed` tokens each (rows: a context bucket)."""

    def __init__(self, arch: ArchSpec, max_batch: int, s_needed: int, backend: str = "triton",
                 device: str = "cuda", dtype=torch.bfloat16, seed: int = 0, engine: Engine | None = None):
        self.engine = engine or Engine(arch, backend, device=device, dtype=dtype, seed=seed)
        self.arch, self.model, self.device = arch, self.engine.model, self.engine.device
        self.rope = slot_rope(self.model.be.name)
        self.max_batch, self.s_rows = max_batch, cache_rows(s_needed)
        self.model.setup_caches(max_batch, self.s_rows)
        self.use_graphs = self.device.type == "cuda"
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self.tokens = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # next decode input per slot
        self.pos = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # its position
        self.slot_ids = torch.arange(max_batch, device=self.device)
        self.slot = torch.zeros(1, dtype=torch.long, device=self.device)  # the slot a prefill writes
        self._pos_host = torch.zeros(max_batch, dtype=torch.long, pin_memory=self.use_graphs)
        self._pos_np = self._pos_host.numpy()  # the same memory, written without torch's per-call overhead
        self.decode_graphs: dict = {}  # (rows, context bucket) -> (graph, logits)
        self.prefill_graphs: dict = {}  # prompt length -> (graph, logits, static prompt, positions)

    # -- bodies (what a graph captures) ---------------------------------------------------------------------
    def _prefill_body(self, prompt: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        p = prompt.shape[0]
        logits = prefill_slot(self.model, self.rope, prompt, self.slot.expand(p), positions)
        self.tokens.index_copy_(0, self.slot, logits.argmax(-1))
        return logits

    def _decode_body(self, n: int, c: int) -> torch.Tensor:
        logits = decode_slots(self.model, self.rope, self.tokens[:n], self.slot_ids[:n], self.pos[:n], c)
        self.tokens[:n] = logits.argmax(-1)
        return logits

    def _capture(self, body, *args):
        """(graph, output) of body(*args) in this engine's pool after one warm-up call; decode inputs restored."""
        saved = self.tokens.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: JIT, workspaces
            body(*args)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = body(*args)
        self.tokens.copy_(saved)
        return graph, out

    # -- graphs -----------------------------------------------------------------------------------------------
    def _graphed_prefill(self, p: int) -> bool:
        return self.use_graphs and p <= PREFILL_GRAPH_TOKENS and self.model.graph_safe(p)

    @torch.no_grad()
    def capture(self, prompts, s_needed: int) -> None:
        """Capture (once each) the prefill graphs of these prompt lengths and the decode graphs of every slot
        bucket and every context bucket up to s_needed. Overwrites cache rows: call with no request running."""
        if not self.use_graphs:
            return
        for p in sorted({int(p) for p in prompts}):
            if self._graphed_prefill(p) and p not in self.prefill_graphs:
                prompt = torch.zeros(p, dtype=torch.long, device=self.device)
                positions = torch.arange(p, device=self.device)
                self.prefill_graphs[p] = (*self._capture(self._prefill_body, prompt, positions), prompt, positions)
        rows = sorted({slot_bucket(n, self.max_batch) for n in range(1, self.max_batch + 1)})
        contexts = sorted({bucket_for(s, self.s_rows) for s in range(1, min(s_needed, self.s_rows) + 1)})
        self.pos.zero_()
        for n in rows:
            for c in contexts:
                if (n, c) not in self.decode_graphs:
                    self.decode_graphs[n, c] = self._capture(self._decode_body, n, c)

    # -- steps ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, slot: int, prompt: torch.Tensor) -> torch.Tensor:
        """Prompt (p,) on the device into `slot` -> logits (1, vocab); its first token lands in tokens[slot]."""
        self.slot.fill_(slot)
        p = prompt.shape[0]
        if p not in self.prefill_graphs:
            return self._prefill_body(prompt, torch.arange(p, device=self.device))
        graph, logits, static, _ = self.prefill_graphs[p]
        static.copy_(prompt)
        graph.replay()
        return logits

    @torch.no_grad()
    def decode(self, positions: list[int]) -> torch.Tensor:
        """One token for each slot 0..len(positions)-1, slot i at position positions[i] (0 for a free slot)
        -> logits (rows, vocab), rows a slot bucket (rows past the list: free slots at position 0)."""
        n = slot_bucket(len(positions), self.max_batch)
        c = bucket_for(max(positions) + 1, self.s_rows)
        self._pos_np[len(positions):] = 0
        self._pos_np[:len(positions)] = positions
        self.pos.copy_(self._pos_host, non_blocking=True)
        if (n, c) not in self.decode_graphs:
            return self._decode_body(n, c)
        graph, logits = self.decode_graphs[n, c]
        graph.replay()
        return logits

    def sync(self) -> None:
        """Wait for the device's queued work (nothing to wait for on the CPU)."""
        if self.use_graphs:
            torch.cuda.synchronize()
