"""Fuzz test of the CLI contract: every command that needs no GPU, driven in-process with generated argument
lists that mix valid and invalid values (negative, zero, huge, NaN, empty, unicode, missing files,
unwritable paths, malformed JSON, CSV and config files).

The contract, for every argument list:
- the exit code is 0 or 2, and no traceback is printed;
- a non-zero exit prints exactly one line on stderr, and it names something (is not empty);
- every number in a JSON output is finite, and those of predict and sweep are non-negative;
- no half-written file: an output path is absent or complete, and no temporary file is left beside it.

CI runs FUZZ_EXAMPLES cases per command (about a minute in all); `IDEALRT_FUZZ_EXAMPLES=2000 pytest
tests/test_cli_fuzz.py` is the long run.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idealrt.cli import main
from simulator.paths import MEASUREMENTS_DIR

FUZZ_EXAMPLES = int(os.environ.get("IDEALRT_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="IDEALRT_FUZZ_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

LLAMA = {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_key_value_heads": 4, "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 2048}


# -- the files a case may name: written once per session -------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("fuzzfiles")
    shipped = (MEASUREMENTS_DIR / "h100-sxm_t1.jsonl").read_text().splitlines()
    texts = {
        "config.json": json.dumps(LLAMA),
        "mixtral.json": json.dumps({**LLAMA, "model_type": "mixtral", "num_local_experts": 4,
                                    "num_experts_per_tok": 2}),
        "awq.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "awq", "bits": 4}}),
        "fp32.json": json.dumps({**LLAMA, "torch_dtype": "float32"}),
        "window.json": json.dumps({**LLAMA, "model_type": "gemma2", "head_dim": 64, "sliding_window": 512}),
        "bad-type.json": json.dumps({**LLAMA, "hidden_size": "big"}),
        "list.json": "[1, 2, 3]",
        "broken.json": '{"model_type": "llama", ',
        "ünïcødé.json": json.dumps(LLAMA),
        "small.jsonl": "\n".join(shipped[:80]) + "\n",
        "broken.jsonl": shipped[0] + "\n{not json\n",
        "empty.jsonl": "",
        "rows.json": json.dumps([{"arch": "x", "gpu": "h100-sxm", "p": 1, "o": 1, "b": 1, "total_s": 0.1}]),
        "log.csv": "prompt_tokens,output_tokens,latency_s\n" + "".join(
            f"{p},{o},{0.02 + 1e-5 * p + 0.01 * o + 0.001 * (i % 7)}\n"
            for i, (p, o) in enumerate((p, o) for p in (10, 100, 400, 900) for o in (1, 5, 20))),
        "log-bad.csv": "prompt_tokens,output_tokens,latency_s\n10,2,nan\n5,-1,0.1\n",
        "log-header.csv": "a,b\n1,2\n",
        "accuracy.csv": "model,accuracy\nllama-3.2-1b,0.5\n",
        "accuracy-bad.csv": "model,accuracy\nllama-3.2-1b,lots\n",
        "binary.bin": "\udcff",
    }
    for name, text in texts.items():
        (d / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    return {name: str(d / name) for name in texts} | {"dir": str(d), "missing": str(d / "nope" / "x.json")}


NUMBERS = st.sampled_from(["1", "2", "7", "64", "0", "-3", "1000000000", "nan", "inf", "1e3", "2.5", "", " ",
                           "٣", "abc", "99999999999999999999999"])
SMALL = st.sampled_from(["1", "2", "16", "64", "100"])
MODELS = st.sampled_from(["llama-3.2-1b", "gpt2-xl", "llama-3.1-8b", "LLAMA-3.2-1B", "llama-3.1", "zz", "",
                          "ллама", "llama-3.2-1b,gpt2-xl"])
GPUS = st.sampled_from(["h100-sxm", "h200", "a100-80gb", "h100", "H100-SXM", "", "x", "h100-sxm,h200", "∞"])
CONFIGS = st.sampled_from(["config.json", "mixtral.json", "awq.json", "fp32.json", "window.json", "bad-type.json",
                           "list.json", "broken.json", "ünïcødé.json", "binary.bin", "missing", "dir"])
LISTS = st.sampled_from(["1,16", "1:64:x4", "128", "1:8", "0", "-1", "1:1000000", "a", "", "1:5:x1", "5:1",
                         "1,,2", "1:4:0", "70000", "2000,4000", "1:3:x2.5"])
OUT_NAMES = st.sampled_from(["out.csv", "out.json", "out.html", "out.txt", "sub/out.csv", "/proc/idealrt/out.csv",
                             "/proc/out.html", "", "dir", "ü.json"])


def out_path(files: dict, name: str) -> str:
    """An output path: inside a fresh folder of the session's tmp, or the absolute/unwritable one given."""
    if name.startswith("/") or name == "":
        return name
    if name == "dir":
        return files["dir"]
    return str(Path(tempfile.mkdtemp(dir=files["dir"])) / name)


