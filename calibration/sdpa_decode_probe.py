"""GPU probe: which kernels torch's SDPA runs for the torch stack's decode attention (a length mask, and
enable_gqa when KV heads are shared): the MHA and GQA shapes take different backends, so the table keeps them
apart (simulator.opclasses.coords). Writes the kernel names and CUDA-event times per shape, with provenance.

    python3 -m benchmarks.probe_sdpa_decode --out results/probe_sdpa_decode_h100.json
    python3 -m benchmarks.probe_sdpa_decode --scan-bkv --out ...   # b*kv_h 56..136 at c = 32768, d = 64
    python3 -m benchmarks.probe_sdpa_decode --scan-g --out ...     # query heads per KV head 1..64
    python3 -m benchmarks.probe_sdpa_decode --window --out ...     # the engine's decode shapes, each over a
                                                                   # contiguous cache of c rows and as the engine
                                                                   # reads it: the first c rows of a longer cache
"""
import argparse

from calibration.grids import decode_shape

SHAPES = [(3, 25, 25, 35517, 64), (17, 16, 16, 41959, 64), (8, 32, 32, 4096, 128),
          (36, 8, 2, 40554, 64), (8, 32, 8, 4096, 128), (8, 32, 16, 4096, 128)]  # (b, h, kv_h, c, d)


def _grid_style(bkv: int, g: int, c: int, d: int) -> tuple:
    return tuple(decode_shape(bkv, g, c, d)[k] for k in ("b", "h", "kv_h", "c", "d"))


SCANS = {"bkv": [_grid_style(bkv, 1, 32768, 64) for bkv in (56, 60, 63, 64, 65, 66, 67, 68, 72, 80, 96, 128, 132,
                                                             133, 136)],
         "g": [_grid_style(bkv, g, c, 128) for bkv, c in ((16, 4096), (96, 4096), (96, 32768), (512, 4096))
               for g in (1, 4, 8, 12, 16, 17, 32, 64)]}

WINDOW_SHAPES = [(1, 32, 8, 1024, 128), (8, 32, 8, 1024, 128), (32, 32, 8, 512, 128), (1, 32, 32, 1024, 96),
                 (8, 32, 32, 1024, 96), (1, 28, 4, 1024, 128), (1, 32, 8, 4096, 128), (1, 32, 8, 128, 128)]
WINDOW_EXTRA_ROWS = 512  # rows of the longer cache past the window (the engine's cache holds p + o rounded up)


def main() -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile
    from triton.testing import do_bench

    from calibration.engine.backends import get_backend
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scan-bkv", action="store_true", help="time b*kv_h 56..136 (grid-style shapes) instead")
    ap.add_argument("--scan-g", action="store_true", help="time g = h / kv_h 1..64 (grid-style shapes) instead")
    ap.add_argument("--window", action="store_true", help="the engine's shapes over a contiguous cache and over "
                                                           "the first c rows of a longer one")
    args = ap.parse_args()
    decode = get_backend("torch").decode_attn
    rows = []
    shapes = SCANS["bkv"] if args.scan_bkv else SCANS["g"] if args.scan_g else WINDOW_SHAPES if args.window \
        else SHAPES
    for b, h, kv_h, c, d in shapes:
        for extra in (0, WINDOW_EXTRA_ROWS) if args.window else (0,):
            q = torch.randn(b, h, d, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(b, kv_h, c + extra, d, device="cuda", dtype=torch.bfloat16)[:, :, :c]
            v = torch.randn_like(k)[:, :, :c] if not extra else \
                torch.randn(b, kv_h, c + extra, d, device="cuda", dtype=torch.bfloat16)[:, :, :c]
            lengths = torch.full((b,), c, device="cuda", dtype=torch.int32)
            run = lambda: decode(q, k, v, lengths)  # noqa: E731
            ms = do_bench(run, warmup=5, rep=50)
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                run()
                torch.cuda.synchronize()
            kernels = sorted({e.name[:120] for e in prof.events() if e.device_type.name == "CUDA"})
            rows.append({"shape": {"b": b, "h": h, "kv_h": kv_h, "c": c, "d": d}, "cache_rows": c + extra,
                         "us": 1e3 * ms, "kernels": kernels})
            print(rows[-1], flush=True)
    write_json_atomic(args.out, {"provenance": provenance(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
