"""Fuzz test of the CLI contract: every command that needs no GPU, driven in-process with generated argument
lists that mix valid and invalid values (negative, zero, huge, NaN, empty, unicode, missing files,
unwritable paths, malformed JSON, CSV and config files).

The contract, for every argument list:
- the exit code is 0 or 2, and no traceback is printed;
- a non-zero exit prints exactly one line on stderr, and it names something (is not empty);
- every number in a JSON output is finite, and those of predict and sweep are non-negative;
- no half-written file: an output path is absent or complete, and no temporary file is left beside it;
  nothing is written into the working folder (an empty output name is refused, not a default).

CI runs CASES cases per command, over 2,000 in all (a few minutes: the slow commands get fewer); with
`IDEALRT_FUZZ_EXAMPLES=N pytest tests/test_cli_fuzz.py` every command gets N (the long run).
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

# cases a CI run gives each command, by what one case costs (study ~0.6 s, report ~0.04 s): 2,010 in all
CASES = {"predict": 300, "sweep": 300, "fit": 60, "validate": 60, "profile": 150, "denoise": 500, "report": 600,
         "study": 40, "plan": 60}
LONG_RUN = os.environ.get("IDEALRT_FUZZ_EXAMPLES")


def fuzz_settings(command: str) -> settings:
    """Hypothesis settings of one command's fuzz test: CASES (derandomized, as CI runs it) or the long run's N."""
    return settings(max_examples=int(LONG_RUN) if LONG_RUN else CASES[command], deadline=None,
                    derandomize=LONG_RUN is None,
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
        "awq8.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "awq", "bits": 8}}),
        "fp8.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "fp8",
                                                                 "activation_scheme": "dynamic"}}),
        "fp8-block.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "fp8",
                                                                       "weight_block_size": [128, 128]}}),
        "bnb.json": json.dumps({**LLAMA, "quantization_config": {"quant_method": "bitsandbytes"}}),
        "fp32.json": json.dumps({**LLAMA, "torch_dtype": "float32"}),
        "window.json": json.dumps({**LLAMA, "model_type": "gemma2", "head_dim": 64, "sliding_window": 512}),
        "bad-type.json": json.dumps({**LLAMA, "hidden_size": "big"}),
        "list.json": "[1, 2, 3]",
        "broken.json": '{"model_type": "llama", ',
        "ünïcødé.json": json.dumps(LLAMA),
        "small.jsonl": "\n".join(shipped[:80]) + "\n",
        "broken.jsonl": shipped[0] + "\n{not json\n",
        "empty.jsonl": "",
        "rows.json": json.dumps([{"arch": "x", "gpu": "h100-sxm", "t": 1, "b": 1, "p": 1, "o": 2, "prefill_s": 0.05,
                                  "decode_step_s": 0.01, "total_s": 0.06}]),
        "short-rows.json": json.dumps([{"arch": "x", "gpu": "h100-sxm", "p": 1, "o": 1, "b": 1, "total_s": 0.1}]),
        "log.csv": "prompt_tokens,output_tokens,latency_s\n" + "".join(
            f"{p},{o},{0.02 + 1e-5 * p + 0.01 * o + 0.001 * (i % 7)}\n"
            for i, (p, o) in enumerate((p, o) for p in (10, 100, 400, 900) for o in (1, 5, 20))),
        "log-bad.csv": "prompt_tokens,output_tokens,latency_s\n10,2,nan\n5,-1,0.1\n",
        "log-header.csv": "a,b\n1,2\n",
        "accuracy.csv": "model,accuracy\nllama-3.2-1b,0.5\n",
        "accuracy-bad.csv": "model,accuracy\nllama-3.2-1b,lots\n",
        "binary.bin": "\udcff",
        "trace.csv": "arrival_s,prompt_tokens,output_tokens\n0,100,4\n0.5,30,1\n0.2,500,8\n",
        "trace-bad.csv": "arrival_s,prompt_tokens,output_tokens\n0,100,4\n0.5,-30,1\n",
        "trace-long.csv": "arrival_s,prompt_tokens,output_tokens\n0,100000,4\n",
    }
    for name, text in texts.items():
        (d / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    (d / "calib" / "measurements").mkdir(parents=True)  # a calibration folder with no data yet
    return {name: str(d / name) for name in texts} | {"dir": str(d), "missing": str(d / "nope" / "x.json"),
                                                       "calib": str(d / "calib")}


GOOD_INT, BAD_INT = ["1", "2", "16", "64", "100"], ["0", "-3", "1000000000", "nan", "inf", "1e3", "2.5", "", " ",
                                                     "٣", "abc", "99999999999999999999999"]
GOOD_MODEL, BAD_MODEL = ["llama-3.2-1b", "gpt2-xl"], ["llama-3.1-8b", "LLAMA-3.2-1B", "llama-3.1", "zz", "", "ллама",
                                                     "llama-3.2-1b,gpt2-xl", "llama-3.1-405b"]
GOOD_GPU, BAD_GPU = ["h100-sxm", "h200", "a100-80gb", "H100-SXM"], ["h100", "", "x", "h100-sxm,h200", "∞", "l40s",
                                                                     "v100"]
GOOD_CONFIG = ["config.json", "mixtral.json", "fp32.json", "ünïcødé.json", "awq.json", "fp8.json"]
BAD_CONFIG = ["awq8.json", "fp8-block.json", "bnb.json", "window.json", "bad-type.json", "list.json", "broken.json", "binary.bin", "missing", "dir"]
GOOD_LIST, BAD_LIST = ["1,16", "1:64:x4", "128", "1:8", "2000,4000"], ["0", "-1", "1:1000000", "a", "", "1:5:x1", "5:1",
                                                                       "1,,2", "1:4:0", "70000", "1:3:x2.5"]
GOOD_OUT = ["out.csv", "out.json", "ü.json"]
BAD_OUT = ["out.html", "out.txt", "sub/out.csv", "/proc/idealrt/out.csv", "/proc/out.csv", "", "dir"]
GOOD_HTML, BAD_HTML = ["out.html", "ü.html"], ["out.json", "sub/out.html", "/proc/idealrt/o.html", "/proc/o.html", "",
                                                "dir"]


class Values:
    """Option values of one case: good ones, except up to two bad ones (a third of the cases have none)."""

    def __init__(self, data) -> None:
        self.data, self.budget = data, data.draw(st.integers(0, 2), label="bad values")

    def __call__(self, good: list[str], bad: list[str]) -> str:
        if self.budget and self.data.draw(st.integers(0, 2)) == 0:
            self.budget -= 1
            return self.data.draw(st.sampled_from(bad))
        return self.data.draw(st.sampled_from(good))

    def options(self, pool: dict, required: tuple[str, ...] = ()) -> list[str]:
        """Some of `pool` (option -> (good, bad) values, or None for a flag) in random order; a required
        option is left out only as a bad value."""
        argv = []
        for opt in self.data.draw(st.permutations(list(pool))):
            if opt in required:
                if self.budget and self.data.draw(st.integers(0, 9)) == 0:
                    self.budget -= 1
                    continue
            elif not self.data.draw(st.booleans()):
                continue
            argv += [opt] if pool[opt] is None else [opt, self(*pool[opt])]
        return argv


def out_path(files: dict, name: str) -> str:
    """An output path: inside a fresh folder of the session's tmp, or the absolute/unwritable one given."""
    if name.startswith("/") or name == "":
        return name
    if name == "dir":
        return files["dir"]
    return str(Path(tempfile.mkdtemp(dir=files["dir"])) / name)


