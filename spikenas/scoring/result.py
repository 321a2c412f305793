"""The outcome of scoring one network."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: ok: a finite score. indefinite: some kernel had a negative determinant (the score is still
#: log|det K|, as SNASNet ranks, but the kernel is not positive definite). singular: some kernel had
#: determinant 0 or a non-finite log-determinant (score -inf). no_neurons: the network has no
#: spikingjelly neuron to record (score -inf). invalid_input: some input held NaN or an infinity, so
#: no score is defined (score -inf); the network was not run.
STATUSES = ("ok", "indefinite", "singular", "no_neurons", "invalid_input")


@dataclass
class ScoreResult:
    """Outcome of scoring one network on one or more batches."""

    score: float  # mean over batches of log|det K| (kernel scores) or the score's value; -inf if undefined
    logdets: list[float] = field(default_factory=list)  # log|det K| per batch (kernel scores)
    signs: list[float] = field(default_factory=list)  # sign of det K per batch (0: singular)
    num_calls: int = 0  # neuron calls (layers x timesteps) per batch
    seconds: float = 0.0  # wall time of the forward passes and kernels
    status: str = "ok"  # one of STATUSES

    def to_dict(self) -> dict:
        return asdict(self)


def kernel_result(signs: list[float], logdets: list[float], *, num_calls: int, seconds: float) -> ScoreResult:
    """The result of a kernel score from each batch's (sign, log|det K|): the mean log|det|, with the status
    ``singular`` if any batch's K is singular and ``indefinite`` if any has a negative determinant."""
    result = ScoreResult(score=0.0, logdets=list(logdets), signs=list(signs), num_calls=num_calls, seconds=seconds)
    if any(s == 0 or not math.isfinite(v) for s, v in zip(signs, logdets, strict=True)):
        result.score, result.status = float("-inf"), "singular"
    else:
        result.score = sum(logdets) / len(logdets)
        result.status = "indefinite" if any(s < 0 for s in signs) else "ok"
    return result


def value_result(value: float, *, num_calls: int = 0, seconds: float = 0.0) -> ScoreResult:
    """The result of a non-kernel score: ``singular`` (-inf) when the value is not finite."""
    if not math.isfinite(value):
        return ScoreResult(float("-inf"), num_calls=num_calls, seconds=seconds, status="singular")
    return ScoreResult(float(value), num_calls=num_calls, seconds=seconds)


def invalid_input_result(*, seconds: float = 0.0) -> ScoreResult:
    """The result for inputs holding NaN or an infinity: status ``invalid_input``, score -inf."""
    return ScoreResult(float("-inf"), seconds=seconds, status="invalid_input")
