"""Training recipes: named presets of the training macro and the optimisation, one per dataset.

A search scores cells on a narrow, cheap proxy network (``python -m spikenas search --fast``: width 4,
16x16 inputs). The cells it picks are what gets trained; the network around them (width, hidden
units, T, input size, stem stride, dropout) and the optimisation are the recipe's. A field left
``None`` keeps the value of the search's network.

Why the dataset recipes look the way they do (2 CPU cores, minutes, not GPU-hours):

* AdamW at 2e-3 with a short linear warm-up and a per-batch cosine decay learns in one or two epochs
  what SNASNet's SGD 0.1 with a per-epoch cosine needs tens of epochs for.
* T = 2 timesteps: training cost is linear in T (BPTT over every step); direct encoding of a static
  image needs few steps.
* Fashion-MNIST at 14x14 (the bilinear resize halves 28x28 by averaging 2x2 blocks): the cells run at
  14x14 and 7x7, a quarter of the compute of 28x28 at the same width. A stride-2 stem on the 28x28
  image costs the same and trained no better in a 10,000-image pilot (70.5% against 73.2% after one
  epoch); unlike a stride, the input size is a search setting too, so the studies can search the very
  network they train.
* Label smoothing 0.1 and dropout 0.1 instead of 0.5: regularisation sized for a one- or two-epoch
  run, where the network underfits rather than overfits.
* The head's Linear layers get the fan-in init (:func:`spikenas.train.trainer.head_init`) so the
  hidden LIF layer fires from the first batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from spikenas.errors import SpikeNASError
from spikenas.train.trainer import TrainConfig

MACRO_FIELDS = ("width", "hidden", "timesteps", "input_size", "stem_stride", "dropout")


@dataclass(frozen=True)
class Recipe:
    """How a searched network is trained: the macro fields it sets and the optimisation."""

    description: str  # one line: what the recipe is for
    train: TrainConfig = field(default_factory=TrainConfig)  # optimiser, schedule, batch, augmentation, epochs
    width: int | None = None  # channels of the first cell; None: the search's
    hidden: int | None = None  # units of the head's first Linear; None: the search's
    timesteps: int | None = None  # T; None: the search's
    input_size: int | None = None  # images resized to this; None: the search's
    stem_stride: int | None = None  # 1 or 2; None: the search's
    dropout: float | None = None  # dropout before the head's first Linear; None: the search's

    def macro_fields(self) -> dict:
        """The MacroConfig fields this recipe sets (the ``None`` ones are left out)."""
        return {name: getattr(self, name) for name in MACRO_FIELDS if getattr(self, name) is not None}

    def to_dict(self) -> dict:
        return asdict(self)


def _fast(**train_changes) -> TrainConfig:
    """The quick CPU optimisation the dataset recipes share: AdamW, warm-up then per-batch cosine."""
    base = dict(
        optimizer="adamw", lr=2e-3, weight_decay=1e-2, eta_min=1e-5, schedule="step", warmup_steps=100,
        label_smoothing=0.1, batch_size=128, eval_batch_size=500,
    )
    base.update(train_changes)
    return TrainConfig(**base)


RECIPES: dict[str, Recipe] = {
    # SNASNet's optimisation (SGD 0.1, cosine per epoch, crop + flip) on the search's own network.
    "snasnet": Recipe("SNASNet's recipe on the network the search scored"),
    # 28x28 grey images, 60,000 for training, resized to 14x14: width 16, T 2.
    "fashion-mnist": Recipe(
        "Fashion-MNIST in under 10 minutes on 2 CPU cores",
        train=_fast(epochs=5, crop_padding=0, flip=True),
        width=16, hidden=256, timesteps=2, input_size=14, stem_stride=1, dropout=0.1,
    ),
    # scikit-learn's 1,437 training digits, upsampled from 8x8 to 16x16: many short epochs, no flip.
    "digits": Recipe(
        "scikit-learn's digits in well under a minute",
        train=_fast(epochs=30, batch_size=64, warmup_steps=50, crop_padding=1, flip=False),
        width=8, hidden=128, timesteps=2, input_size=16, stem_stride=1, dropout=0.1,
    ),
    # CIFAR-10/100 and TinyImageNet: the paper's datasets, sized for a GPU (see docs/results/training).
    "cifar10": Recipe(
        "CIFAR-10: SNASNet's macro at width 64, T 4, crop + flip",
        train=_fast(epochs=60, crop_padding=4, flip=True, warmup_steps=500),
        width=64, hidden=512, timesteps=4, input_size=32, stem_stride=1, dropout=0.2,
    ),
    "cifar100": Recipe(
        "CIFAR-100: as CIFAR-10",
        train=_fast(epochs=100, crop_padding=4, flip=True, warmup_steps=500),
        width=64, hidden=1024, timesteps=4, input_size=32, stem_stride=1, dropout=0.2,
    ),
    "tinyimagenet": Recipe(
        "TinyImageNet-200: 64x64 inputs with SNASNet's stride-2 stem",
        train=_fast(epochs=60, crop_padding=8, flip=True, warmup_steps=500),
        width=64, hidden=1024, timesteps=4, input_size=64, stem_stride=2, dropout=0.2,
    ),
}
AUTO = "auto"


def recipe_name(name: str, dataset: str) -> str:
    """Resolve ``auto`` to the dataset's recipe (``snasnet`` when it has none); check other names."""
    if name == AUTO:
        return dataset if dataset in RECIPES else "snasnet"
    if name not in RECIPES:
        raise SpikeNASError(f"unknown recipe {name!r}; choose {AUTO} or one of: {', '.join(RECIPES)}")
    return name


def get_recipe(name: str, dataset: str = "digits") -> Recipe:
    """The recipe called ``name`` (``auto``: the one for ``dataset``)."""
    return RECIPES[recipe_name(name, dataset)]
