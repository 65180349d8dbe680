"""GPU run: the host's cost of transformers' eager `generate`, per call and per layer, for each model family.

An eager stack's phase takes the longer of the GPU's work and the host's (Python, module calls, kernel launches).
The host's part is measured where the GPU's is negligible: the family's model with tiny dimensions (hidden 64,
two heads of 32, FFN 128, vocabulary 1,024) at 2, 8 and 32 layers, b = 1, a 16-token prompt. Prefill is a
generate of one new token, a decode step the difference between generates of 33 and 1 tokens over 32 (the
engine's own query timing, median of REPEATS runs). A least-squares line over the layer counts gives the per-call and
per-layer seconds (simulator.hostmodel reads them from the table's `host` section). Two more points (b = 8,
p = 128 at 8 layers) show how much the batch and prompt move the host's time; they are reported, not fitted.

    python3 -m calibration.host_bench --out $OUT/host_h200.json [--merge calibration/tables/h200.json]
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from simulator.hostmodel import ENGINE, FAMILIES, HOST_SECTION, hf_family

LAYERS = (2, 8, 32)
REPEATS = 7
TINY = {"hidden": 64, "n_heads": 2, "head_dim": 32, "ffn_hidden": 128, "vocab": 1024}
REPRESENTATIVE = {"llama": "llama-3.1-8b", "opt": "opt-6.7b", "neox": "pythia-6.9b"}  # a catalog model a family
DECODE_STEPS = 32
EXTRA = ((8, 128),)  # (b, p) at 8 layers: reported only


def tiny_arch(family: str, n_layers: int):
    """The family's representative with tiny dimensions and n_layers layers (its GQA-ness kept)."""
    from simulator.catalog import get_arch

    arch = get_arch(REPRESENTATIVE[family])
    kv = 1 if arch.n_kv_heads < arch.n_heads else TINY["n_heads"]
    return dataclasses.replace(arch, name=f"tiny-{family}-{n_layers}", n_layers=n_layers, n_kv_heads=kv,
                               max_positions=4096, **TINY)


def time_generates(engine, b: int, p: int) -> tuple[float, float]:
    """(prefill s, decode step s) of the engine's own query timing (calibration/query_timing.py): generates of 1
    and of DECODE_STEPS + 1 new tokens, median of REPEATS runs after a warm-up."""
    row = engine.time_query(p, DECODE_STEPS + 1, b, repeats=REPEATS)
    return row["prefill_s"], row["decode_step_s"]


def line(layers: list[int], seconds: list[float]) -> dict:
    """Least-squares seconds = call + layer * n_layers, with the largest relative residual."""
    a = np.stack([np.ones(len(layers)), np.asarray(layers, float)], -1)
    (call, layer), *_ = np.linalg.lstsq(a, np.asarray(seconds), rcond=None)
    fitted = a @ np.array([call, layer])
    return {"call_s": float(call), "layer_s": float(layer),
            "max_rel_residual": float(np.max(np.abs(fitted / np.asarray(seconds) - 1)))}


def measure_family(family: str) -> dict:
    """Points and the fitted per-call and per-layer host seconds of one family, prefill and decode."""
    import torch

    from calibration.engine.hf_eager import HFEngine

    points, prefill, decode = [], [], []
    for n in LAYERS:
        arch = tiny_arch(family, n)
        assert hf_family(arch) == family, f"{arch.name} maps to {hf_family(arch)}, not {family}"
        engine = HFEngine(arch)
        pre, step = time_generates(engine, 1, 16)
        prefill.append(pre)
        decode.append(step)
        points.append({"n_layers": n, "b": 1, "p": 16, "prefill_s": pre, "decode_step_s": step})
        if n == 8:
            for b, p in EXTRA:
                pre_x, step_x = time_generates(engine, b, p)
                points.append({"n_layers": n, "b": b, "p": p, "prefill_s": pre_x, "decode_step_s": step_x,
                               "reported_only": True})
        del engine
        torch.cuda.empty_cache()
        print(f"{family:6s} L={n:3d}: prefill {pre * 1e3:7.3f} ms, decode step {step * 1e3:7.3f} ms", flush=True)
    return {"prefill": line(list(LAYERS), prefill), "decode": line(list(LAYERS), decode), "points": points,
            "model": f"tiny {REPRESENTATIVE[family]} ({TINY}, layers {list(LAYERS)})"}


def main(argv: list[str] | None = None) -> int:
    """Measure every family, write the section (with provenance) and optionally merge it into a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the section")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated, of " + ",".join(FAMILIES))
    ap.add_argument("--merge", metavar="TABLE", help="merge an existing --out file into this table and exit")
    args = ap.parse_args(argv)

    from calibration.table_io import merge_section, write_json_atomic

    if args.merge:
        import json

        with open(args.out) as f:
            merge_section(json.load(f), args.merge, HOST_SECTION)
        return 0
    import transformers

    from calibration.provenance import provenance

    section = {ENGINE: {f: measure_family(f) for f in args.families.split(",")},
               "provenance": {**provenance("python3 -m calibration.host_bench"),
                              "transformers": transformers.__version__}}
    write_json_atomic(args.out, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
