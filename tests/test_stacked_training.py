"""Stacked training (spikenas.train.stacked_training): K candidates trained in one pass equal each trained alone.

Tolerances. In float64 the stacked pass and the single-candidate pass differ only by the order of float sums
(a grouped convolution, a batched matmul, BatchNorm over more channels, the box filter standing in for 3x3
average pooling), except inside spikingjelly's CPU LIF, which computes in float32 whatever the input: a
difference of 1e-16 can round its membrane potential to a neighbouring float32, which moves a surrogate gradient
by ~1e-7 relative. After several SGD steps (momentum, weight decay) losses, parameters, momentum buffers,
BatchNorm buffers and eval logits agree to 1e-8 (measured: losses exactly, parameters 2e-10 or less); a spike
that flipped at a threshold would move them by ~1e-3. In float32 the same
rounding differences (~1e-7 relative) stay below 1e-4 under SGD over three steps. Under AdamW a gradient that
is zero mathematically (the shift or scale of a BatchNorm undone by the next one) is float noise of another sign
in the two runs, which Adam's normalisation turns into a step of up to ``lr`` in a parameter the function does
not depend on; AdamW runs are therefore compared on losses and logits, not on every parameter.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer
from torch import nn

from spikenas.data import load_dataset
from spikenas.errors import SpikeNASError
from spikenas.network import MacroConfig
from spikenas.neuron import NeuronConfig, make_lif
from spikenas.ops import get_op_set
from spikenas.space import EDGES, Genotype
from spikenas.train.stacked_training import (
    BoxFilter3,
    HardResetLIF,
    StackedNetworks,
    lean_lif_fits,
    run_stacked,
    stacked_train_step,
    train_stacked,
    unreached_parameters,
)
from spikenas.train.trainer import (
    CHECKPOINT_NAME,
    StopTraining,
    TrainConfig,
    initial_model,
    make_optimizer,
    train,
    train_step,
)

F64_TOL = 1e-8
BATCH = 8


def tiny_macro(num_cells: int, **changes) -> MacroConfig:
    base = dict(num_cells=num_cells, width=3, in_channels=1, input_size=8, hidden=8, timesteps=2, dropout=0.1)
    base.update(changes)
    return MacroConfig(**base)


def candidates(op_set: str, num_cells: int, seed: int) -> list[list[Genotype]]:
    """Four candidates: random cells, one differing from the first in a single edge (so most edges share
    their op and one does not), and, where the op set has it, a cell of zero edges only."""
    ops = get_op_set(op_set)
    rng = random.Random(seed)

    def draw() -> Genotype:
        return Genotype(tuple(rng.choice(ops) for _ in EDGES))

    first = [draw() for _ in range(num_cells)]
    changed = list(first[0].ops)
    changed[2] = next(o for o in ops if o != changed[2])
    second = [Genotype(tuple(changed)), *first[1:]]
    last = [draw() for _ in range(num_cells)]
    if "zero" in ops:
        last[-1] = Genotype(("zero", "zero", "zero", "skip", "conv3x3", "zero"))  # node 1 is empty: cuts the path
    return [first, second, [draw() for _ in range(num_cells)], last]


def batches(macro: MacroConfig, steps: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    size = (BATCH, macro.in_channels, macro.input_size, macro.input_size)
    return [
        (torch.randn(size, generator=g).to(dtype) * 2, torch.randint(0, macro.num_classes, (BATCH,), generator=g))
        for _ in range(steps)
    ]


def run_both(cells, macro, config, dtype, steps):
    """(alone, stacked) after ``steps`` steps: per step the losses, then the models."""
    alone = [initial_model(c, macro, config).to(dtype).train() for c in cells]
    stacked_models = [copy.deepcopy(m) for m in alone]
    opt_alone = [make_optimizer(m, config) for m in alone]
    opt_stacked = [make_optimizer(m, config) for m in stacked_models]
    stacked = StackedNetworks(stacked_models).train()
    losses_alone, losses_stacked = [], []
    for step, (x, y) in enumerate(batches(macro, steps, dtype)):
        row = []
        for m, o in zip(alone, opt_alone, strict=True):
            torch.manual_seed(step)  # the dropout mask of this step, as train() seeds it per epoch
            row.append(train_step(m, o, x, y, label_smoothing=config.label_smoothing)[0])
        losses_alone.append(row)
        torch.manual_seed(step)
        losses_stacked.append(stacked_train_step(stacked, opt_stacked, x, y, label_smoothing=config.label_smoothing)[0])
    return (losses_alone, alone, opt_alone), (losses_stacked, stacked_models, opt_stacked)


def assert_states_close(a: nn.Module, b: nn.Module, tol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if sa[key].is_floating_point():
            torch.testing.assert_close(sb[key], sa[key], rtol=tol, atol=tol, msg=key)
        else:
            assert torch.equal(sb[key], sa[key]), key


@pytest.mark.parametrize("num_cells", [1, 2, 3])
@pytest.mark.parametrize("op_set", ["5O", "3O", "2O"])
def test_stacked_steps_equal_training_alone_in_float64(op_set, num_cells):
    macro = tiny_macro(num_cells)
    config = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, label_smoothing=0.1)
    cells = candidates(op_set, num_cells, seed=num_cells)
    (la, alone, oa), (ls, stacked, os_) = run_both(cells, macro, config, torch.float64, steps=3)
    torch.testing.assert_close(torch.tensor(ls), torch.tensor(la), rtol=F64_TOL, atol=F64_TOL)
    x, _ = batches(macro, 1, torch.float64)[0]
    for a, s, o_a, o_s in zip(alone, stacked, oa, os_, strict=True):
        assert_states_close(a, s, F64_TOL)  # parameters and BatchNorm running statistics
        assert len(o_a.state) == len(o_s.state)  # momentum buffers of the same parameters (none for unreached ones)
        for (pa, qa), (ps, qs) in zip(o_a.state.items(), o_s.state.items(), strict=True):
            assert pa.shape == ps.shape
            torch.testing.assert_close(qs["momentum_buffer"], qa["momentum_buffer"], rtol=F64_TOL, atol=F64_TOL)
    evaluated = StackedNetworks(stacked).eval()
    with torch.no_grad():
        logits = evaluated(x)
        for k, a in enumerate(alone):
            torch.testing.assert_close(logits[k], a.eval()(x), rtol=F64_TOL, atol=F64_TOL)


@pytest.mark.parametrize("op_set,num_cells", [("5O", 2), ("3O", 3)])
def test_adamw_steps_keep_losses_and_logits_in_float64(op_set, num_cells):
    """AdamW turns float noise in a gradient that is zero mathematically into a step of up to ``lr``, in
    parameters the function does not depend on (a BatchNorm's shift or scale undone by the next BatchNorm):
    losses and logits still agree to rounding."""
    macro = tiny_macro(num_cells)
    config = TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=1e-2, label_smoothing=0.1)
    (la, alone, _), (ls, stacked, _) = run_both(candidates(op_set, num_cells, seed=5), macro, config,
                                                torch.float64, steps=4)
    torch.testing.assert_close(torch.tensor(ls), torch.tensor(la), rtol=F64_TOL, atol=F64_TOL)
    x, _ = batches(macro, 1, torch.float64)[0]
    with torch.no_grad():
        logits = StackedNetworks(stacked).eval()(x)
        for k, a in enumerate(alone):
            torch.testing.assert_close(logits[k], a.eval()(x), rtol=1e-7, atol=1e-7)


def test_sgd_in_float32_stays_at_rounding_level():
    macro = tiny_macro(2)
    config = TrainConfig(optimizer="sgd", lr=0.1, label_smoothing=0.1)
    (la, alone, _), (ls, stacked, _) = run_both(candidates("5O", 2, seed=0), macro, config, torch.float32, 3)
    torch.testing.assert_close(torch.tensor(ls), torch.tensor(la), rtol=1e-5, atol=1e-5)
    for a, s in zip(alone, stacked, strict=True):
        assert_states_close(a, s, 1e-4)


def test_adamw_in_float32_keeps_the_losses():
    macro = tiny_macro(2)
    config = TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=1e-2)
    (la, _, _), (ls, _, _) = run_both(candidates("3O", 2, seed=1), macro, config, torch.float32, 3)
    torch.testing.assert_close(torch.tensor(ls), torch.tensor(la), rtol=1e-5, atol=1e-5)


def test_unreached_parameters_get_no_gradient_and_no_weight_decay():
    macro = tiny_macro(2)
    cut = Genotype(("zero", "zero", "zero", "skip", "conv3x3", "zero"))  # node 3 never sees node 0
    model = initial_model([Genotype.from_index(5, "3O"), cut], macro, TrainConfig())
    names = {id(p): n for n, p in model.named_parameters()}
    unreached = {names[id(p)] for p in unreached_parameters(model)}
    assert unreached == {n for n in names.values() if n.startswith(("stem.", "cells.0.", "cells.1."))}
    config = TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.1)
    (_, alone, _), (_, stacked, _) = run_both([[Genotype.from_index(5, "3O"), cut]] * 2, macro, config,
                                              torch.float64, 1)
    before = initial_model([Genotype.from_index(5, "3O"), cut], macro, config).double()
    for a, s in zip(alone, stacked, strict=True):
        assert torch.equal(a.stem[0].weight, before.stem[0].weight)  # untouched alone ...
        assert torch.equal(s.stem[0].weight, before.stem[0].weight)  # ... and stacked


@pytest.mark.parametrize("shape", [(3, 2, 5, 7), (2, 1, 1, 1), (1, 2, 2, 3)])
def test_box_filter_equals_average_pooling_and_its_gradient(shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    grad = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = BoxFilter3.apply(x)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    ref = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    (g_ref,) = torch.autograd.grad(ref, x, grad)
    torch.testing.assert_close(ours, ref, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-14, atol=1e-14)
    torch.autograd.gradcheck(BoxFilter3.apply, (x,))


@pytest.mark.parametrize("neuron", [NeuronConfig(), NeuronConfig(tau=2.0, v_threshold=0.5, surrogate_alpha=4.0)])
def test_lean_lif_is_spikingjellys_bit_for_bit(neuron):
    lif = make_lif(neuron)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 4, 5, 6, generator=g) + 0.8).requires_grad_()
    grad = torch.randn(3, 4, 5, 6, generator=g)
    assert lean_lif_fits(lif, x)
    ours = HardResetLIF.apply(x, float(lif.tau), float(lif.v_threshold), neuron.surrogate_alpha)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    lif.reset()
    theirs = lif(x)
    (g_theirs,) = torch.autograd.grad(theirs, x, grad)
    assert 0 < float(theirs.detach().mean()) < 1 and ours.dtype == theirs.dtype == torch.float32
    assert torch.equal(ours, theirs) and torch.equal(g_ours, g_theirs)
    assert not lean_lif_fits(make_lif(NeuronConfig(v_reset=0.5)), x)  # another reset: spikingjelly's operator runs
    assert not lean_lif_fits(lif, x.double())  # spikingjelly computes float64 on another path


class Centered(nn.Module):
    """Not a layer the stacked pass knows: it must run once per candidate on its channel block."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x - x.mean(dim=1, keepdim=True))


def test_unknown_modules_run_per_candidate():
    modules = [nn.Sequential(layer.Conv2d(2, 3, 1, step_mode="m"), Centered(float(k + 1))) for k in range(3)]
    x = [torch.randn(2, 4, 2, 5, 5, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    out = run_stacked(modules, torch.cat(x, dim=2))
    for k, m in enumerate(modules):
        torch.testing.assert_close(out[:, :, 3 * k : 3 * (k + 1)], m(x[k]), rtol=1e-6, atol=1e-6)


def test_candidates_must_share_the_macro():
    a = initial_model([Genotype.from_index(1, "3O")], tiny_macro(1), TrainConfig())
    b = initial_model([Genotype.from_index(1, "3O")], tiny_macro(1, width=4), TrainConfig())
    with pytest.raises(SpikeNASError, match="share one macro"):
        StackedNetworks([a, b])
    with pytest.raises(SpikeNASError, match="at least one"):
        StackedNetworks([])


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits"), load_dataset("digits", split="test")


def quick_config(**changes) -> TrainConfig:
    base = dict(epochs=2, max_train_samples=96, max_test_samples=64, batch_size=32, crop_padding=1, seed=3,
                optimizer="sgd", lr=0.05, eval_batch_size=32)
    base.update(changes)
    return TrainConfig(**base)


DIGITS_MACRO = MacroConfig(num_cells=2, width=3, in_channels=1, input_size=8, hidden=16, timesteps=2, dropout=0.2)
DIGITS_CELLS = [
    [Genotype.from_index(100, "3O"), Genotype.from_index(500, "3O")],
    [Genotype.from_index(101, "3O"), Genotype.from_index(500, "3O")],
    [Genotype.from_index(7, "5O"), Genotype.from_index(3000, "5O")],
]


def test_train_stacked_equals_train_and_writes_its_checkpoints(digits, tmp_path):
    train_set, test_set = digits
    config = quick_config()
    dirs = [tmp_path / f"c{k}" for k in range(len(DIGITS_CELLS))]
    results = train_stacked(DIGITS_CELLS, DIGITS_MACRO, train_set, test_set, config=config, checkpoint_dirs=dirs,
                            progress=False)
    for cells, result, directory in zip(DIGITS_CELLS, results, dirs, strict=True):
        alone = train(cells, DIGITS_MACRO, train_set, test_set, config=config, progress=False)
        assert len(result.history) == 2 and result.epochs_finished == 2
        for row_s, row_a in zip(result.history, alone.history, strict=True):
            assert row_s.keys() == row_a.keys()
            for key in ("train_loss", "test_loss"):
                assert row_s[key] == pytest.approx(row_a[key], rel=1e-5), key
            for key in ("epoch", "lr", "train_accuracy", "test_accuracy"):
                assert row_s[key] == row_a[key], key
        assert_states_close(alone.model, result.model, 1e-4)
        assert result.fingerprint == alone.fingerprint
        assert result.spikes is not None and result.spikes.to_dict().keys() == alone.spikes.to_dict().keys()
        # train() continues the stacked run's checkpoint: a third epoch of a 3-epoch run
        longer = quick_config(epochs=3)
        with pytest.raises(SpikeNASError, match="different run"):
            train(cells, DIGITS_MACRO, train_set, test_set, config=longer, checkpoint_dir=directory, resume=True,
                  progress=False)
        resumed = train(cells, DIGITS_MACRO, train_set, test_set, config=config, checkpoint_dir=directory,
                        resume=True, progress=False, count_test_spikes=False)
        assert resumed.resumed_from == 2 and resumed.history == result.history
        assert (directory / CHECKPOINT_NAME).exists()


def test_resume_continues_each_candidate_from_its_last_epoch(digits, tmp_path):
    train_set, test_set = digits
    config = quick_config(epochs=3, schedule="step")
    full = train_stacked(DIGITS_CELLS, DIGITS_MACRO, train_set, test_set, config=config, progress=False,
                         count_test_spikes=False)

    def interrupted(last_epoch: dict[int, int], directory) -> list:
        def stop(candidate: int, epoch: int, row: dict) -> None:
            if epoch >= last_epoch[candidate]:
                raise StopTraining

        dirs = [directory / f"c{k}" for k in range(len(DIGITS_CELLS))]
        partial = train_stacked(DIGITS_CELLS, DIGITS_MACRO, train_set, test_set, config=config, checkpoint_dirs=dirs,
                                progress=False, count_test_spikes=False, on_epoch_end=stop)
        assert [r.epochs_finished for r in partial] == [last_epoch[k] for k in range(len(DIGITS_CELLS))]
        resumed = train_stacked(DIGITS_CELLS, DIGITS_MACRO, train_set, test_set, config=config, checkpoint_dirs=dirs,
                                resume=True, progress=False, count_test_spikes=False)
        assert [r.resumed_from for r in resumed] == [last_epoch[k] for k in range(len(DIGITS_CELLS))]
        assert all([h["epoch"] for h in r.history] == [1, 2, 3] for r in resumed)
        return resumed

    # every candidate killed after epoch 1: the resumed run repeats the same float operations, bit for bit
    for a, b in zip(full, interrupted({0: 1, 1: 1, 2: 1}, tmp_path / "same"), strict=True):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            assert [h[key] for h in b.history] == [h[key] for h in a.history], key
        assert_states_close(a.model, b.model, 0.0)
    # candidate 1 killed after epoch 1, the others after epoch 2: it catches up alone, then all train epoch 3
    for a, b in zip(full, interrupted({0: 2, 1: 1, 2: 2}, tmp_path / "apart"), strict=True):
        for row_a, row_b in zip(a.history, b.history, strict=True):
            assert row_b["train_loss"] == pytest.approx(row_a["train_loss"], rel=1e-5)
        assert_states_close(a.model, b.model, 1e-4)
    with pytest.raises(SpikeNASError, match="checkpoint directories"):
        train_stacked(DIGITS_CELLS, DIGITS_MACRO, train_set, test_set, config=config,
                      checkpoint_dirs=[tmp_path / "x"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stacked_step_on_cuda_equals_training_alone():
    macro = tiny_macro(2)
    config = TrainConfig(optimizer="sgd", lr=0.1)
    cells = candidates("5O", 2, seed=4)
    alone = [initial_model(c, macro, config).cuda().train() for c in cells]
    stacked_models = [copy.deepcopy(m) for m in alone]
    opt_alone = [make_optimizer(m, config) for m in alone]
    opt_stacked = [make_optimizer(m, config) for m in stacked_models]
    x, y = (t.cuda() for t in batches(macro, 1, torch.float32)[0])
    torch.manual_seed(0)
    losses = []
    for m, o in zip(alone, opt_alone, strict=True):
        torch.manual_seed(0)
        losses.append(train_step(m, o, x, y)[0])
    torch.manual_seed(0)
    stacked_losses, _ = stacked_train_step(StackedNetworks(stacked_models).train(), opt_stacked, x, y)
    torch.testing.assert_close(torch.tensor(stacked_losses), torch.tensor(losses), rtol=1e-4, atol=1e-4)
    for a, s in zip(alone, stacked_models, strict=True):
        assert_states_close(a, s, 1e-3)


def test_rerank_rungs_trained_stacked_choose_as_one_task_per_candidate(tmp_path):
    from spikenas.nas import rerank
    from spikenas.nas.engine import CandidateRecord

    records = [CandidateRecord((Genotype.from_index(i, "2O"),) * 2, 100 + i, float(9 - i), "ok") for i in (3, 9, 40)]
    config = rerank.RerankConfig(top=3, epochs=(1, 2), eta=2, train_samples=64)
    macro = MacroConfig(num_cells=2, width=2, in_channels=1, input_size=8, hidden=8, timesteps=2).to_dict()
    kwargs = dict(config=config, macro=macro, dataset="digits", data_dir=None, seed=0, progress=False)
    chosen, alone = rerank.live_rerank(records, directory=tmp_path / "alone", **kwargs)
    chosen_stacked, stacked = rerank.live_rerank(records, directory=tmp_path / "stacked", stacked=True, **kwargs)
    assert stacked["rung_sizes"] == alone["rung_sizes"] == [3, 2]
    assert stacked["epochs_trained_this_run"] == alone["epochs_trained_this_run"] == 3 + 2
    for a, s in zip(alone["rungs"], stacked["rungs"], strict=True):
        assert s["candidates"] == a["candidates"]
        assert s["accuracies"] == pytest.approx(a["accuracies"], abs=2.5 / 287)  # two of the 287 validation images
    assert chosen_stacked.cells == chosen.cells
    _, again = rerank.live_rerank(records, directory=tmp_path / "stacked", stacked=True, resume=True, **kwargs)
    assert again["epochs_trained_this_run"] == 0 and again["rungs"] == stacked["rungs"]


def test_speck_family_trains_one_by_one_as_train_does(digits, tmp_path):
    """The stacked engine runs SNASNet networks; Speck networks (a per-step stem on events) are trained by train()
    one after another, with train_stacked's arguments: same histories, checkpoints and epoch callbacks."""
    train_set, test_set = digits
    macro = MacroConfig(num_cells=1, width=4, in_channels=1, input_size=8, hidden=8, timesteps=2, vote=1,
                        family="speck")
    cells = [[Genotype.from_index(i, "speck")] for i in (545, 300)]
    config = quick_config(epochs=1)
    seen = []
    dirs = [tmp_path / f"c{k}" for k in range(len(cells))]
    results = train_stacked(cells, macro, train_set, test_set, config=config, checkpoint_dirs=dirs, progress=False,
                            on_epoch_end=lambda k, epoch, row: seen.append((k, epoch)))
    assert seen == [(0, 1), (1, 1)]
    for c, result, directory in zip(cells, results, dirs, strict=True):
        alone = train(c, macro, train_set, test_set, config=config, progress=False)
        timeless = [[{k: v for k, v in row.items() if k != "seconds"} for row in r.history] for r in (result, alone)]
        assert timeless[0] == timeless[1] and (directory / CHECKPOINT_NAME).exists()