def paths(files: dict, names: list[str]) -> list[str]:
    return [files.get(n, n) for n in names]


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
    if text.startswith("<!DOCTYPE html>") or p.suffix == ".html":  # --html writes HTML whatever the name
        assert text.rstrip().endswith("</html>"), f"truncated HTML {p}"
    elif p.suffix == ".json":
        json.loads(text)
    elif p.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows and all(len(r) == len(rows[0]) for r in rows), f"ragged CSV {p}"


EXITS: dict[tuple[str, int], int] = {}  # (command, exit code) -> cases: printed by the long run


def check_contract(argv: list[str], outputs: list[str] = (), non_negative: bool = False) -> int:
    before = set(os.listdir())
    rc, out, err = run_cli(argv)
    assert set(os.listdir()) == before, f"{argv} wrote into the working folder: {set(os.listdir()) - before}"
    key = (argv[0] if argv else "", rc)
    EXITS[key] = EXITS.get(key, 0) + 1
    assert rc in (0, 2), f"exit {rc} for {argv}\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, f"traceback for {argv}\n{err}"
    if rc:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) > 10, f"stderr of {argv} is not one line:\n{err}"
    elif "--json" in argv and "--help" not in argv and "-h" not in argv:
        record = json.loads(out)
        if isinstance(record, dict):  # F(p)'s fitted slopes may dip below 0 (simulator/profile.py: known)
            record = {k: v for k, v in record.items() if k != "profile"}
        for x in numbers(record):
            assert math.isfinite(x), f"non-finite number in the JSON of {argv}"
            assert not non_negative or x >= 0, f"negative number {x} in the JSON of {argv}"
    for path in outputs:
        if path:
            check_complete(path)
    return rc