def path_of(files: dict, name: str) -> str:
    return files.get(name, name)


@st.composite
def options(draw, pool: dict) -> list[str]:
    """A random subset of `pool` (option -> strategy of its value, or None for a flag), in random order."""
    argv = []
    for opt in draw(st.permutations(list(pool))):
        if draw(st.booleans()):
            value = pool[opt]
            argv += [opt] if value is None else [opt, draw(value)]
    return argv


# -- the contract ---------------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: --help (0) or a bad option (2)
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from numbers(v)


def check_complete(path: str) -> None:
    """The file at `path` (if any) is whole, and no temporary file is left beside it."""
    p = Path(path)
    if p.parent.is_dir() and str(p.parent).startswith(tempfile.gettempdir()):
        assert not list(p.parent.glob(f".{p.name}.*.tmp")), f"temporary file left beside {p}"
    if not p.is_file():
        return
    text = p.read_text()
    if p.suffix == ".json":
        json.loads(text)
    elif p.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows and all(len(r) == len(rows[0]) for r in rows), f"ragged CSV {p}"
    elif p.suffix == ".html":
        assert text.rstrip().endswith("</html>"), f"truncated HTML {p}"


def check_contract(argv: list[str], outputs: list[str] = (), non_negative: bool = False) -> int:
    rc, out, err = run_cli(argv)
    assert rc in (0, 2), f"exit {rc} for {argv}\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, f"traceback for {argv}\n{err}"
    if rc:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) > 10, f"stderr of {argv} is not one line:\n{err}"
    elif "--json" in argv and "--help" not in argv and "-h" not in argv:
        for x in numbers(json.loads(out)):
            assert math.isfinite(x), f"non-finite number in the JSON of {argv}"
            assert not non_negative or x >= 0, f"negative number {x} in the JSON of {argv}"
    for path in outputs:
        if path:
            check_complete(path)
    return rc


# -- one test per command -------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_predict(files, data):
    src = data.draw(st.one_of(st.tuples(st.just("--model"), MODELS),
                              st.tuples(st.just("--config"), CONFIGS.map(lambda n: path_of(files, n)))))
    argv = ["predict", *src, *data.draw(options({
        "--gpu": GPUS, "--prompt": st.one_of(SMALL, NUMBERS), "--output": st.one_of(SMALL, NUMBERS),
        "--batch": st.one_of(SMALL, NUMBERS), "--tp": NUMBERS, "--stack": st.sampled_from(["triton", "torch", "x"]),
        "--no-fit": None, "--price-per-hour": NUMBERS, "--json": None}))]
    check_contract(argv, non_negative=True)


@SETTINGS
@given(data=st.data())
def test_sweep(files, data):
    out = out_path(files, data.draw(OUT_NAMES))
    html = out_path(files, data.draw(OUT_NAMES.map(lambda n: n.replace(".csv", ".html"))))
    src = data.draw(options({"--model": MODELS, "--config": CONFIGS.map(lambda n: path_of(files, n))}))
    argv = ["sweep", *src, *data.draw(options({
        "--gpu": GPUS, "--prompt": LISTS, "--output": st.sampled_from(["1", "4", "1:16:x4", "0", "x", "3000"]),
        "--batch": st.sampled_from(["1", "1,4", "0", "1:2", "100000"]), "--tp": st.sampled_from(["auto", "1", "2,auto",
                                                                                                  "3", "0", "x"]),
        "--no-fit": None, "--price-per-hour": NUMBERS, "-o": st.just(out), "--html": st.just(html),
        "--json": None}))]
    check_contract(argv, [out, html], non_negative=True)


@SETTINGS
@given(argv=st.sampled_from([["models"], ["models", "--json"], ["gpus"], ["gpus", "--json"], ["models", "--x"],
                             ["gpus", "extra"], ["nope"], [], ["predict", "--help"], ["sweep", "-h"]]))
def test_catalogs_and_help(argv):
    check_contract(argv)


