"""Metrics agree with the prediction they come from and with hand-computed FLOP-only figures."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.catalog import get_arch
from simulator.gpus import get_gpu
from simulator.metrics import flop_only_time_s, metrics
from simulator.predict import predict
from simulator.timemodel import RooflineModel

ARCH, GPU = get_arch("llama-3.1-8b"), get_gpu("h100-sxm")


def test_flop_only_time_by_hand():
    # 24 · 4096² · 32 layers · 100 tokens · 2 sequences / (2 GPUs · 989.4e12 FLOP/s)
    want = 24 * 4096**2 * 32 * 100 * 2 / (2 * 989.4e12)
    assert flop_only_time_s(ARCH, GPU, 100, b=2, t=2) == pytest.approx(want, rel=1e-12)


def test_metrics_follow_the_prediction():
    p, o, b = np.array([128, 2048]), np.array([256, 16]), 4
    model = RooflineModel(GPU)
    pred = predict(ARCH, GPU, p, o, b, 2, model=model)
    m = metrics(ARCH, GPU, p, o, b, 2, model=RooflineModel(GPU))
    np.testing.assert_allclose(m.total_s, pred.total_s)
    np.testing.assert_allclose(m.cost_per_request_usd * b, m.total_s * 2 * GPU.price_per_hour_usd / 3600)
    np.testing.assert_allclose(m.energy_per_request_j * b, m.total_s * 2 * GPU.board_power_w)
    np.testing.assert_allclose(m.cost_per_1k_tokens_usd, 1000 * m.cost_per_request_usd / (p + o))
    np.testing.assert_allclose(m.output_tokens_per_s_per_gpu, b * o / m.total_s / 2)
    np.testing.assert_allclose(m.flop_only_total_s, flop_only_time_s(ARCH, GPU, p + o - 1, b, 2))
    assert m.n_gpus == 2 and m.power_source == "datasheet board power"
    # the FLOP-only baseline ignores memory traffic, so it badly underestimates small-batch decode
    assert np.all(m.flop_only_error_pct < -50)


def test_bigger_batch_is_cheaper_per_request():
    one, many = (metrics(ARCH, GPU, 512, 128, b, 1, model=RooflineModel(GPU)) for b in (1, 16))
    assert many.cost_per_request_usd < one.cost_per_request_usd
    assert many.output_tokens_per_s_per_gpu > one.output_tokens_per_s_per_gpu