def summary() -> str:
    """Cases run and their exit codes per command (conftest prints it at the end of the run)."""
    by = ", ".join(f"{c or '(none)'} exit {rc}: {n}" for (c, rc), n in sorted(EXITS.items()))
    return f"CLI fuzz: {sum(EXITS.values())} cases ({by})"


# -- one test per command -------------------------------------------------------------------------------
STACKS = (["triton", "torch"], ["x", ""])


@fuzz_settings("predict")
@given(data=st.data())
def test_predict(files, data):
    v = Values(data)
    src = ["--model", v(GOOD_MODEL, BAD_MODEL)] if data.draw(st.booleans()) else \
        ["--config", v(paths(files, GOOD_CONFIG), paths(files, BAD_CONFIG))]
    argv = ["predict", *src, *v.options({
        "--gpu": (GOOD_GPU, BAD_GPU), "--prompt": (GOOD_INT, BAD_INT), "--output": (GOOD_INT, BAD_INT),
        "--batch": (GOOD_INT, BAD_INT), "--tp": (["1", "2"], BAD_INT), "--stack": STACKS, "--no-fit": None,
        "--price-per-hour": (["0", "2.5"], ["nan", "inf", "-1", "x"]), "--json": None,
        "--weights": (["bf16", "fp8", "int4"], ["fp4", "", "FP8", "fp32"]), "--kv": (["bf16", "fp8"], ["int8", ""])},
        ("--gpu", "--prompt", "--output"))]
    check_contract(argv, non_negative=True)


@fuzz_settings("sweep")
@given(data=st.data())
def test_sweep(files, data):
    v = Values(data)
    out, html = out_path(files, v(GOOD_OUT, BAD_OUT)), out_path(files, v(GOOD_HTML, BAD_HTML))
    src = v.options({"--model": (GOOD_MODEL + ["gpt2-xl,llama-3.2-1b"], BAD_MODEL),
                     "--config": (paths(files, GOOD_CONFIG), paths(files, BAD_CONFIG))}, ("--model",))
    argv = ["sweep", *src, *v.options({
        "--gpu": (GOOD_GPU + ["h100-sxm,h200"], BAD_GPU), "--prompt": (GOOD_LIST, BAD_LIST),
        "--output": (["1", "4", "1:16:x4", "3000"], ["0", "x", ""]), "--batch": (["1", "1,4", "1:2"], ["0", "100000"]),
        "--tp": (["auto", "1", "2,auto"], ["3", "0", "x"]), "--no-fit": None, "--stack": STACKS,
        "--price-per-hour": (["0", "2.5"], ["nan", "-1"]), "-o": ([out], [out]), "--html": ([html], [html]),
        "--json": None, "--weights": (["bf16", "fp8,int4", "bf16,fp8,int4"], ["fp4", "", "bf16,,fp8"]),
        "--kv": (["fp8", "bf16,fp8"], ["x", ""])}, ("--gpu", "--prompt", "--output"))]
    check_contract(argv, [out, html], non_negative=True)


