"""`idealrt calibrate --merge-allreduce` and `--merge`: measured points move between tables unchanged."""
import json

from calibration.table_io import new_table, write_json_atomic
from idealrt.cli import main


def _table(path, gpu_name, points):
    t = new_table({"gpu_name": gpu_name, "date": "2026-01-01"})
    t["points"] = points
    write_json_atomic(path, t)


def _ar(nbytes, us):  # fake all-reduce point: a test stand-in, never a shipped number
    return {"op": "allreduce", "stack": "torch", "kernel": "nccl", "shape": {"bytes": nbytes, "t": 2},
            "median_us": us, "provenance": {"gpu_name": "G", "date": "2026-01-02", "command": "fake"}}


def test_merge_keeps_points_and_their_provenance(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    _table(old, "G", [_ar(1024, 9.0), _ar(2048, 11.0),
                      {"op": "gemm", "stack": "torch", "shape": {"m": 1, "n": 1, "k": 1}, "median_us": 1.0}])
    _table(new, "G", [{"op": "gemm", "stack": "torch", "shape": {"m": 1, "n": 1, "k": 1}, "median_us": 2.0}])
    assert main(["calibrate", "--merge-allreduce", str(old), "--out", str(new)]) == 0
    pts = json.loads(new.read_text())["points"]
    ar = [p for p in pts if p["op"] == "allreduce"]
    assert sorted(p["median_us"] for p in ar) == [9.0, 11.0]
    assert all(p["provenance"]["date"] == "2026-01-02" for p in ar)
    assert [p["median_us"] for p in pts if p["op"] == "gemm"] == [2.0]  # the new table's own point stays


def test_merge_refuses_tables_of_different_gpus(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    _table(old, "G", [_ar(1024, 9.0)])
    _table(new, "H", [])
    assert main(["calibrate", "--merge-allreduce", str(old), "--out", str(new)]) == 2
    assert "different GPUs" in capsys.readouterr().err


def test_merge_ops_carries_only_the_named_classes(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    quant = {"op": "quant_fp8", "stack": "triton", "shape": {"rows": 1, "k": 1024}, "median_us": 3.0}
    _table(old, "G", [_ar(1024, 9.0), quant])
    _table(new, "G", [])
    assert main(["calibrate", "--merge", str(old), "--ops", "quant_fp8", "--out", str(new)]) == 0
    (pt,) = json.loads(new.read_text())["points"]
    assert pt["op"] == "quant_fp8" and pt["median_us"] == 3.0 and pt["provenance"]["gpu_name"] == "G"
    assert main(["calibrate", "--merge", str(old), "--ops", "gemm", "--out", str(new)]) == 2
    assert "no points of gemm" in capsys.readouterr().err


def test_seed_table_keeps_a_class_with_the_run_that_measured_it(tmp_path):
    from calibration.table_io import seed_table

    src, out = tmp_path / "src.json", tmp_path / "seed.json"
    t = new_table({"gpu_name": "G", "date": "2026-01-01", "command": "idealrt calibrate --ops gemm"})
    t["provenance"]["resumed_by"] = [{"date": "2026-01-03", "command": "idealrt calibrate --ops quant_fp8"}]
    quant = {"op": "quant_fp8", "stack": "triton", "shape": {"rows": 1, "k": 1024}, "median_us": 3.0}
    t["points"] = [quant, dict(quant, stack="torch"), {"op": "gemm", "stack": "triton", "shape": {}, "median_us": 1.0}]
    write_json_atomic(src, t)
    assert seed_table(src, out, ("quant_fp8",), "triton", {"gpu_name": "G", "date": "2026-02-01"}) == 1
    seeded = json.loads(out.read_text())
    (pt,) = seeded["points"]
    assert pt["median_us"] == 3.0 and pt["provenance"]["date"] == "2026-01-03"  # its own run, not the table's
    assert seeded["provenance"]["date"] == "2026-02-01"  # the new run's, which points it adds inherit
