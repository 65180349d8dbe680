"""Each defect a new user hit (issue 19), reproduced: bad input is one line on stderr and exit 2, never a
traceback, a silently dropped value or a half-written file."""
import json
import os

import pytest

import idealrt
from idealrt.cli import main
from simulator.atomic import write_atomic
from simulator.errors import UserError

SWEEP = ["sweep", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", "--prompt", "16", "--output", "4"]


def one_line_error(capsys, argv, *needles) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


UNWRITABLE = ["/proc/idealrt-test/x", "/proc/x"]  # no such folder; a folder nobody can create files in


@pytest.mark.parametrize("where", UNWRITABLE)
def test_write_atomic_into_an_unwritable_place_is_a_user_error(where):
    with pytest.raises(UserError, match=where):
        write_atomic(where + ".html", "x")


def test_write_atomic_refuses_a_missing_folder_and_leaves_no_temp(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        write_atomic(tmp_path / "a" / "b" / "x.json", "{}")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserError, match="is a folder"):
        write_atomic(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, option", [
    (["report", "-o", "/proc/r.html", "--whatif", "ROWS"], "-o /proc"),
    (["report", "-o", "/proc/r.html"], "-o /proc"),
    (SWEEP + ["--html", "/proc/s.html"], "--html /proc"),
    (SWEEP + ["-o", "/proc/s.csv"], "-o /proc"),
    (["study", "--models", "llama-3.2-1b", "--gpus", "h100-sxm", "--stack", "triton", "--html", "/proc/s.html"],
     "--html /proc"),
    (["fit", "--out-dir", "/proc"], "--out-dir /proc"),
    (["calibrate", "--derive", "a100-80gb", "--out", "/proc/t.json"], "--out /proc"),
])
def test_every_writer_into_proc_is_one_line_naming_its_option(capsys, tmp_path, argv, option):
    rows = tmp_path / "rows.json"
    assert main(SWEEP + ["-o", str(rows)]) == 0
    capsys.readouterr()
    one_line_error(capsys, [str(rows) if a == "ROWS" else a for a in argv], option)


def test_fit_does_not_create_its_out_dir(capsys, tmp_path):
    one_line_error(capsys, ["fit", "--out-dir", str(tmp_path / "deep" / "dir")], "--out-dir")
    assert not (tmp_path / "deep").exists()


def test_study_csv_names_its_own_option(capsys, tmp_path):
    one_line_error(capsys, ["study", "--models", "llama-3.2-1b", "--gpus", "h100-sxm", "--stack", "triton",
                            "--csv", str(tmp_path / "no" / "s.csv")], "--csv")


@pytest.mark.parametrize("extra,needle", [(["--model", "llama-3.1-70b", "--t", "1"], "--t 1"),
                                          (["--model", "llama-3.2-1b", "--b", "0"], "--b"),
                                          (["--model", "llama-3.2-1b", "--t", "0"], "--t"),
                                          (["--model", "llama-3.2-1b", "--prompts", "1,200000"], "max_positions")])
def test_profile_refuses_what_it_used_to_accept(capsys, extra, needle):
    one_line_error(capsys, ["profile", "--simulated", *extra], needle)


def test_report_refuses_a_missing_data_dir(capsys, tmp_path):
    one_line_error(capsys, ["report", "--data-dir", "/nonexistent", "-o", str(tmp_path / "r.html")], "--data-dir")
    assert not (tmp_path / "r.html").exists()


def test_report_of_a_gpu_without_a_table_names_the_derived_one(capsys, tmp_path):
    assert main(["report", "--gpu", "a100-80gb", "-o", str(tmp_path / "r.html")]) == 0
    assert "table derived from h100-sxm" in capsys.readouterr().out


def test_study_refuses_an_empty_model_list(capsys):
    one_line_error(capsys, ["study", "--models", "", "--gpus", "h100-sxm"], "--models")


def test_h100_is_ambiguous(capsys):
    one_line_error(capsys, ["predict", "--model", "llama-3.2-1b", "--gpu", "h100", "--prompt", "8", "--output", "2"],
                   "h100-sxm or h100-pcie")


