"""Variants of the reference engine: the same model with other kernels (a backend) or another driver.

Each variant is one module here with its own engine version (calibration/engine_version.py), so adding or
changing one leaves the rows of the engine and of the other variants current. A backend variant (named in
BACKEND_VARIANTS) defines `make_engine(arch, t, rank, group, device, dtype) -> Engine`; `idealrt measure
--backend NAME` runs it and its rows carry `engine_variant: NAME`.
"""
BACKEND_VARIANTS = ("best", "fp8", "fp8_kv")
