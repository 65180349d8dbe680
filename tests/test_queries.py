"""CPU tests of the query grids, the fit/heldout rule, the measurement files and `idealrt measure` on CPU."""
from __future__ import annotations

import json
import os

import pytest

from calibration import measurements_io as mio
from calibration.engine_version import engine_version
from calibration.queries import Query, estimate_s, grid_queries, parse_queries, split_of
from simulator.catalog import get_arch
from idealrt.cli import main
from simulator.errors import UserError
from simulator.hf_config import load_config

H100_ARCHS = ["llama-3.1-8b", "olmoe-1b-7b", "gpt-j-6b", "falcon-7b", "opt-6.7b", "bloom-7b1", "llama-3.2-1b",
              "qwen2.5-7b"]
TP_ARCHS = ["llama-3.1-8b", "opt-6.7b", "llama-3.1-70b"]


@pytest.mark.parametrize("name", H100_ARCHS)
def test_h100_grid_covers_the_ranges(name: str) -> None:
    arch = get_arch(name)
    qs = grid_queries(arch, "h100")
    assert len(qs) >= 60 and len(set(qs)) == len(qs)
    assert all(q.p + q.o - 1 <= arch.max_positions and q.t == 1 for q in qs)
    assert {q.b for q in qs} == {1, 8, 32} and min(q.p for q in qs) == 1 and max(q.o for q in qs) == 512
    assert max(q.p for q in qs) == min(8192, arch.max_positions)
    assert max(q.b * q.p for q in qs) <= 32768  # prefill activations stay small


def test_grids_fit_the_device_budget() -> None:
    h100 = sum(estimate_s(get_arch(n), q) for n in H100_ARCHS for q in grid_queries(get_arch(n), "h100"))
    assert h100 < 300  # of the 9 minutes: the rest is check, bench, builds, hf-eager
    for t in (2, 4):
        assert all(len(grid_queries(get_arch(n), "tp", t)) >= 30 for n in TP_ARCHS)
    tp = sum(estimate_s(get_arch(n), q, bw_bytes_s=3.4e12) for n in TP_ARCHS for t in (2, 4)
             for q in grid_queries(get_arch(n), "tp", t))
    assert tp < 240


def test_unknown_grid_is_a_user_error() -> None:
    with pytest.raises(UserError, match="grid 'huge'"):
        grid_queries(get_arch("llama-3.1-8b"), "huge")


def test_split_rule_is_fixed_and_about_30_percent() -> None:
    qs = [Query(b, p, o) for b in (1, 8, 32) for p in range(1, 200, 7) for o in (1, 8, 32, 128)]
    fits = [split_of("llama-3.1-8b", q) for q in qs]
    assert fits == [split_of("llama-3.1-8b", q) for q in qs]  # deterministic
    assert 0.22 < fits.count("fit") / len(fits) < 0.38
    assert [split_of("llama-3.1-8b", Query(1, p, 8)) for p in (1, 16, 128)] == ["fit", "heldout", "fit"]  # pinned


def test_parse_queries() -> None:
    assert parse_queries("512,64,1; 1,1,8;", t=2) == [Query(1, 512, 64, 2), Query(8, 1, 1, 2)]
    for bad in ("512,64", "a,b,c", "0,1,1", " ; "):
        with pytest.raises(UserError, match="--queries"):
            parse_queries(bad)


def test_append_is_atomic_and_resumable(tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "m.jsonl")
    row = {"arch": "x", "gpu": "cpu", "t": 1, "b": 1, "p": 2, "o": 3, "engine": "idealrt", "backend": "torch"}
    mio.append_row(path, row)
    mio.append_row(path, dict(row, p=4))
    assert [r["p"] for r in mio.read_rows(path)] == [2, 4]
    assert {mio.row_key(r) for r in mio.read_rows(path)} == {mio.row_key(row), mio.row_key(dict(row, p=4))}

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(UserError, match="disk full"):  # a failed write is one line naming the file
        mio.append_row(path, dict(row, p=5))
    monkeypatch.undo()
    assert len(mio.read_rows(path)) == 2 and os.listdir(tmp_path) == ["m.jsonl"]  # unchanged, no temp left
    with open(path, "a") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match="m.jsonl:3"):
        mio.read_rows(path)