def test_config_named_after_its_file(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
           "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 2048}
    for name in ("mixtral.json", "other.json"):
        (tmp_path / name).write_text(json.dumps(cfg))
    assert [idealrt.load_config(tmp_path / n).name for n in ("mixtral.json", "other.json")] == ["mixtral", "other"]


def test_float32_weights_are_counted_as_four_bytes_and_said(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
           "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 2048}
    (tmp_path / "bf16.json").write_text(json.dumps(cfg))
    (tmp_path / "fp32.json").write_text(json.dumps({**cfg, "torch_dtype": "float32"}))
    bf16, fp32 = (idealrt.predict(tmp_path / n, "h100-sxm", 16, 2) for n in ("bf16.json", "fp32.json"))
    assert float(fp32.memory.weights_bytes) == 2 * float(bf16.memory.weights_bytes)
    assert fp32.precision.weights == "fp32" and fp32.derived_classes == ("gemm_fp32",)  # GEMMs read 4-byte weights
    assert any("gemm_fp32: derived, not measured" in w for w in fp32.warnings)
    assert float(fp32.decode_step_s) > float(bf16.decode_step_s)


def test_sweep_skips_rows_past_one_models_positions_with_one_warning(capsys):
    assert main(["sweep", "--model", "gpt2-xl,llama-3.2-1b", "--gpu", "h100-sxm", "--prompt", "512,2000",
                 "--output", "16", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [(r["arch"], r["p"]) for r in rows] == [("gpt2-xl", 512), ("llama-3.2-1b", 512), ("llama-3.2-1b", 2000)]
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "gpt2-xl: 1 of 2 requests skipped" in warnings[0]
    assert all(isinstance(r["warnings"], list) for r in rows)  # as predict --json gives them


def test_sweep_of_only_too_long_requests_is_one_line(capsys):
    one_line_error(capsys, ["sweep", "--model", "gpt2-xl", "--gpu", "h100-sxm", "--prompt", "2000", "--output", "1"],
                   "max_positions")


def test_no_command_says_so_on_stderr(capsys):
    one_line_error(capsys, [], "give a command")


def test_price_must_be_a_finite_non_negative_number(capsys):
    for bad in ("nan", "-1", "inf"):
        one_line_error(capsys, ["predict", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", "--prompt", "8",
                                "--output", "2", "--price-per-hour", bad], "--price-per-hour")


@pytest.mark.skipif(os.environ.get("IDEALRT_SKIP_TORCH") == "1", reason="needs torch")
def test_measure_where_every_query_fails_exits_2(capsys, tmp_path):
    pytest.importorskip("torch")
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "intermediate_size": 128, "vocab_size": 100,
                               "max_position_embeddings": 64}))
    out = tmp_path / "m.jsonl"
    argv = ["measure", "--device", "cpu", "--arch", str(cfg), "--gpu", "h100-sxm", "--queries", "8,2,1",
            "--out", str(out), "--backend", "triton", "--repeats", "3", "--warmup", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "every query failed" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["report", "-o", "", "--whatif", "x.json"], SWEEP + ["-o", ""], SWEEP + ["--html", ""],
                                  ["study", "--models", "llama-3.2-1b", "--gpus", "h100-sxm", "--csv", ""]])
def test_an_empty_output_name_is_refused_not_defaulted(capsys, argv):
    one_line_error(capsys, argv, "give a file name")


def test_each_sweep_row_carries_only_the_warnings_its_own_shapes_cause(capsys):
    """A group of rows used to share one pooled list: b = 1, p = 1 carried the GEMM warning of b = 64, p = 16384."""
    argv = ["--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--tp", "1"]
    assert main(["sweep", *argv, "--prompt", "1,16384", "--output", "1,8", "--batch", "1,64", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by = {(r["b"], r["p"], r["o"]): r["warnings"] for r in rows}
    assert not any("gemm: shapes outside" in w for w in by[1, 1, 1])
    assert any("gemm: shapes outside" in w for w in by[64, 16384, 1])
    assert any(w.startswith("memory:") for w in by[64, 16384, 1]) and not any(w.startswith("memory:") for w in by[1, 1, 1])
    for (b, p, o), warnings in by.items():  # the same list as predict gives for the one request, in the same shape
        assert list(idealrt.predict("llama-3.1-8b", "h100-sxm", p, o, b, 1).warnings) == warnings, (b, p, o)
        if b * p < 16384:  # fits in memory: the CLI predicts it too
            assert main(["predict", *argv, "--batch", str(b), "--prompt", str(p), "--output", str(o), "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["warnings"] == warnings, (b, p, o)
