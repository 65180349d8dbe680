"""GPU benchmark: our decode attention with the split count rounded down to one wave of programs (shipped,
kernels.configs.decode_num_splits) or up (before), on random decode shapes of the catalog's kinds.

decode_num_splits asks for about one program per SM. Rounded up, b*kv_h = 20 at c = 1729 launched 20 x 7 = 140
programs on 132 SMs, and the 8 programs of the second wave ran after the first; rounded down (at most 6 splits
of whole 128-key blocks: 5 of 384 keys) it launches 100, one wave. Both are timed per shape with the sweep's
timer (calibration.timing, CUDA-graph replay) after checking both outputs against the float32 reference
(relative error < 1e-2, as benchmarks/bench_kernels.py), and the table prints the speed-up of rounding down.
Run from the repo root on the GPU:
    python3 -m benchmarks.bench_decode_splits --out $OUT/decode_splits_h100.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def splits(bkv: int, c: int, sm_count: int, rounding: str) -> int:
    """Split count for b*kv_h sequence heads of c keys: the shipped rule ("floor") or the rule before ("ceil")."""
    from kernels.configs import DECODE_ATTENTION as cfg, decode_num_splits

    if rounding == "floor":
        return decode_num_splits(1, bkv, c, sm_count, cfg)[0]
    n = max(1, min(-(-cfg.programs_per_sm * sm_count // bkv), -(-c // cfg.min_chunk)))  # the one change: rounded up
    chunk = -(-c // n)
    chunk = -(-chunk // cfg.block_n) * cfg.block_n
    return -(-c // chunk)


def main() -> int:
    import torch

    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic
    from calibration.timing import measure
    from kernels.decode_attention import decode_attention, decode_attention_ref

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=60, help="random shapes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    rng, rows, t0 = np.random.default_rng(args.seed), [], time.perf_counter()
    for _ in range(args.n):
        b, kv_h = int(np.exp(rng.uniform(0, np.log(128)))), int(rng.choice([1, 2, 4, 8]))
        g, c = int(rng.choice([1, 4, 8])), int(np.exp(rng.uniform(np.log(128), np.log(65536))))
        d = 128
        lens = torch.full((b,), c, dtype=torch.int32, device="cuda")
        sets = [(torch.randn(b, kv_h * g, d, device="cuda", dtype=torch.bfloat16),
                 torch.randn(b, kv_h, c, d, device="cuda", dtype=torch.bfloat16),
                 torch.randn(b, kv_h, c, d, device="cuda", dtype=torch.bfloat16)) for _ in range(2)]
        row = {"shape": {"b": b, "h": kv_h * g, "kv_h": kv_h, "c": c, "d": d}}
        for rounding in ("ceil", "floor"):
            n = splits(b * kv_h, c, sm, rounding)
            q, k, v = sets[0]
            ref = decode_attention_ref(q, k, v, lens).float()
            err = ((decode_attention(q, k, v, lens, num_splits=n).float() - ref).norm() / ref.norm()).item()
            if not err < 1e-2:
                raise SystemExit(f"decode_attention with {n} splits differs from the reference by {err}")
            t = measure(lambda i, n=n: decode_attention(*sets[i % 2], lens, num_splits=n), rotate=2)
            row[rounding] = {"splits": n, "programs": b * kv_h * n, "waves": -(-b * kv_h * n // sm),
                             "median_us": t.median_us, "p10_us": t.p10_us, "p90_us": t.p90_us}
        row["floor_speedup"] = row["ceil"]["median_us"] / row["floor"]["median_us"]
        rows.append(row)
        print(f"b*kv_h {b * kv_h:4d} c {c:6d}  ceil {row['ceil']['splits']:3d} splits {row['ceil']['waves']} waves "
              f"{row['ceil']['median_us']:8.1f} us   floor {row['floor']['splits']:3d} splits "
              f"{row['floor']['median_us']:8.1f} us   x{row['floor_speedup']:.3f}")
        sets = None  # free the caches before the next shape allocates its own
    sp = np.array([r["floor_speedup"] for r in rows])
    two = np.array([r["ceil"]["waves"] > 1 and r["ceil"]["programs"] < 2 * sm for r in rows])
    summary = {"geomean_speedup": float(np.exp(np.log(sp).mean())), "min": float(sp.min()), "max": float(sp.max()),
               "geomean_where_ceil_had_a_partial_second_wave":
                   float(np.exp(np.log(sp[two]).mean())) if two.any() else None, "n_partial": int(two.sum())}
    print(summary)
    write_json_atomic(args.out, {"provenance": provenance(), "seed": args.seed, "summary": summary, "rows": rows,
                                 "wall_seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
