"""GPU check: the kernels each microbenchmark of the torch stack's unfused element-wise functions launches
(calibration/opbench_torch.py), by name and by the op class the profile classifier gives them
(calibration/kernel_classes.py), so a table point is known to time the kernel the engine runs.

    python3 -m benchmarks.torch_op_kernels --out $OUT/torch_op_kernels_h200.json
"""
from __future__ import annotations

import argparse

from simulator.opclasses import NORM_FNS, STRIDED_FNS

# a decode-sized and a prefill-sized node of each function; SDPA flash over GQA K/V at one and 128 tokens
SHAPES = [("strided", {"fn": fn, "bytes": nbytes}) for fn in STRIDED_FNS for nbytes in (2**12, 2**24)] + \
         [("norm", {"fn": fn, "rows": rows, "hidden": 4096}) for fn in NORM_FNS.values() for rows in (1, 2048)] + \
         [("prefill_attn", {"b": 32, "h": h, "kv_h": 8, "s": s, "d": 128, "causal": 1}) for h, s in
          ((32, 1), (8, 1), (32, 128))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file of the results (with provenance)")
    args = ap.parse_args()

    from calibration.engine_profile import kernels_of
    from calibration.kernel_classes import kernel_class
    from calibration.opbench import build
    from calibration.provenance import provenance
    from calibration.table_io import write_json_atomic

    rows = []
    for op, shape in SHAPES:
        bench = build(op, "torch", shape)
        bench.call(0)  # first call: allocations and plans, outside the profile
        kernels = kernels_of(lambda bench=bench: bench.call(1))
        rows.append({"op": op, "shape": shape, "bench": bench.kernel,
                     "kernels": [dict(k, op_class=kernel_class(k["name"])) for k in kernels]})
        print(f"{op} {shape}: {', '.join(k['name'][:70] for k in kernels)}", flush=True)
    write_json_atomic(args.out, {"rows": rows, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
