"""GPU catalog: entries, conventions (dense peaks, per-direction links), lookup and its errors."""
import math

import pytest

from simulator.errors import UserError
from simulator.gpus import GPUS, get_gpu, gpu_for_device_name

REQUIRED = ("a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "l40s", "v100", "mi300x")


def test_catalog_holds_the_required_gpus():
    assert set(REQUIRED) <= set(GPUS)
    assert all(name == spec.name for name, spec in GPUS.items())


@pytest.mark.parametrize("name", sorted(GPUS))
def test_every_figure_is_positive_and_finite(name):
    g = GPUS[name]
    for field in ("peak_bf16_flops", "hbm_bw_bytes_s", "mem_bytes", "interconnect_bw_bytes_s",
                  "board_power_w", "price_per_hour_usd"):
        value = getattr(g, field)
        assert math.isfinite(value) and value > 0, field
    assert g.device_names and g.vendor in ("nvidia", "amd")
    # Sanity ranges that a sparse peak, a bidirectional link or a GB/GiB slip would break.
    assert 1e14 <= g.peak_bf16_flops <= 3e15
    assert 0.5e12 <= g.hbm_bw_bytes_s <= 1e13
    assert g.interconnect_bw_bytes_s <= 1e12
    assert 16 <= g.mem_gib <= 200


def test_dense_peaks_and_links_follow_the_conventions():
    h100 = get_gpu("h100-sxm")
    assert h100.peak_bf16_flops == pytest.approx(989.4e12)  # dense, not the 1,979 sparse figure
    assert h100.interconnect_bw_bytes_s == pytest.approx(450e9)  # 900 GB/s NVLink, one direction
    assert h100.mem_bytes == 80 * 2**30
    assert get_gpu("h200").peak_bf16_flops == h100.peak_bf16_flops
    assert get_gpu("h200").hbm_bw_bytes_s > h100.hbm_bw_bytes_s
    assert "fp16" in get_gpu("v100").label  # no bf16 on Volta: labelled as the fp16 peak


def test_measured_tables_are_named_only_for_h100_and_h200():
    assert get_gpu("h100-sxm").table == "h100-sxm.json"
    assert get_gpu("h200").table == "h200.json"
    assert all(g.table is None for n, g in GPUS.items() if n not in ("h100-sxm", "h200"))


@pytest.mark.parametrize("alias,name", [("H100-sxm", "h100-sxm"), (" h100-SXM ", "h100-sxm"),
                                        ("h200-sxm", "h200"), ("a100-80", "a100-80gb"), ("MI300", "mi300x")])
def test_get_gpu_is_case_insensitive_and_takes_aliases(alias, name):
    assert get_gpu(alias).name == name


@pytest.mark.parametrize("name,both", [("h100", "h100-sxm or h100-pcie"), ("A100", "a100-40gb or a100-80gb")])
def test_a_name_of_two_catalog_gpus_is_refused_as_ambiguous(name, both):
    with pytest.raises(UserError, match=f"GPU '{name}' is ambiguous: it could be {both}"):
        get_gpu(name)


def test_unknown_gpu_suggests_the_nearest_names():
    with pytest.raises(UserError, match="unknown GPU 'h10'.*did you mean.*h100"):
        get_gpu("h10")
    with pytest.raises(UserError, match="choose from"):
        get_gpu("zzzzzzzz")


def test_gpu_for_device_name_maps_what_torch_prints():
    assert gpu_for_device_name("NVIDIA H100 80GB HBM3").name == "h100-sxm"
    assert gpu_for_device_name("nvidia h200").name == "h200"
    assert gpu_for_device_name("NVIDIA GeForce RTX 4090") is None
    names = [d.lower() for g in GPUS.values() for d in g.device_names]
    assert len(names) == len(set(names))  # one device name, one GPU
