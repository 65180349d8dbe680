"""`idealrt gpus`: the GPU catalog with its datasheet figures, price and throughput table (or JSON)."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from idealrt.output import print_json, print_table


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of `idealrt gpus`."""
    parser.add_argument("--json", action="store_true", help="print every field of every spec as JSON")


def run(args: argparse.Namespace) -> int:
    """Run `idealrt gpus`; returns the exit code (bad input raises UserError)."""
    from simulator.gpus import GPUS

    if args.json:
        print_json([asdict(g) for g in GPUS.values()])
        return 0
    rows = [[g.name, g.label, f"{g.peak_bf16_flops / 1e12:.0f}", f"{g.hbm_bw_bytes_s / 1e12:.2f}",
             f"{g.mem_gib:.0f}", f"{g.interconnect_bw_bytes_s / 1e9:.0f}", f"{g.board_power_w:.0f}",
             f"{g.price_per_hour_usd:.2f}", g.table or "-"] for g in GPUS.values()]
    print_table("GPU catalog ('idealrt predict --gpu NAME'; datasheet figures, dense bf16)",
                ["name", "label", "TFLOP/s", "HBM TB/s", "mem GiB", "link GB/s", "power W", "$/GPU-h", "table"],
                rows, caption="link: per GPU, one direction; price: reference on-demand list, one GPU")
    return 0
