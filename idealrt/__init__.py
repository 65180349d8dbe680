"""idealrt: idealized runtime, cost and energy of autoregressive Transformers on a given GPU.

`predict`, `sweep`, `load_config`, `serve`, `plan` (with `synthetic` and `load_trace` workloads) are the Python API (idealrt/api.py); `idealrt` on the command line is
idealrt/cli.py.
"""
from idealrt.api import (
    load_config,
    load_trace,
    plan,
    predict,
    predictor,
    serve,
    sweep,
    synthetic,
)

__all__ = ["load_config", "load_trace", "plan", "predict", "predictor", "serve", "sweep", "synthetic"]
