"""`idealrt` entry point: dispatches to one module per command, importing only that module.

Each command module exposes `add_args(parser)` and `run(args) -> int`; heavy libraries (torch,
triton, cvxpy) are imported inside `run`, so `idealrt predict` starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from simulator.errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("idealrt.cli_predict", "idealized runtime, memory, cost and energy of one request"),
    "sweep": ("idealrt.cli_sweep", "predictions over lists or ranges of p, o, b, t, models, GPUs"),
    "plan": ("idealrt.cli_plan", "cheapest deployments of a request stream that meet a latency target"),
    "models": ("idealrt.cli_models", "list the architecture catalog"),
    "gpus": ("idealrt.cli_gpus", "list the GPU catalog"),
    "calibrate": ("idealrt.cli_calibrate", "measure this GPU's throughput table (needs a GPU)"),
    "measure": ("idealrt.cli_measure", "run configuration queries on the reference engine (needs a GPU)"),
    "fit": ("idealrt.cli_fit", "fit the simulator's coefficients to measured queries"),
    "validate": ("idealrt.cli_validate", "error of predictions on held-out measured queries"),
    "explain": ("idealrt.cli_explain", "a profile of the engine beside the simulated op list, per op class"),
    "profile": ("idealrt.cli_profile", "fit T(p, o) = F(p) + g*(o - 1) for one model"),
    "denoise": ("idealrt.cli_denoise", "denoised runtime from a black-box API latency log"),
    "report": ("idealrt.cli_report", "self-contained HTML calibration report"),
    "study": ("idealrt.cli_study", "the paper's efficiency study, reproduced and extended"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _top_help() -> str:
    rows = "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items())
    return f"usage: idealrt COMMAND [options]\n\ncommands:\n{rows}\n\n'idealrt COMMAND --help' for options."


def main(argv: list[str] | None = None) -> int:
    """Run one idealrt command; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        if not argv:
            sys.stderr.write("idealrt: error: give a command (see idealrt --help)\n")
        return 0 if argv else 2
    cmd = argv[0]
    if cmd not in COMMANDS:
        import difflib
        near = difflib.get_close_matches(cmd, COMMANDS, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; choose from {', '.join(COMMANDS)}"
        sys.stderr.write(f"idealrt: error: unknown command '{cmd}'{hint}\n")
        return 2
    module_name, text = COMMANDS[cmd]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"idealrt {cmd}", description=text)
    module.add_args(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        sys.stderr.write(f"idealrt {cmd}: error: {e}\n")
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
