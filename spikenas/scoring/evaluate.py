"""Scoring a network or a search candidate with a registered score.

:func:`score_network` scores any spikingjelly model with a spike-kernel score; :func:`score_candidate`
is what the search engine calls for cells of the SpikeNAS space (every registered score).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
from torch import nn

from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.scoring.config import ScoreConfig
from spikenas.scoring.gradient import gradient_stats
from spikenas.scoring.recorder import NeuronFilter, Probe, record_probe, spiking_neurons
from spikenas.scoring.registry import Candidate, get_score
from spikenas.scoring.result import ScoreResult, invalid_input_result, kernel_result, value_result
from spikenas.scoring.spike_kernel import probe_kernel, probe_slogdet
from spikenas.space import Genotype


class DrivenModel(nn.Module):
    """Feeds a spikingjelly model its input over time.

    :param timesteps: T for static inputs ``[B, ...]``, repeated at every step (direct encoding).
    :param sequence: inputs are sequences ``[T, B, ...]`` (event data), one frame per step.
    Multi-step models (every neuron in step mode ``m``) get the whole ``[T, B, ...]`` tensor in one call;
    single-step models get one ``[B, ...]`` frame per call.
    """

    def __init__(self, model: nn.Module, *, timesteps: int | None, sequence: bool) -> None:
        super().__init__()
        modes = {getattr(m, "step_mode", "s") for _, m in spiking_neurons(model)}
        if len(modes) > 1:
            raise SpikeNASError("the model mixes single-step and multi-step neurons; feed it yourself (timesteps=None)")
        self.model = model
        self.timesteps = timesteps
        self.sequence = sequence
        self.multi_step = modes == {"m"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.sequence:
            x = x.unsqueeze(0).expand(self.timesteps, *x.shape)
        if self.multi_step:
            return self.model(x)
        return torch.stack([self.model(frame) for frame in x])


def _driven(model: nn.Module, timesteps: int | None, sequence: bool) -> nn.Module:
    if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
        raise SpikeNASError(f"timesteps must be an int >= 1 or None, got {timesteps!r}")
    if sequence and timesteps is not None:
        raise SpikeNASError("give timesteps (static inputs [B, ...]) or sequence=True (inputs [T, B, ...]), not both")
    if timesteps is None and not sequence:
        return model
    return DrivenModel(model, timesteps=timesteps, sequence=sequence)


def _numpy_hint(value: object) -> str:
    """What to add to an error about ``value``: how to convert it when it is a numpy object, else nothing."""
    return ": convert it with torch.from_numpy" if type(value).__module__.split(".")[0] == "numpy" else ""


def _check_input(batch: torch.Tensor, *, timesteps: int | None, sequence: bool) -> None:
    if not isinstance(batch, torch.Tensor):
        raise SpikeNASError(f"a batch must be a torch.Tensor, got {type(batch).__name__}{_numpy_hint(batch)}")
    if not batch.is_floating_point():
        raise SpikeNASError(f"a batch must be a floating-point tensor, got dtype {batch.dtype}: use .float()")
    if batch.dim() < 2:
        raise SpikeNASError(f"a batch must be [B, ...] with 2+ dimensions, got shape {tuple(batch.shape)}")
    if sequence and batch.dim() < 3:
        raise SpikeNASError(f"sequence=True needs inputs [T, B, ...] (3+ dims), got shape {tuple(batch.shape)}")
    if (sequence or timesteps is not None) and (batch.shape[1] if sequence else batch.shape[0]) < 2:
        raise SpikeNASError(f"a kernel needs a batch of >= 2 samples, got shape {tuple(batch.shape)}")


def _record(model: nn.Module, batch: torch.Tensor, config: ScoreConfig, neuron_filter: NeuronFilter | None,
            *, timesteps: int | None = None, sequence: bool = False) -> Probe:
    driven = _driven(model, timesteps, sequence)
    try:
        return record_probe(driven, batch, bn_mode=config.option("bn_mode"), backend=config.backend,
                            neuron_filter=neuron_filter)
    except SpikeNASError:
        raise
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if driven is not model:
            fed = f"[T={timesteps}, *{tuple(batch.shape)}]" if timesteps is not None else str(tuple(batch.shape))
            raise SpikeNASError(
                f"{type(model).__name__} failed on its input {fed} ({reason}); the batch must be what the model "
                f"takes at one step (e.g. [B, C, H, W] with the model's channel count and image size)"
            ) from err
        raise SpikeNASError(
            f"{type(model).__name__} failed on an input of shape {tuple(batch.shape)} ({reason}); for a model that "
            "does not encode time itself, pass timesteps=T with static images [B, C, H, W] (repeated over T), "
            "or sequence=True with inputs [T, B, ...]"
        ) from err


def _finite(batches: list[torch.Tensor]) -> bool:
    """Whether every value of every (floating-point) batch is finite."""
    return all(bool(torch.isfinite(b).all()) for b in batches if isinstance(b, torch.Tensor))


def check_images(images: object, macro: MacroConfig, *, name: str = "images") -> list[torch.Tensor]:
    """The scoring batches in ``images`` (one float ``[B, C, S, S]`` tensor, or an iterable of them), each
    checked against ``macro``: B >= 2, C = ``macro.in_channels``, S = ``macro.input_size``.

    Non-finite values are allowed here: scoring them gives the status ``invalid_input``.

    :raises SpikeNASError: naming ``name``, what was given and what is allowed.
    """
    c, size = macro.in_channels, macro.input_size
    allowed = f"[B, {c}, {size}, {size}] float tensors with B >= 2 (macro in_channels {c}, input_size {size})"
    if isinstance(images, torch.Tensor):
        batches = [images]
    elif isinstance(images, str | bytes) or not isinstance(images, Iterable):
        raise SpikeNASError(f"{name} must be {allowed}, one or a list; got {type(images).__name__}")
    elif _numpy_hint(images):
        raise SpikeNASError(f"{name} must be {allowed}, got a numpy array{_numpy_hint(images)}")
    else:
        batches = list(images)
    if not batches:
        raise SpikeNASError(f"{name} is empty: give {allowed}")
    for i, batch in enumerate(batches):
        which = name if len(batches) == 1 else f"{name}[{i}]"
        if not isinstance(batch, torch.Tensor):
            raise SpikeNASError(f"{which} must be {allowed}, got {type(batch).__name__}{_numpy_hint(batch)}")
        if not batch.is_floating_point():
            raise SpikeNASError(f"{which} must be {allowed}, got dtype {batch.dtype}: convert it with .float()")
        if batch.dim() != 4:
            raise SpikeNASError(f"{which} must be {allowed}, got {batch.dim()} dimensions {tuple(batch.shape)}")
        if batch.shape[1] != c:
            raise SpikeNASError(f"{which} must be {allowed}, got {batch.shape[1]} channels {tuple(batch.shape)}")
        if tuple(batch.shape[2:]) != (size, size):
            raise SpikeNASError(f"{which} must be {allowed}, got images of {tuple(batch.shape[2:])} pixels")
        if batch.shape[0] < 2:
            raise SpikeNASError(f"{which} must be {allowed}, got a batch of {batch.shape[0]}")
    return batches


def kernel_matrix(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    config: ScoreConfig | None = None,
    neuron_filter: NeuronFilter | None = None,
    timesteps: int | None = None,
    sequence: bool = False,
) -> tuple[torch.Tensor, int]:
    """The combined float64 ``[B, B]`` kernel of one batch and the number of neuron calls folded into it.

    Arguments as :func:`score_network` (one batch).
    """
    config = config or ScoreConfig(name="sahd")
    _check_input(inputs, timesteps=timesteps, sequence=sequence)
    if not _finite([inputs]):
        raise SpikeNASError("inputs hold NaN or an infinity: a kernel of them is undefined")
    probe = _record(model, inputs, config, neuron_filter, timesteps=timesteps, sequence=sequence)
    return probe_kernel(probe, **config.kernel_formula()), len(probe.sizes)


def score_network(
    model: nn.Module,
    batches: torch.Tensor | Iterable[torch.Tensor],
    *,
    config: ScoreConfig | None = None,
    timesteps: int | None = None,
    sequence: bool = False,
    neuron_filter: NeuronFilter | None = None,
) -> ScoreResult:
    """Score any model holding spikingjelly neurons with a spike-kernel score (default SNASNet's ``sahd``).

    :param model: single-step or multi-step spikingjelly model (or a SpikeNAS network).
    :param batches: one float batch or several. With ``timesteps=T``: static inputs ``[B, ...]`` (e.g.
        images ``[B, C, H, W]``), repeated over T steps (direct encoding). With ``sequence=True``: inputs
        ``[T, B, ...]`` (event data), frame t at step t. With neither: passed to the model as they are (a
        model that encodes time itself, such as :func:`spikenas.network.build_network`'s). B >= 2.
    :param config: a :class:`ScoreConfig` naming a spike-kernel score (see ``list_kernel_scores()``).
    :param neuron_filter: keep only neurons for which ``filter(name, module)`` is true.
    :returns: the mean of ``log|det K|`` over batches; status ``singular`` (score -inf) when some K is singular,
        ``indefinite`` when some det K < 0, ``no_neurons`` (score -inf) when the model has no selected neuron,
        ``invalid_input`` (score -inf, nothing run) when some batch holds NaN or an infinity.
    """
    if not isinstance(model, nn.Module):
        raise SpikeNASError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if config is not None and not isinstance(config, ScoreConfig):
        raise SpikeNASError(f"config must be a ScoreConfig or None, got {type(config).__name__}")
    config = config or ScoreConfig(name="sahd")
    if get_score(config.name).kernel is None:
        raise SpikeNASError(
            f"score_network computes spike-kernel scores; {config.name!r} is not one "
            "(structural scores need cells: use spikenas.scoring)"
        )
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    elif type(batches).__module__.split(".")[0] == "numpy":
        raise SpikeNASError("batches must be a torch.Tensor or a list of them, got a numpy array: use torch.from_numpy")
    elif not isinstance(batches, Iterable):
        raise SpikeNASError(f"batches must be a torch.Tensor or a list of them, got {type(batches).__name__}")
    batches = list(batches)
    if not batches:
        raise SpikeNASError("batches is empty: give at least one input batch")
    for batch in batches:
        _check_input(batch, timesteps=timesteps, sequence=sequence)
    if timesteps is None and not sequence and isinstance(getattr(model, "config", None), MacroConfig):
        check_images(batches, model.config, name="batches")  # a SpikeNAS network: its own channels and size
    start = time.perf_counter()
    if not _finite(batches):
        return invalid_input_result(seconds=time.perf_counter() - start)
    if not [n for n, m in spiking_neurons(model) if neuron_filter is None or neuron_filter(n, m)]:
        return ScoreResult(float("-inf"), seconds=time.perf_counter() - start, status="no_neurons")
    formula = config.kernel_formula()
    signs, logdets, calls = [], [], 0
    for batch in batches:
        _check_input(batch, timesteps=timesteps, sequence=sequence)
        probe = _record(model, batch, config, neuron_filter, timesteps=timesteps, sequence=sequence)
        sign, logdet = probe_slogdet(probe, backend=config.backend, **formula)
        signs.append(sign)
        logdets.append(logdet)
        calls = len(probe.sizes)
    return kernel_result(signs, logdets, num_calls=calls, seconds=time.perf_counter() - start)


def prepare_candidate(
    cells: tuple[Genotype, ...],
    macro: MacroConfig,
    network: nn.Module | None,
    batches: list[torch.Tensor],
    *,
    config: ScoreConfig,
    seed: int = 0,
) -> Candidate:
    """A :class:`Candidate` with what score ``config.name`` needs recorded on every batch."""
    spec = get_score(config.name)
    candidate = Candidate(tuple(cells), macro, options=config.options(), network=network, batches=list(batches),
                          seed=seed)
    if "spikes" in spec.needs:
        candidate.probes = [
            record_probe(network, b, bn_mode=config.option("bn_mode"), backend=config.backend) for b in batches
        ]
    if "gradients" in spec.needs:
        candidate.gradients = [gradient_stats(network, b) for b in batches]
    return candidate


def score_candidate(
    cells: tuple[Genotype, ...] | list[Genotype],
    network: nn.Module | None,
    batches: list[torch.Tensor],
    *,
    config: ScoreConfig,
    macro: MacroConfig | None = None,
    seed: int = 0,
) -> ScoreResult:
    """Score one candidate of the cell space with score ``config.name`` (what the search engine calls).

    :param network: the built network; may be None for scores that do not run it, which then need ``macro``.
    :param batches: float ``[B, C, H, W]`` scoring batches.
    """
    spec = get_score(config.name)
    if spec.runs_network and network is None:
        raise SpikeNASError(f"score {spec.name!r} runs the network: pass the built network")
    if not _finite(batches):  # every score, even one that never reads the images: no score of invalid data
        return invalid_input_result()
    if spec.kernel is not None:
        return score_network(network, batches, config=config)
    start = time.perf_counter()
    macro = macro if macro is not None else getattr(network, "config", None)
    if not isinstance(macro, MacroConfig):
        raise SpikeNASError(f"score {spec.name!r} needs the MacroConfig of the network, got {macro!r}")
    candidate = prepare_candidate(tuple(cells), macro, network, batches, config=config, seed=seed)
    value = float(spec.fn(candidate))
    calls = len(candidate.probes[0].sizes) if candidate.probes else 0
    return value_result(value, num_calls=calls, seconds=time.perf_counter() - start)
