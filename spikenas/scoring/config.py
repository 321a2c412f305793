"""What to score: a registered score's name plus the options it reads, validated together."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spikenas import kernels
from spikenas.errors import SpikeNASError
from spikenas.scoring.recorder import BN_MODES
from spikenas.scoring.registry import KERNEL_OPTIONS, RUN_OPTIONS, get_score
from spikenas.scoring.spike_kernel import REDUCTIONS

#: Values an option takes when it is left as None.
OPTION_DEFAULTS: dict[str, Any] = {"alpha": None, "reduce": None, "bn_mode": "train", "backend": None}
#: Tie-breaks of the search's default order: the one rule whose within-tie correlation with trained accuracy was
#: positive on every fold of the SpikeNAS-Bench dev split and that chose best on held-out folds (docs/selection.md).
DEFAULT_TIE_BREAK: tuple[str, ...] = ("threshold_rise",)


@dataclass(frozen=True)
class ScoreConfig:
    """One registered score and its options. An option is None unless set, and setting one that the named
    score (or, for ``bn_mode`` and ``backend``, any of its tie-break scores) does not read is an error,
    so that no field is silently ignored.
    """

    name: str = "conv_depth"  # registered score (spikenas.scoring.list_scores())
    alpha: float | None = None  # kernel scores: weight on the normalised Hamming distance (default 0.5)
    reduce: str | None = None  # kernel scores: combine per-call kernels by mean or sum (default: the entry's)
    bn_mode: str | None = None  # scores that run the network: BatchNorm on batch (train) or running (eval) stats
    backend: str | None = None  # scores that run the network: kernel backend torch/cpp/triton; None: auto
    tie_break: tuple[str, ...] = DEFAULT_TIE_BREAK  # scores ordering, in turn, the candidates tied at the top

    def __post_init__(self) -> None:
        spec = get_score(self.name)
        object.__setattr__(self, "tie_break", tuple(self.tie_break))
        breakers = [get_score(n) for n in self.tie_break]
        runs = spec.runs_network or any(b.runs_network for b in breakers)
        for option in (*KERNEL_OPTIONS, *RUN_OPTIONS):
            value = getattr(self, option)
            if value is None:
                continue
            if option in KERNEL_OPTIONS and spec.kernel is None:
                raise SpikeNASError(
                    f"option {option}={value!r} applies to spike-kernel scores only; score {self.name!r} does "
                    "not read it (kernel scores: spikenas.scoring.list_kernel_scores())"
                )
            if option in RUN_OPTIONS and not runs:
                raise SpikeNASError(
                    f"option {option}={value!r} applies to scores that run the network; score {self.name!r} "
                    "and its tie-breaks only read the cells"
                )
        if self.alpha is not None and not self.alpha > 0:
            raise SpikeNASError(f"alpha must be > 0, got {self.alpha!r}")
        if self.reduce is not None and self.reduce not in REDUCTIONS:
            raise SpikeNASError(f"reduce must be one of {REDUCTIONS}, got {self.reduce!r}")
        if self.bn_mode is not None and self.bn_mode not in BN_MODES:
            raise SpikeNASError(f"bn_mode must be one of {BN_MODES}, got {self.bn_mode!r}")
        if self.backend not in (None, "auto", *kernels.BACKENDS):
            raise SpikeNASError(f"backend must be one of {kernels.BACKENDS} or auto, got {self.backend!r}")

    def option(self, key: str) -> Any:
        """The value of option ``key``, its default when unset (kernel options: the entry's formula)."""
        value = getattr(self, key)
        if value is not None:
            return value
        kernel = get_score(self.name).kernel
        if key in KERNEL_OPTIONS and kernel is not None:
            return kernel[key]
        return OPTION_DEFAULTS[key]

    def options(self) -> dict[str, Any]:
        """Every option, resolved (see :meth:`option`)."""
        return {key: self.option(key) for key in (*KERNEL_OPTIONS, *RUN_OPTIONS)}

    def kernel_formula(self) -> dict[str, Any]:
        """The spike-kernel formula of the named score with this config's options applied."""
        kernel = get_score(self.name).kernel
        if kernel is None:
            raise SpikeNASError(f"score {self.name!r} is not a spike-kernel score")
        return {**kernel, "alpha": self.option("alpha"), "reduce": self.option("reduce")}

    def for_score(self, name: str) -> ScoreConfig:
        """This config's run options for score ``name`` (a tie-break), without tie-breaks of its own."""
        spec = get_score(name)
        run = {k: getattr(self, k) for k in RUN_OPTIONS} if spec.runs_network else {}
        return ScoreConfig(name=name, tie_break=(), **run)

    def to_dict(self) -> dict:
        return asdict(self)
