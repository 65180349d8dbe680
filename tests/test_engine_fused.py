"""The engine's two stacks agree: the triton backend (Triton's CPU interpreter, fused element-wise kernels)
against the torch backend, on tiny 2-layer models of each family, prefill then decode steps."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from calibration.engine import backends, runner
from calibration.engine.runner import Engine
from tests.test_engine import tiny

FAMILIES = ["llama", "opt", "falcon", "moe"]  # dense swiglu rotary, gelu learned, parallel block, MoE


def logits_in_lockstep(engines: list[Engine], prompt: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Each engine's logits (B, steps+1, V), every engine fed the first one's tokens (no drift on near-ties)."""
    outs = [[] for _ in engines]
    for e, out in zip(engines, outs):
        e.prepare(prompt.shape[0], prompt.shape[1] + steps + 1)
        out.append(e.prefill(prompt).float())
    for _ in range(steps):
        tokens = engines[0].tokens.clone()
        for e, out in zip(engines, outs):
            e.tokens.copy_(tokens)
            out.append(e.step().float())
    return [torch.stack(o, 1) for o in outs]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("family", FAMILIES)
def test_triton_stack_matches_torch_stack(family: str) -> None:
    arch = tiny(family)
    prompt = torch.randint(0, arch.vocab, (2, 5), generator=torch.Generator().manual_seed(1))
    ref, got = logits_in_lockstep([Engine(arch, name, device="cpu", dtype=torch.bfloat16, seed=3)
                                   for name in ("torch", "triton")], prompt, steps=3)
    assert _rel(got, ref) < 3e-2  # bf16 activations, rounded in different places by the two stacks


@pytest.mark.parametrize("family", FAMILIES)
def test_fused_kernels_in_the_engine_are_exact_in_float32(family: str, monkeypatch) -> None:
    """torch's GEMMs and attention with only the fused kernels swapped in: equal logits up to fp32 rounding."""
    fused = backends.get_backend("triton")
    plain = backends.get_backend("torch")
    mixed = dataclasses.replace(plain, name="torch+fused", add_norm=fused.add_norm, rope_write=fused.rope_write,
                                act=fused.act)
    arch = tiny(family)
    ref_engine = Engine(arch, "torch", device="cpu", dtype=torch.float32, seed=3)
    monkeypatch.setattr(runner, "get_backend", lambda name: mixed)
    engine = Engine(arch, "torch", device="cpu", dtype=torch.float32, seed=3)
    assert engine.model.layers[0].be.name == "torch+fused"
    prompt = torch.randint(0, arch.vocab, (3, 4), generator=torch.Generator().manual_seed(2))
    ref, got = logits_in_lockstep([ref_engine, engine], prompt, steps=3)
    assert _rel(got, ref) < 1e-5
