"""The public Python API gives the CLI's figures, with the CLI's defaults (the GPU's table and fit)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import idealrt
from simulator.errors import UserError
from tests.test_hf_config import PUBLISHED, _write


def _cli(*args: str):
    out = subprocess.run([sys.executable, "-m", "idealrt", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_predict_gives_the_cli_figure():
    cli = _cli("predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--prompt", "2048", "--output", "128",
               "--json")
    api = idealrt.predict("llama-3.1-8b", "h100-sxm", prompt=2048, output=128)
    assert float(api.decode_step_s) == cli["decode_step_s"] and float(api.total_s) == cli["total_s"]
    assert api.fit == cli["fit"] and api.t == cli["tp"]


def test_predict_without_fit_differs_and_broadcasts():
    raw = idealrt.predict("llama-3.1-8b", "h200", prompt=[128, 1024], output=16, fit=False)
    fitted = idealrt.predict("llama-3.1-8b", "h200", prompt=[128, 1024], output=16)
    assert raw.fit is None and fitted.fit is not None and raw.total_s.shape == (2,)
    assert not np.allclose(raw.total_s, fitted.total_s)


def test_sweep_gives_the_cli_rows():
    cli = _cli("sweep", "--model", "llama-3.2-1b", "--gpu", "h100-sxm,h200", "--prompt", "16,512", "--output", "8",
               "--batch", "1,4", "--json")
    api = idealrt.sweep(["llama-3.2-1b"], ["h100-sxm", "h200"], [16, 512], [8], [1, 4])
    assert api == cli and len(api) == 8


def test_load_config_and_predict_from_a_config(tmp_path):
    path = _write(tmp_path, PUBLISHED["llama-3.1-8b"])
    spec = idealrt.load_config(path)
    from_file = idealrt.predict(path, "h100-sxm", prompt=256, output=4)
    from_spec = idealrt.predict(spec, "h100-sxm", prompt=256, output=4)
    from_name = idealrt.predict("llama-3.1-8b", "h100-sxm", prompt=256, output=4)
    assert float(from_file.total_s) == float(from_spec.total_s) == float(from_name.total_s)


def test_bad_input_names_the_field():
    with pytest.raises(UserError, match="unknown GPU"):
        idealrt.predict("llama-3.1-8b", "h1000", prompt=1, output=1)
    with pytest.raises(UserError, match="prompt"):
        idealrt.predict("llama-3.1-8b", "h100-sxm", prompt=0, output=1)


def test_predictor_gives_predict_and_refuses_bad_requests():
    fast = idealrt.predictor("llama-3.2-1b", "h200")
    for p, o, b in [(1, 1, 1), (17, 2, 4), (2049, 300, 1), (100, 5000, 2)]:
        full = idealrt.predict("llama-3.2-1b", "h200", prompt=p, output=o, batch=b, tp=fast.t)
        got = fast(p, o, b)
        assert np.isclose(got.total_s, float(full.total_s), rtol=1e-9)
        assert np.isclose(got.decode_s, float(full.decode_s), rtol=1e-9, atol=1e-15)
    with pytest.raises(UserError, match="prompt, output and batch"):
        fast(0, 1)
    with pytest.raises(UserError, match="max_positions"):
        fast(131072, 2)