@SETTINGS
@given(data=st.data())
def test_fit(files, data):
    out_dir = data.draw(st.sampled_from([tempfile.mkdtemp(dir=files["dir"]), files["missing"], "/proc/idealrt",
                                         "/proc", files["small.jsonl"]]))
    argv = ["fit", "--out-dir", out_dir, *data.draw(options({
        "--measurements": st.sampled_from(["small.jsonl", "broken.jsonl", "empty.jsonl", "missing", "list.json"]
                                          ).map(lambda n: path_of(files, n)),
        "--gpu": GPUS, "--stack": st.sampled_from(["triton", "torch", "x"]), "--max-queries": NUMBERS,
        "--include-moe": None}))]
    if "--measurements" not in argv:
        argv += ["--measurements", files["small.jsonl"]]
    if data.draw(st.booleans()):
        argv += ["--bounds", data.draw(NUMBERS), data.draw(NUMBERS)]
    check_contract(argv, [str(Path(out_dir) / f"{g}_{s}.json") for g in ("h100-sxm", "h200") for s in ("triton",)])


@SETTINGS
@given(data=st.data())
def test_validate(files, data):
    argv = ["validate", *data.draw(options({
        "--measurements": st.sampled_from(["small.jsonl", "broken.jsonl", "empty.jsonl", "missing"]
                                          ).map(lambda n: path_of(files, n)),
        "--gpu": GPUS, "--stack": st.sampled_from(["triton", "torch", ""]), "--max-queries": NUMBERS,
        "--leave-out-arch": MODELS, "--fits-dir": st.sampled_from([files["dir"], files["missing"]]),
        "--json": None}))]
    if "--measurements" not in argv:
        argv += ["--measurements", files["small.jsonl"]]
    check_contract(argv)


@SETTINGS
@given(data=st.data())
def test_profile_simulated(files, data):
    argv = ["profile", "--simulated", "--model", data.draw(MODELS), *data.draw(options({
        "--gpu": GPUS, "--t": NUMBERS, "--b": NUMBERS, "--stack": st.sampled_from(["triton", "torch", "x"]),
        "--prompts": LISTS, "--outputs": st.sampled_from(["1,16", "1", "0", "x", "1,100000"]),
        "--max-knots": st.sampled_from(["0", "2", "-1", "9"]), "--json": None}))]
    check_contract(argv)


@SETTINGS
@given(data=st.data())
def test_denoise(files, data):
    log = path_of(files, data.draw(st.sampled_from(["log.csv", "log-bad.csv", "log-header.csv", "empty.jsonl",
                                                    "binary.bin", "missing", "dir"])))
    argv = ["denoise", log, *data.draw(options({"--quantile": NUMBERS, "--max-knots": st.sampled_from(["0", "2", "-1"]),
                                                "--quadratic": None, "--json": None}))]
    check_contract(argv)


@SETTINGS
@given(data=st.data())
def test_report(files, data):
    out = out_path(files, data.draw(OUT_NAMES.map(lambda n: n.replace(".csv", ".html"))))
    argv = ["report", "-o", out, *data.draw(options({
        "--gpu": GPUS, "--stack": st.sampled_from(["triton", "torch", "x"]),
        "--data-dir": st.sampled_from([files["dir"], files["missing"], "/nonexistent", ""]),
        "--whatif": st.sampled_from(["rows.json", "list.json", "broken.json", "config.json", "missing"]
                                    ).map(lambda n: path_of(files, n))}))]
    if "--whatif" not in argv and "--data-dir" not in argv:
        argv += ["--whatif", files["rows.json"]]  # the shipped calibration report takes seconds: rarely
    check_contract(argv, [out])


@SETTINGS
@given(data=st.data())
def test_study(files, data):
    csv_out = out_path(files, data.draw(OUT_NAMES))
    html = out_path(files, data.draw(OUT_NAMES.map(lambda n: n.replace(".csv", ".html"))))
    argv = ["study", "--stack", "triton", "--models", data.draw(st.sampled_from(
        ["llama-3.2-1b", "gpt2-xl,llama-3.2-1b", "", ",", "zz", "llama-3.2-1b,ünï"])),
        "--gpus", data.draw(st.sampled_from(["h100-sxm", "h100", "", "h100-sxm,x"])), *data.draw(options({
            "--csv": st.just(csv_out), "--html": st.just(html), "--no-fit": None,
            "--accuracy": st.sampled_from(["accuracy.csv", "accuracy-bad.csv", "missing", "log.csv"]
                                          ).map(lambda n: path_of(files, n))}))]
    check_contract(argv, [csv_out, html])
