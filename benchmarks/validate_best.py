"""The best stack's held-out and leave-one-architecture-out accuracy beside the triton stack's on the same
architectures and queries (issue 18's bar), from the shipped rows, table and fits; CPU only.

    python -m benchmarks.validate_best --gpu h200 --out benchmarks/results/validate_best_h200.json

The triton side uses only the triton rows of the architectures the best variant was measured on, so both stacks
are judged on the same queries; each is fitted on its rows in a temporary directory (the shipped fit of best is
`idealrt fit --gpu h200 --stack best`, the same). Both with and without the table's layer-shape GEMM points.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from calibration.table_io import write_json_atomic
from simulator.layer_points import ENV

ROWS = "calibration/measurements/{gpu}_t1.jsonl"


def idealrt(*args: str, layers: bool = True) -> dict | None:
    """Run the CLI (with the tables' layer-shape GEMM points, or without: simulator.layer_points); its JSON
    output when it prints one."""
    env = {**os.environ, ENV: "on" if layers else "off"}
    out = subprocess.run([sys.executable, "-m", "idealrt", *args], check=True, capture_output=True, text=True,
                         env=env).stdout
    return json.loads(out) if "--json" in args else None


def summary(heldout: dict, loao: dict) -> dict:
    """Median and P95 % error per phase: held-out table only and fitted, leave-one-architecture-out fitted."""
    def pick(rows: list[dict], **kw) -> dict:
        return {r["phase"]: {"n": r["n"], "median_pct": round(r["median_pct"], 2), "p95_pct": round(r["p95_pct"], 2)}
                for r in rows if all(r.get(k) == v for k, v in kw.items())}
    return {"heldout_table": pick(heldout["comparison"], method="table"),
            "heldout_fitted": pick(heldout["comparison"], method="fitted"), "loao_fitted": pick(loao["by_gpu"])}


def validate(stack: str, gpu: str, rows_file: str, layers: bool) -> dict:
    """Fit (in a temporary directory) and validate one stack on `rows_file`: held-out and leave-one-out."""
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--gpu", gpu, "--stack", stack, "--measurements", rows_file]
        idealrt("fit", *common, "--out-dir", tmp, layers=layers)
        return {"heldout": idealrt("validate", *common, "--fits-dir", tmp, "--json", layers=layers),
                "loao": idealrt("validate", *common, "--fits-dir", tmp, "--leave-out-arch", "each", "--json",
                                layers=layers)}


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    rows_file = ROWS.format(gpu=args.gpu)
    rows = [json.loads(line) for line in Path(rows_file).read_text().splitlines() if line.strip()]
    archs = sorted({r["arch"] for r in rows if r.get("engine_variant") == "best"})
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        same = Path(tmp) / "triton_rows.jsonl"
        same.write_text("".join(json.dumps(r) + "\n" for r in rows if r["backend"] == "triton"
                                and not r.get("engine_variant") and r["arch"] in archs))
        for layers in (True, False):
            key = "with_gemm_layers" if layers else "without_gemm_layers"
            result[key] = {"best": validate("best", args.gpu, rows_file, layers),
                           "triton_same_queries": validate("triton", args.gpu, str(same), layers)}
    out = {
        "what": f"{args.gpu} t = 1, the best stack (rows of the engine variant best) beside the triton stack on the "
                f"same {len(archs)} architectures and queries, each fitted on its rows: held-out and "
                "leave-one-architecture-out (the left-out architecture's own layer-shape GEMM points hidden), absolute "
                "% error; with the table's gemm_layers section (IDEALRT_GEMM_LAYERS=on) and without it (the default: the "
                "sweep grid alone, the figure for unseen architectures)",
        "command": f"python -m benchmarks.validate_best --gpu {args.gpu} --out {args.out}",
        "commands": {"fit": f"idealrt fit --gpu {args.gpu} --stack STACK --measurements ROWS --out-dir TMP",
                     "heldout": f"idealrt validate --gpu {args.gpu} --stack STACK --measurements ROWS --fits-dir TMP "
                                "--json",
                     "loao": f"idealrt validate --gpu {args.gpu} --stack STACK --measurements ROWS --fits-dir TMP "
                             "--leave-out-arch each --json",
                     "rows": f"best: {rows_file}; triton: its triton rows of the same architectures only"},
        "architectures": archs,
        "summary": {k: {s: summary(v["heldout"], v["loao"]) for s, v in r.items()} for k, r in result.items()},
        **result}
    write_json_atomic(args.out, out)
    print(json.dumps(out["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
