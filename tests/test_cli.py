"""The predict, sweep, models and gpus commands: their outputs, and every bad-input path ending in exit
code 2 with a one-line error (no traceback)."""
import csv
import json

import pytest

from simulator import fits
from idealrt.cli import main

LLAMA_8B_CONFIG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 128256,
                   "max_position_embeddings": 131072, "tie_word_embeddings": False, "hidden_act": "silu"}


@pytest.fixture(autouse=True)
def no_fit_files(tmp_path, monkeypatch):
    """Fit files come from an empty temp folder unless a test writes one."""
    fit_dir = tmp_path / "fits"
    fit_dir.mkdir()
    monkeypatch.setattr(fits, "FITS_DIR", fit_dir)
    return fit_dir


def exit_code(argv):
    """main's return code, or the code argparse exits with on a malformed option."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_prints_the_breakdown(capsys):
    assert main(["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "512", "--output", "64"]) == 0
    out = capsys.readouterr().out
    for text in ("prefill", "decode step, first (context 513)", "decode step, last (context 575)", "total",
                 "By op class", "Memory per GPU", "KV cache", "cost", "energy", "F(p) + g·(o − 1)",
                 "time model:", "fit: none (h100-sxm_triton.json not found"):
        assert text in out, text


def test_predict_json_is_consistent(capsys):
    r = run_json(capsys, "predict", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--prompt", "300",
                 "--output", "20", "--batch", "2", "--json")
    assert r["tp"] == 2 and r["n_gpus"] == 2  # 70B does not fit one 80 GiB GPU
    assert r["total_s"] == pytest.approx(r["prefill_s"] + r["decode_s"])
    device = sum(c["prefill_s"] for c in r["by_class"].values())
    assert r["prefill_s"] == pytest.approx(max(device, r["host"]["prefill_s"]) + r["fixed"]["prefill_fixed_s"])
    assert r["memory_per_gpu"]["fits"] and r["time_model"] and r["fit"].startswith("none")
    assert isinstance(r["warnings"], list)
    assert r["profile"]["form_total_s"] == pytest.approx(r["total_s"], rel=0.05)


def test_predict_applies_the_default_fit_unless_told_not_to(capsys, no_fit_files):
    path = no_fit_files / "h100-sxm_triton.json"
    path.write_text(json.dumps({"gpu": "h100-sxm", "stack": "triton",
                                "coefficients": {"gemm": 2.0, "prefill_fixed_s": 0.5}}))
    argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "64", "--output", "8", "--json"]
    fitted, raw = run_json(capsys, *argv), run_json(capsys, *argv, "--no-fit")
    assert fitted["fit"] == str(path) and raw["fit"] == "none (--no-fit)"
    assert fitted["prefill_s"] > raw["prefill_s"] + 0.5


def test_predict_from_config_matches_the_catalog(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_8B_CONFIG))
    common = ["--gpu", "a100-80gb", "--prompt", "100", "--output", "10", "--json", "--no-fit"]
    from_config = run_json(capsys, "predict", "--config", str(cfg), *common)
    from_catalog = run_json(capsys, "predict", "--model", "llama-3.1-8b", *common)
    assert from_config["total_s"] == pytest.approx(from_catalog["total_s"], rel=1e-12)


def test_sweep_writes_rows_and_a_summary(capsys, tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["sweep", "--model", "llama-3.1-8b,mixtral-8x7b", "--gpu", "h100-sxm,a100-80gb",
                 "--prompt", "128,1:4096:x8", "--output", "1:64:x4", "--batch", "1,4", "-o", str(out)]) == 0
    screen = capsys.readouterr().out
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 6 * 4 * 2  # models x GPUs x p (1, 8, 64, 128, 512, 4096) x o (1, 4, 16, 64) x b
    assert {"arch", "gpu", "t", "p", "o", "b", "total_s", "fits", "time_model", "fit", "warnings"} <= set(rows[0])
    assert sorted({int(r["p"]) for r in rows}) == [1, 8, 64, 128, 512, 4096]
    assert "rows written to" in screen and "time model" in screen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fits", "sweep.csv"]  # no temp file left behind


def test_sweep_json_and_fixed_tp(capsys, tmp_path):
    rows = run_json(capsys, "sweep", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--prompt", "10",
                    "--output", "10", "--tp", "1,8", "--json", "-o", str(tmp_path / "s.json"))
    assert [(r["t"], r["fits"]) for r in rows] == [(1, False), (8, True)]  # t=1 kept, marked as not fitting
    assert json.loads((tmp_path / "s.json").read_text()) == rows


@pytest.mark.parametrize("command", ["models", "gpus"])
def test_catalog_listings(capsys, command):
    assert main([command]) == 0
    assert ("llama-3.1-8b" if command == "models" else "h100-sxm") in capsys.readouterr().out
    entries = run_json(capsys, command, "--json")
    assert len(entries) > 5 and all("name" in e for e in entries)


PREDICT = ["predict", "--gpu", "h100-sxm", "--prompt", "100", "--output", "10"]
SWEEP = ["sweep", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "100", "--output", "10"]


@pytest.mark.parametrize("argv, needle", [
    (["predict", "--model", "llama-3.1-8bb", "--gpu", "h100-sxm", "--prompt", "1", "--output", "1"], "did you mean"),
    (["predict", "--model", "llama-3.1-8b", "--gpu", "h1000", "--prompt", "1", "--output", "1"], "unknown GPU"),
    (["predict", "--config", "/nonexistent/config.json", *PREDICT[1:]], "--config"),
    (["predict", "--model", "llama-3.1-8b", "--tp", "3", *PREDICT[1:]], "tp=3"),
    (["predict", "--model", "falcon-7b", "--tp", "2", *PREDICT[1:]], "n_kv_heads=1"),
    (["predict", "--model", "gpt2-xl", "--gpu", "h100-sxm", "--prompt", "1000", "--output", "26"], "max_positions"),
    (["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "0", "--output", "1"], "prompt"),
    (["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "1", "--output", "0"], "output"),
    (["predict", "--model", "llama-3.1-8b", "--batch", "-1", *PREDICT[1:]], "batch"),
    (["predict", "--model", "llama-3.1-8b", "--prompt", "abc", "--gpu", "h100-sxm", "--output", "1"], "--prompt"),
    (["predict", "--model", "llama-3.1-70b", "--tp", "1", *PREDICT[1:]], "--tp 2"),
    (["predict", "--model", "llama-3.1-405b", "--gpu", "h100-sxm", "--batch", "512", "--prompt", "100000", "--output",
      "1"], "does not fit on 128"),
    (["predict", "--model", "llama-3.1-405b", "--pp", "0", *PREDICT[1:]], "pp=0"),
    (["predict", "--model", "llama-3.1-405b", "--pp", "2", "--batch", "3", "--microbatches", "2", *PREDICT[1:]],
     "microbatches=2"),
    (["predict", "--model", "llama-3.1-405b", "--tp", "8", "--pp", "1", *PREDICT[1:]], "--tp 8 --pp 2"),
    (["predict", "--model", "llama-3.1-8b", "--price-per-hour", "-1", *PREDICT[1:]], "price"),
    (["predict", "--model", "llama-3.1-8b", "--config", "x.json", *PREDICT[1:]], "not allowed with"),
    (["predict", "--model", "llama-3.1-8b", "--prompt", "1", "--output", "1"], "--gpu"),
    (["predict", "--model", "llama-3.1-8b", "--stack", "cuda", *PREDICT[1:]], "--stack"),
    ([*SWEEP[:6], "10:1", *SWEEP[7:]], "--prompt '10:1'"),
    ([*SWEEP[:6], "1:8:x1", *SWEEP[7:]], "factor"),
    ([*SWEEP[:6], "1,two", *SWEEP[7:]], "'two'"),
    ([*SWEEP, "--batch", "0"], "--batch"),
    ([*SWEEP, "--tp", "3"], "tp=3"),
    ([*SWEEP, "-o", "rows.txt"], ".csv or .json"),
    ([*SWEEP, "-o", "/nonexistent/dir/rows.csv"], "does not exist"),
    (["sweep", "--gpu", "h100-sxm", "--prompt", "1", "--output", "1"], "--model"),
    (["sweep", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "1:100000", "--output", "1:20"], "rows"),
    (["sweep", "--model", "llama-3.1-405b", "--gpu", "h100-sxm", "--prompt", "100000", "--output", "1", "--batch",
      "512"], "does not fit"),
    ([*SWEEP, "--pp", "x"], "--pp"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert needle in err


def test_bad_config_and_fit_files_are_one_line_errors(capsys, tmp_path, no_fit_files):
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({k: v for k, v in LLAMA_8B_CONFIG.items() if k != "hidden_size"}))
    contradictory = tmp_path / "contradictory.json"
    contradictory.write_text(json.dumps({**LLAMA_8B_CONFIG, "num_key_value_heads": 7}))
    (no_fit_files / "h100-sxm_triton.json").write_text("{broken")
    cases = [(["predict", "--config", str(missing), *PREDICT[1:]], "hidden_size"),
             (["predict", "--config", str(contradictory), *PREDICT[1:]], "num_key_value_heads"),
             (["predict", "--model", "llama-3.1-8b", *PREDICT[1:]], "--no-fit")]
    for argv, needle in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
