"""What the studies share: the search/training flags, brief training of a found network, and tables and plots.

The networks of a study are its training recipe's (``--recipe``, default the dataset's, see
:mod:`spikenas.train.recipes`): every search scores cells at the recipe's width, hidden units, T and
input size, so the parameter counts, the budgets and the bytes in a table are those of the network
that is trained; the network found is then trained with the recipe's optimisation for ``--epochs``
on a seeded subset of ``--max-train-samples`` images. ``--recipe snasnet`` keeps the fast search
preset's narrow proxy network and SNASNet's SGD recipe.
"""

from __future__ import annotations

import argparse
import csv
import functools
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from spikenas.argparsing import kernel_batch, positive_float, positive_int, random_seed
from spikenas.data import DATASETS, ImageDataset, load_dataset
from spikenas.errors import SpikeNASError
from spikenas.executor import executor_from_args
from spikenas.nas import PRESETS, SearchRequest
from spikenas.network import MacroConfig
from spikenas.results import atomic_path, save_figure, versions, write_json, write_text
from spikenas.scoring import ScoreConfig
from spikenas.space import Genotype
from spikenas.sweep import SweepTask, result_path, run_sweep
from spikenas.train.recipes import AUTO, RECIPES, Recipe, get_recipe, recipe_name
from spikenas.train.trainer import TrainConfig, TrainResult, train

STUDY_EPOCHS = 1  # epochs each found network is trained for
STUDY_TRAIN_SAMPLES = 20_000  # seeded training subset
STUDY_TEST_SAMPLES = 10_000  # first test images (all of Fashion-MNIST's)
SEARCH_MACRO_FLAGS = ("width", "hidden", "timesteps", "input_size")


def add_common_arguments(parser: argparse.ArgumentParser, *, dataset: str = "fashion-mnist") -> None:
    """Flags every study takes: data, the networks searched and trained, brief training, output, threads."""
    fast = PRESETS["fast"]
    parser.add_argument("--dataset", choices=DATASETS, default=dataset, help=f"default {dataset}")
    parser.add_argument("--data-dir", help="directory of a local dataset")
    parser.add_argument("--recipe", choices=(AUTO, *RECIPES), default=AUTO,
                        help="training recipe; its network is also the one searched (default auto: the dataset's)")
    parser.add_argument("--width", type=positive_int, help="channels of the first cell (default: the recipe's)")
    parser.add_argument("--hidden", type=positive_int, help="units of the head's first Linear (default: the recipe's)")
    parser.add_argument("--timesteps", type=positive_int, help="T (default: the recipe's)")
    parser.add_argument("--input-size", type=positive_int, help="images resized to this (default: the recipe's)")
    parser.add_argument("--score", help="registered score of the search (default: the search's default score)")
    parser.add_argument("--score-batch", type=kernel_batch, default=fast["batch_size"],
                        help="samples per scoring batch")
    parser.add_argument("--epochs", type=positive_int, default=STUDY_EPOCHS,
                        help=f"training epochs per network (default {STUDY_EPOCHS})")
    parser.add_argument("--batch-size", type=positive_int, help="training batch (default: the recipe's)")
    parser.add_argument("--lr", type=positive_float, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--max-train-samples", type=positive_int, default=STUDY_TRAIN_SAMPLES,
                        help=f"seeded training subset (default {STUDY_TRAIN_SAMPLES})")
    parser.add_argument("--max-test-samples", type=positive_int, default=STUDY_TEST_SAMPLES,
                        help=f"first test images (default {STUDY_TEST_SAMPLES})")
    parser.add_argument("--seed", type=random_seed, default=0, help="seed of data, weights, search and training")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    parser.add_argument("--output-dir", required=True, help="results.json, table.md, table.csv and PNGs go here")
    parser.add_argument("--resume", action="store_true", help="keep the rows already finished in <output-dir>")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def setup_threads(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise SpikeNASError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)


def study_recipe(args: argparse.Namespace) -> Recipe:
    """The study's training recipe (``--recipe``; ``auto``: the dataset's)."""
    return get_recipe(args.recipe, args.dataset)


def study_macro_fields(args: argparse.Namespace) -> dict:
    """MacroConfig fields of the study's networks: the recipe's, then the flags given."""
    fields = study_recipe(args).macro_fields()
    fields.update({k: getattr(args, k) for k in SEARCH_MACRO_FLAGS if getattr(args, k, None) is not None})
    return fields


