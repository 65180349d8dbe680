"""Stack speed from measured rows (calibration/stack_speed.py): only queries both stacks ran are paired."""
import pytest

from calibration.stack_speed import compare


def row(backend: str, p: int, total_s: float, prefill_s: float, o: int = 3, arch: str = "a") -> dict:
    return {"arch": arch, "gpu": "h200", "t": 1, "b": 1, "p": p, "o": o, "engine": "idealrt", "backend": backend,
            "prefill_s": prefill_s, "total_s": total_s, "decode_s": total_s - prefill_s}


def test_ratios_pair_the_same_queries() -> None:
    rows = [row("best", 8, 1.0, 0.5), row("triton", 8, 1.5, 0.5), row("best", 16, 2.0, 1.0),
            row("triton", 16, 2.0, 0.8), row("triton", 32, 9.0, 1.0), row("torch", 64, 1.0, 0.5)]
    got = compare(rows, "best")
    assert set(got) == {"triton"}  # torch ran no query best ran
    pooled = got["triton"]["pooled"]
    assert pooled["total"]["n"] == 2 and pooled["total"]["median"] == pytest.approx(1.25)
    assert pooled["prefill"]["base_faster_share"] == 0.0  # 0.5/0.5 and 0.8/1.0: best not faster
    assert pooled["decode_step"]["median"] == pytest.approx((2.0 + 1.2 / 1.0) / 2)
    assert list(got["triton"]["by_arch"]) == ["a"]


def test_dispatch_against_measured_gemms_scores_the_rules_choice() -> None:
    from calibration.dispatch_gemm import dispatch_against
    from simulator.dispatch import OURS, VENDOR

    class Rule:  # ours below m = 100, the vendor above
        def choose(self, op_class: str, shape: dict) -> str:
            return OURS if shape["m"] < 100 else VENDOR

    check = [{"shape": [10, 64, 64], "heuristic_us": 1.0, "cublas_us": 2.0},   # ours, right: 2x cuBLAS
             {"shape": [500, 64, 64], "heuristic_us": 1.0, "cublas_us": 1.5},  # vendor, wrong: 1x cuBLAS
             {"shape": [7, 7, 7], "skipped": "too small"}]
    got = dispatch_against(check, Rule())
    assert got["n"] == 2 and got["measured_faster_chosen_share"] == 0.5 and got["vendor_share"] == 0.5
    assert got["speed_vs_cublas"]["min"] == 1.0 and got["speed_vs_faster_of_two"]["min"] == 1.0 / 1.5