@fuzz_settings("plan")
@given(data=st.data())
def test_plan(files, data):
    v = Values(data)
    html = out_path(files, v(GOOD_HTML, BAD_HTML))
    if data.draw(st.booleans()):
        src = ["--workload", v(paths(files, ["trace.csv"]), paths(files, ["trace-bad.csv", "trace-long.csv", "log.csv",
                                                                         "binary.bin", "missing"]))]
    else:
        src = ["--lengths", v(["fixed:p=64,o=4", "uniform:p=1-300,o=1-9", "lognormal:p=100,o=5,sigma=0.3"],
                              ["fixed:p=0,o=1", "normal:p=1,o=1", "", "uniform:p=5-1,o=1", "fixed:p=1"]),
               "--rate", v(["1", "50", "0.5"], ["0", "-1", "nan", "inf", "x"])]
    argv = ["plan", *src, *v.options({
        "--model": (GOOD_MODEL, BAD_MODEL), "--gpus": (["h100-sxm", "h100-sxm,h200"], BAD_GPU + ["h100-sxm,,"]),
        "--slo": (["ttft_p95=0.5", "tpot_p95=0.05,e2e_p99=3"], ["ttft=1", "ttft_p95=-1", "", "x=1", "ttft_p95=nan"]),
        "--requests": (["1", "20", "50"], ["0", "-1", "x", "2000000"]), "--seed": (["0", "7"], ["-1", "x"]),
        "--tp": (["1", "1,2"], ["3", "0", "x"]), "--replicas": (["1", "1,2"], ["0", "x"]),
        "--max-batch": (["4", "1,16"], ["0", "x"]), "--chunk": (["32", "512"], ["0", "x", "-5"]),
        "--policy": (["prefill-first", "decode-first"], ["x", ""]), "--stack": STACKS, "--no-fit": None,
        "--price-per-hour": (["0", "2.5"], ["nan", "-1"]), "--top": (["3"], ["0", "x"]), "--html": ([html], [html]),
        "--json": None}, ("--model", "--gpus", "--slo", "--requests", "--tp", "--replicas", "--max-batch"))]
    check_contract(argv, [html], non_negative=True)


@settings(max_examples=10, deadline=None)  # ten fixed argument lists
@given(argv=st.sampled_from([["models"], ["models", "--json"], ["gpus"], ["gpus", "--json"], ["models", "--x"],
                             ["gpus", "extra"], ["nope"], [], ["predict", "--help"], ["sweep", "-h"]]))
def test_catalogs_and_help(argv):
    check_contract(argv)


@fuzz_settings("fit")
@given(data=st.data())
def test_fit(files, data):
    v = Values(data)
    out_dir = v([tempfile.mkdtemp(dir=files["dir"])], [files["missing"], "/proc/idealrt", "/proc", files["small.jsonl"]])
    argv = ["fit", "--out-dir", out_dir, *v.options({
        "--measurements": (paths(files, ["small.jsonl"]), paths(files, ["broken.jsonl", "empty.jsonl", "missing",
                                                                        "list.json", "log.csv"])),
        "--gpu": (["h100-sxm"], BAD_GPU), "--stack": (["triton"], ["torch", "x"]),
        "--max-queries": (["6", "3"], BAD_INT), "--bounds": (["0.7 1.5"], ["nan 1", "2 1", "-1 0", "1"]),
        "--include-moe": None}, ("--measurements",))]
    argv = [a for arg in argv for a in (arg.split(" ") if arg.count(" ") == 1 and arg[0] != " " else [arg])]
    check_contract(argv, [str(Path(out_dir) / f"{g}_triton.json") for g in ("h100-sxm", "h200")])