def search_config(args: argparse.Namespace, **changes) -> SearchRequest:
    """The search request of a study: the fast preset with the study's data and network
    (:func:`study_macro_fields`), then ``changes`` (flat fields, :meth:`SearchRequest.from_fields`)."""
    values = dict(PRESETS["fast"])
    macro = study_macro_fields(args)
    values.update({k: macro[k] for k in SEARCH_MACRO_FLAGS if k in macro})
    values.update(dataset=args.dataset, data_dir=args.data_dir, batch_size=args.score_batch, seed=args.seed)
    if getattr(args, "score", None):
        values["score"] = ScoreConfig(name=args.score)
    values.update(changes)
    return SearchRequest.from_fields(**values)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's optimisation with the study's epochs, subsets, seed and any batch size or lr given."""
    base = study_recipe(args).train
    changes = dict(
        epochs=args.epochs, max_train_samples=args.max_train_samples, max_test_samples=args.max_test_samples,
        seed=args.seed,
    )
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.lr is not None:
        changes.update(lr=args.lr, eta_min=min(base.eta_min, args.lr))
    return base.replace(**changes)


@functools.lru_cache(maxsize=4)
def datasets(name: str, data_dir: str | None) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) splits, loaded once per study."""
    return load_dataset(name, data_dir=data_dir, split="train"), load_dataset(name, data_dir=data_dir, split="test")


def train_cells(
    cells: Sequence[Genotype], macro: MacroConfig | dict, args: argparse.Namespace, *, progress: bool = False
) -> TrainResult:
    """Train a network briefly: its search's macro settings with the study's (:func:`study_macro_fields`)
    applied, and :func:`train_config`'s optimisation; spikes are not counted."""
    if isinstance(macro, MacroConfig):
        macro = macro.to_dict()
    macro = MacroConfig.from_dict({**macro, **study_macro_fields(args)})
    train_set, test_set = datasets(args.dataset, args.data_dir)
    return train(list(cells), macro, train_set, test_set, config=train_config(args), progress=progress,
                 count_test_spikes=False)


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value).replace("|", "\\|")


def write_tables(rows: list[dict], columns: Sequence[str], out_dir: Path, *, name: str = "table") -> tuple[Path, Path]:
    """``<name>.md`` (Markdown) and ``<name>.csv`` with ``columns`` of ``rows``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{name}.md"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(r.get(c)) for c in columns) + " |" for r in rows]
    write_text(md, "\n".join(lines) + "\n")
    path = out_dir / f"{name}.csv"
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return md, path


def pyplot():
    """matplotlib's pyplot on the Agg backend; a clear error when matplotlib is missing."""
    try:
        import matplotlib
    except ModuleNotFoundError as err:
        raise SpikeNASError(
            "plots need matplotlib: pip install matplotlib (or pip install 'spikenas[plots]')"
        ) from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_with_side_legend(fig: object, ax: object, path: str | Path) -> None:
    """Put ``ax``'s legend to the right of the plot, grid it, save ``fig`` to ``path`` and close it."""
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    pyplot().close(fig)


STUDY_SKIP = ("study", "output_dir", "resume", "quiet", "executor", "ray_address", "workers")


def study_arguments(args: argparse.Namespace) -> dict:
    """The arguments a study's sweep tasks receive: ``vars(args)`` without output, resume and executor options."""
    return {k: v for k, v in vars(args).items() if k not in STUDY_SKIP and not callable(v)}


def sweep_rows(tasks: Sequence[SweepTask], args: argparse.Namespace) -> list[dict]:
    """Run a study's row tasks on ``--executor``; one result file per row under ``<output-dir>/runs``.

    Without ``--resume`` the plan's result files are removed first; with it, finished rows are kept.
    :returns: each task's row, in task order.
    """
    runs = Path(args.output_dir) / "runs"
    if not args.resume:
        for task in tasks:
            result_path(runs, task.id).unlink(missing_ok=True)
    with executor_from_args(args) as executor:
        sweep = run_sweep(tasks, output_dir=runs, executor=executor, progress=not args.quiet)
    return [sweep.payloads[t.id]["result"] for t in tasks]


def write_study_results(
    out_dir: Path, study: str, args: argparse.Namespace, rows: list[dict], *, config: dict, start: float, **extra
) -> Path:
    """``<out_dir>/results.json`` of a study: its name, config (the arguments plus ``config``), seed,
    versions, rows, timings and any ``extra`` entries."""
    trained = {}
    if getattr(args, "recipe", None) is not None:  # the resolved recipe and the network it trains
        trained = {"recipe": recipe_name(args.recipe, args.dataset), "trained_macro": study_macro_fields(args)}
    payload = {
        "study": study,
        "config": {**{k: v for k, v in vars(args).items() if not callable(v)}, **trained, **config},
        "seed": args.seed,
        "versions": versions(),
        **extra,
        "rows": rows,
        "timings": {"total_s": time.perf_counter() - start},
    }
    return write_json(Path(out_dir) / "results.json", payload)
