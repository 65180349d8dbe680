"""GPU probe: greedy sampling's argmax as the table times it and as the engine runs it (after its LM head, on the
padded vocabulary's slice), to find why the engine's argmax kernel takes longer. Prints one line per variant.

    python3 benchmarks/probe_argmax.py
"""
import torch
import triton.testing


def main() -> None:
    """Time torch.argmax over (b, vocab) bf16 logits: contiguous, a slice of a padded row, and after a GEMM."""
    for b, vocab in ((1, 128256), (8, 128256), (1, 32000)):
        padded = -(-vocab // 64) * 64
        full = torch.randn(b, padded, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(b, 4096, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(padded, 4096, device="cuda", dtype=torch.bfloat16)
        tokens = torch.zeros(b, dtype=torch.long, device="cuda")
        variants = {
            "contiguous": lambda: torch.argmax(full[:, :vocab].contiguous(), dim=-1),
            "slice": lambda: full[:, :vocab].argmax(-1),
            "slice+copy_": lambda: tokens.copy_(full[:, :vocab].argmax(-1)),
            "linear+argmax": lambda: tokens.copy_(torch.nn.functional.linear(x, w)[:, :vocab].argmax(-1)),
            "linear": lambda: torch.nn.functional.linear(x, w),
        }
        for name, fn in variants.items():
            us = triton.testing.do_bench_cudagraph(fn, rep=50) * 1e3
            print(f"b={b} vocab={vocab} {name:14s} {us:8.2f} us", flush=True)


if __name__ == "__main__":
    main()
