"""idealrt: idealized runtime, cost and energy of autoregressive Transformers on a given GPU.

`predict`, `sweep` and `load_config` are the Python API (idealrt/api.py); `idealrt` on the command line is
idealrt/cli.py.
"""
from idealrt.api import load_config, predict, predictor, sweep

__all__ = ["load_config", "predict", "predictor", "sweep"]
