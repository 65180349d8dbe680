"""Shared pytest setup: Triton kernels run in its CPU interpreter (set before triton is imported).

A GPU run that wants compiled kernels exports TRITON_INTERPRET=0 first; this only sets a default.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_terminal_summary(terminalreporter):
    """The CLI fuzz test's case count and exit codes, when it ran."""
    import sys

    fuzz = sys.modules.get("tests.test_cli_fuzz") or sys.modules.get("test_cli_fuzz")
    if fuzz is not None and fuzz.EXITS:
        terminalreporter.write_line(fuzz.summary())
