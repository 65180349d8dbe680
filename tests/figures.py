"""The shipped figures, gathered through the installed `idealrt` command: validation on the held-out
measured queries, predictions for five catalog models on three GPUs, and the study's CSV.

`python -m tests.figures --write` stores them in tests/data/figures.json (after an intended model change);
tests/test_figures.py checks that the current code reproduces them exactly.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "figures.json"
MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "falcon-7b", "gpt-j-6b")
GPUS = ("h100-sxm", "h200", "a100-80gb")  # two measured tables and one derived
REQUEST = ("--prompt", "1900", "--output", "128", "--batch", "4")


def _idealrt(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "idealrt", *args], capture_output=True, text=True)
    if done.returncode or not done.stdout:
        raise RuntimeError(f"idealrt {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _predict(model: str, gpu: str) -> dict:
    """The numeric fields of `idealrt predict --json` (paths and warnings left out)."""
    out = json.loads(_idealrt("predict", "--model", model, "--gpu", gpu, *REQUEST, "--json"))
    keep = ("tp", "prefill_s", "decode_s", "decode_step_s", "total_s", "tokens_per_s", "by_class", "fixed",
            "memory", "cost_usd", "energy_j")
    return {k: out[k] for k in keep if k in out}


def _study_rows() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.csv"
        _idealrt("study", "--csv", str(path))
        return list(csv.DictReader(io.StringIO(path.read_text())))


def snapshot(study: bool = True) -> dict:
    """Every figure the comparison covers, as plain JSON."""
    validate = json.loads(_idealrt("validate", "--json"))
    validate.pop("fits", None)  # absolute paths
    validate.pop("provenance", None)  # the date and command of the run
    out = {"validate": validate,
           "predict": {f"{m}@{g}": _predict(m, g) for m in MODELS for g in GPUS}}
    if study:
        out["study"] = _study_rows()
    return out


def main() -> None:
    """Print the snapshot, or store it as the golden file with --write."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"store as {GOLDEN}")
    args = ap.parse_args()
    data = snapshot()
    text = json.dumps(data, indent=1, sort_keys=True)
    if args.write:
        GOLDEN.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
