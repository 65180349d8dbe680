"""A throughput table loads the same with orjson and with the standard library's json (the GPU machines)."""
from __future__ import annotations

import pytest

import simulator.tables as tables
from simulator.errors import UserError
from simulator.paths import TABLES_DIR


def test_a_table_parses_the_same_without_orjson(monkeypatch):
    path = TABLES_DIR / "h200.json"
    fast = tables.load_table(path)
    monkeypatch.setattr(tables, "orjson", None)
    assert tables.load_table(path) == fast


@pytest.mark.parametrize("parser", ["orjson", "json"])
def test_a_malformed_table_names_its_file(tmp_path, monkeypatch, parser):
    if parser == "json":
        monkeypatch.setattr(tables, "orjson", None)
    bad = tmp_path / "bad.json"
    bad.write_text('{"points": [')
    with pytest.raises(UserError, match="bad.json is not valid JSON"):
        tables.load_table(bad)
