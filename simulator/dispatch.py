"""Which stack's kernel runs an op on the `best` stack: per op class and shape, ours (Triton) or the vendor's
(cuBLAS, SDPA), whichever the GPU's measured tables time faster as the engine runs them.

One rule for both sides: `simulator.tables.BestModel` times an op as the kernel chosen here, and the engine
variant `calibration/engine_variants/best.py` calls the kernel chosen here, so a `best` row measures what the
simulator predicts. The rule sees a shape as the engine can at the call: a decode step's attention at its
context bucket (the cache rows its CUDA graph reads), not at the true context, which only the device knows.
Ties go to ours; op classes measured once (element-wise, all-reduce), the host's launch and the grouped MoE
GEMMs (only ours has a grouped kernel) always run ours. Pure numpy: no torch.
"""
from __future__ import annotations

import numpy as np

from simulator.opclasses import OP_CLASS

OURS, VENDOR = "triton", "torch"  # the table stacks the rule chooses between
NEVER = ("launch", "start")  # per-stack classes that are not kernels: always ours
GROUPED = "grouped"  # shape key of a grouped-GEMM op (simulator.ops): one launch over many experts, ours only
# Cache rows a decode step reads (calibration/engine/runner.py BUCKETS: tests/test_dispatch.py keeps them equal)
DECODE_BUCKETS = (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768,
                  49152, 65536, 98304, 131072)
BUCKETED = {"decode_attn": "c", "decode_attn_fp8": "c"}  # class -> the shape key the engine sees bucketed


def decode_bucket(c):
    """Cache rows a decode step at context c reads: the smallest bucket holding c (c itself past the last)."""
    c = np.asarray(c)
    edges = np.asarray(DECODE_BUCKETS)
    idx = np.searchsorted(edges, c, side="left")
    return np.where(idx < edges.size, edges[np.minimum(idx, edges.size - 1)], c)


def dispatched(op_class: str, shape: dict) -> bool:
    """Whether the rule compares the stacks for this op (False: ours runs it)."""
    return OP_CLASS[op_class].per_stack and op_class not in NEVER and not np.any(shape.get(GROUPED, 0))


def dispatch_shape(op_class: str, shape: dict) -> dict:
    """The shape as the engine sees it when it chooses: decode attention at its context bucket."""
    key = BUCKETED.get(op_class)
    return shape if key is None else {**shape, key: decode_bucket(shape[key])}


class Dispatch:
    """The rule on one GPU's tables: `ours` and `vendor` are the stacks' time models as the engine runs their
    kernels (simulator.tables.TableModel, not ideal). The choice compares the sweep grids' times (`layers=False`:
    not the table's exact layer-shape GEMM points, which time the chosen kernel but do not move a choice, so the
    engine's choices and the rows measured with them stay as they were: docs/decisions.md)."""

    def __init__(self, ours, vendor):
        self.ours, self.vendor = ours, vendor

    def vendor_faster(self, op_class: str, shape: dict) -> np.ndarray:
        """True where the vendor's kernel runs the op (arrays broadcast over the shape's)."""
        if not dispatched(op_class, shape):
            return np.zeros(np.broadcast_shapes(*(np.shape(v) for v in shape.values())), bool)
        at = dispatch_shape(op_class, shape)
        vendor, ours = (m.op_time_s(op_class, at, layers=False) for m in (self.vendor, self.ours))
        return np.asarray(vendor < ours)

    def choose(self, op_class: str, shape: dict) -> str:
        """The stack whose kernel runs one op of scalar `shape`: OURS or VENDOR."""
        return VENDOR if bool(self.vendor_faster(op_class, shape)) else OURS

    def time_s(self, op_class: str, shape: dict) -> np.ndarray:
        """Seconds per run of the chosen kernel at the shape (arrays broadcast): the stack faster on the grids
        (for a bucketed class, at the bucket), timed with everything its table has (layer points too)."""
        mine = self.ours.op_time_s(op_class, shape)
        if not dispatched(op_class, shape):
            return mine
        theirs = self.vendor.op_time_s(op_class, shape)
        return np.where(self.vendor_faster(op_class, shape), theirs, mine)
