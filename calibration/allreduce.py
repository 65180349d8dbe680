"""torchrun worker: NCCL all-reduce times over message sizes, one process per GPU, through calibration.timing.

Started by `idealrt calibrate --allreduce --tp 2,4` (one torchrun per t), or by hand from the repo root:
    NCCL_NVLS_ENABLE=0 python3 -m torch.distributed.run --standalone --nproc-per-node 4 \\
        -m calibration.allreduce --out /tmp/ar_t4.json
Rank 0 writes {"provenance", "points"} to --out; `calibrate` merges the points into the GPU's table.
Every rank takes the same timing decisions (the `agree` hook: maximum over ranks), so none waits alone.
"""
from __future__ import annotations

import argparse
import os


def _agree(x: float) -> float:
    """Maximum of a float over all ranks."""
    import torch
    import torch.distributed as dist

    v = torch.tensor([x], dtype=torch.float64, device="cuda")
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    return float(v.item())


def sweep_allreduce(sizes: list[int]) -> list[dict]:
    """Time an in-place bf16 SUM all-reduce of each size (bytes) over the process group; points for a table."""
    import torch
    import torch.distributed as dist

    from calibration.timing import l2_bytes, measure, rotation_count

    world, rows = dist.get_world_size(), []
    for nbytes in sizes:
        copies = rotation_count(nbytes, l2_bytes(), max_copies=16)
        bufs = [torch.randn(nbytes // 2, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        dist.barrier()
        t = measure(lambda i: dist.all_reduce(bufs[i % copies]), rotate=copies, use_graph=False, agree=_agree)
        rows.append({"op": "allreduce", "stack": "torch", "kernel": "torch.distributed.all_reduce (NCCL, sum)",
                     "shape": {"bytes": nbytes, "t": world}, **t.row()})
        del bufs
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of one torchrun process."""
    import torch
    import torch.distributed as dist

    from calibration.grids import ALLREDUCE_BYTES, ALLREDUCE_BYTES_QUICK
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    ap = argparse.ArgumentParser(prog="calibration.allreduce")
    ap.add_argument("--out", required=True, help="JSON file rank 0 writes")
    ap.add_argument("--quick", action="store_true", help="fewer message sizes")
    args = ap.parse_args(argv)
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    try:
        rows = sweep_allreduce(ALLREDUCE_BYTES_QUICK if args.quick else ALLREDUCE_BYTES)
        if dist.get_rank() == 0:
            prov = provenance()
            prov["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
            prov["NCCL_NVLS_ENABLE"] = os.environ.get("NCCL_NVLS_ENABLE")
            write_json_atomic(args.out, {"provenance": prov, "points": rows})
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
