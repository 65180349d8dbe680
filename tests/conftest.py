"""Shared pytest setup: Triton kernels run in its CPU interpreter (set before triton is imported).

A GPU run that wants compiled kernels exports TRITON_INTERPRET=0 first; this only sets a default.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