@fuzz_settings("validate")
@given(data=st.data())
def test_validate(files, data):
    v = Values(data)
    argv = ["validate", *v.options({
        "--measurements": (paths(files, ["small.jsonl"]), paths(files, ["broken.jsonl", "empty.jsonl", "missing"])),
        "--gpu": (["h100-sxm"], BAD_GPU), "--stack": (["triton"], ["torch", ""]), "--max-queries": (["6"], BAD_INT),
        "--leave-out-arch": (["llama-3.1-8b"], BAD_MODEL), "--fits-dir": ([files["dir"]], [files["missing"]]),
        "--fit-on-archs": (["1", "2"], ["0", "x", "-1"]), "--json": None}, ("--measurements",))]
    check_contract(argv)


@fuzz_settings("profile")
@given(data=st.data())
def test_profile_simulated(files, data):
    v = Values(data)
    argv = ["profile", "--simulated", "--model", v(GOOD_MODEL, BAD_MODEL), *v.options({
        "--gpu": (GOOD_GPU, BAD_GPU), "--t": (["1", "2"], BAD_INT), "--b": (["1", "4"], BAD_INT), "--stack": STACKS,
        "--prompts": (["1,16,64,256", "1,512"], BAD_LIST + ["1,200000"]), "--outputs": (["1,16", "1,4"],
                                                                                       ["0", "x", "1,100000"]),
        "--max-knots": (["0", "2"], ["-1", "9"]), "--json": None})]
    check_contract(argv)


@fuzz_settings("denoise")
@given(data=st.data())
def test_denoise(files, data):
    v = Values(data)
    log = v(paths(files, ["log.csv"]), paths(files, ["log-bad.csv", "log-header.csv", "empty.jsonl", "binary.bin",
                                                     "missing", "dir"]))
    argv = ["denoise", log, *v.options({"--quantile": (["0.05", "0.2"], ["0", "1", "-1", "nan", "x"]),
                                        "--max-knots": (["0", "2"], ["-1", "50"]), "--quadratic": None,
                                        "--json": None})]
    check_contract(argv)


@fuzz_settings("report")
@given(data=st.data())
def test_report(files, data):
    v = Values(data)
    out = out_path(files, v(GOOD_HTML, BAD_HTML))
    argv = ["report", "-o", out, *v.options({
        "--gpu": (GOOD_GPU, BAD_GPU), "--stack": STACKS,
        "--data-dir": ([files["calib"]], [files["dir"], files["missing"], "/nonexistent", ""]),
        "--whatif": (paths(files, ["rows.json"]), paths(files, ["short-rows.json", "list.json", "broken.json",
                                                                "config.json", "missing"]))},
        ("--whatif",))]
    if "--whatif" not in argv and "--data-dir" not in argv:
        argv += ["--data-dir", files["calib"]]  # the shipped calibration report takes seconds: not fuzzed
    check_contract(argv, [out])


@fuzz_settings("study")
@given(data=st.data())
def test_study(files, data):
    v = Values(data)
    csv_out, html = out_path(files, v(GOOD_OUT, BAD_OUT)), out_path(files, v(GOOD_HTML, BAD_HTML))
    argv = ["study", "--stack", "triton", "--models", v(["llama-3.2-1b", "gpt2-xl,llama-3.2-1b"],
                                                        ["", ",", "zz", "llama-3.2-1b,ünï"]),
            "--gpus", v(["h100-sxm"], ["h100", "", "h100-sxm,x"]), *v.options({
                "--csv": ([csv_out], [csv_out]), "--html": ([html], [html]), "--no-fit": None,
                "--accuracy": (paths(files, ["accuracy.csv"]), paths(files, ["accuracy-bad.csv", "missing", "log.csv"]))})]
    check_contract(argv, [csv_out, html])