TINY_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": 128,
               "max_position_embeddings": 256, "tie_word_embeddings": False, "head_dim": 16}


def test_measure_cli_on_cpu_writes_contract_rows_and_resumes(tmp_path, capsys) -> None:
    cfg, out = tmp_path / "tiny.json", str(tmp_path / "cpu_t1.jsonl")
    cfg.write_text(json.dumps(TINY_CONFIG))
    argv = ["measure", "--arch", str(cfg), "--device", "cpu", "--backend", "torch", "--out", out]
    assert main(argv + ["--queries", "5,3,1;9,1,2"]) == 0
    rows = mio.read_rows(out)
    assert [(r["p"], r["o"], r["b"]) for r in rows] == [(5, 3, 1), (9, 1, 2)]
    r = rows[0]
    assert r["decode_steps"] == 2 and r["total_s"] == pytest.approx(r["prefill_s"] + r["decode_s"])
    assert r["spread"]["total_s_min"] <= r["spread"]["total_s_max"] and r["repeats"] in (3, 6)
    assert r["engine"] == "idealrt" and r["split"] in ("fit", "heldout") and "date" in r["provenance"]
    assert r["engine_version"] == engine_version() and "energy_j" not in r and "mean_power_w" not in r  # no GPU
    assert mio.arch_of(r) == load_config(str(cfg))  # the spec travels with the row
    assert main(argv + ["--queries", "5,3,1;9,1,2;4,2,1"]) == 0  # resumes: only the new query runs
    assert len(mio.read_rows(out)) == 3 and "1 queries to run, 2 already" in capsys.readouterr().err
    assert main(argv + ["--queries", "6,2,1", "--max-seconds", "0"]) == 0  # stops cleanly, writes nothing
    assert len(mio.read_rows(out)) == 3 and "--max-seconds" in capsys.readouterr().err
    assert main(["measure", "--summary", out]) == 0 and "| 3 |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--arch", "llama-3.1-8b", "--queries", "1,1"], "--queries entry"),
    (["--arch", "no-such-model"], "no-such-model"),
    (["--arch", "llama-3.2-1b", "--queries", "131072,8,1"], "max_positions"),
    (["--arch", "llama-3.1-8b", "--t", "2"], "torchrun"),
])
def test_measure_cli_bad_input_is_one_line(argv, message, capsys) -> None:
    assert main(["measure", *argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_measure_cli_skips_an_arch_that_fails_and_goes_on(tmp_path, monkeypatch, capsys) -> None:
    from calibration.engine.runner import Engine

    def boom(self, p, o, b, repeats=3, warmup=1, seed=0, energy=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
    monkeypatch.setattr(Engine, "time_query", boom)
    cfg, out = tmp_path / "tiny.json", str(tmp_path / "cpu_t1.jsonl")
    cfg.write_text(json.dumps(TINY_CONFIG))
    assert main(["measure", "--arch", str(cfg), "--device", "cpu", "--backend", "torch", "--out", out,
                 "--queries", "5,3,1"]) == 2  # every query failed: not a success
    assert mio.read_rows(out) == []
    err = capsys.readouterr().err
    assert "illegal memory access was encountered; skipping the rest" in err
    assert err.strip().splitlines()[-1].endswith(f"every query failed (tiny; errors above); nothing written to {out}")


def test_hf_eager_rejects_moe_before_touching_the_gpu(capsys) -> None:
    assert main(["measure", "--arch", "olmoe-1b-7b", "--engine", "hf-eager", "--device", "cpu"]) == 2
    assert "dense models only" in capsys.readouterr().err
