"""Predictions of single requests at memory-lookup speed: a `Predictor` holds one model, GPU, t, time model and
fit, and caches, per batch size, the prefill time and energy of every prompt length and the running sums of
decode-step times and energies over contexts, each computed once by `simulator.predict.predict` over a whole range (so both give one answer).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.arch import ArchSpec
from simulator.errors import UserError
from simulator.gpus import GPUSpec
from simulator.memory import check_tp, smallest_fitting_tp
from simulator.predict import predict
from simulator.sustained import recovery_factor
from simulator.timemodel import TimeModel

CHUNK = 1024  # prompt lengths and contexts are computed in whole chunks of this many


@dataclass(frozen=True)
class Times:
    """Seconds of one request: prefill, all o − 1 decode steps, and their sum; the batch's energy on all GPUs."""

    prefill_s: float
    decode_s: float
    total_s: float
    energy_j: float = float("nan")  # as simulator.predict.Prediction.energy_j


class Predictor:
    """One architecture on one GPU at one t (default: the smallest whose weights fit), time model and fit."""

    def __init__(self, arch: ArchSpec, gpu: GPUSpec, t: int | None = None, *, model: TimeModel,
                 coefficients: dict | None = None) -> None:
        self.arch, self.gpu, self.model, self.coefficients = arch, gpu, model, coefficients
        self.t = smallest_fitting_tp(arch, gpu, 1, 1, 1) if t is None else check_tp(arch, t)
        self._prefill: dict[int, np.ndarray] = {}  # b -> prefill seconds at p = 1..len
        self._decode: dict[int, np.ndarray] = {}  # b -> Σ step seconds over contexts 2..c (index c − 1)
        self._prefill_j: dict[int, np.ndarray] = {}  # b -> prefill joules, as _prefill
        self._decode_j: dict[int, np.ndarray] = {}  # b -> Σ step joules, as _decode

    def _extend(self, b: int, p_max: int, c_max: int) -> None:
        """Compute the caches of batch b up to prompt p_max and context c_max, in whole chunks."""
        have_p = len(self._prefill.get(b, ()))
        if p_max > have_p:
            top = -(-p_max // CHUNK) * CHUNK
            p = np.arange(1, top + 1)
            pred = predict(self.arch, self.gpu, p, 1, b, self.t, model=self.model, coefficients=self.coefficients)
            self._prefill[b], self._prefill_j[b] = pred.prefill_s, pred.prefill_energy_j
        have_c = len(self._decode.get(b, ()))
        if c_max > have_c:
            top = -(-c_max // CHUNK) * CHUNK
            prior = np.arange(1, top)  # one step after a prompt of prior tokens: the step at context prior + 1
            pred = predict(self.arch, self.gpu, prior, 2, b, self.t, model=self.model, coefficients=self.coefficients,
                           recovery=False)
            self._decode[b] = np.concatenate(([0.0], np.cumsum(pred.decode_s)))  # [c − 1]: steps at contexts 2..c
            self._decode_j[b] = np.concatenate(([0.0], np.cumsum(pred.decode_energy_j)))

    def __call__(self, prompt: int, output: int, batch: int = 1) -> Times:
        """Seconds of `batch` sequences of `prompt` tokens and `output` new tokens each."""
        p, o, b = int(prompt), int(output), int(batch)
        if p < 1 or o < 1 or b < 1:
            raise UserError(f"prompt, output and batch must be >= 1, got {p}, {o}, {b}")
        if self.arch.positions_used(p, o) > self.arch.max_positions:
            raise UserError(f"prompt + output - 1 = {self.arch.positions_used(p, o)} positions exceed max_positions="
                            f"{self.arch.max_positions} of {self.arch.name}; shorten prompt or output")
        self._extend(b, p, p + o - 1)
        pre = float(self._prefill[b][p - 1])
        cum, cum_j = self._decode[b], self._decode_j[b]
        dec = float(cum[p + o - 2] - cum[p - 1])  # steps at contexts p + 1 .. p + o − 1
        slow = float(recovery_factor(self.model, pre, dec))  # as predict: the clocks the prefill lowered
        dec *= slow
        energy = float(self._prefill_j[b][p - 1] + slow * (cum_j[p + o - 2] - cum_j[p - 1]))
        return Times(pre, dec, pre + dec, energy)
