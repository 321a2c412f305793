"""Every command and Python snippet README.md shows runs.

The test reads README.md's fenced code blocks. In shell blocks it joins backslash continuations, drops
comments, splits ``&&`` chains and runs each ``python -m spikenas...`` or ``spikenas ...`` command, in
README order, in one temporary directory (so a search's ``results.json`` is there for the training
command after it), as a subprocess of ``sys.executable``. Each command gets the size-reducing flags that
:data:`REDUCTIONS` holds for its kind (``search``/algorithm, ``analyze``/study, ``train``, ...), appended
only where the README does not give that flag itself: the README's own flags are never dropped or
overridden. A command of a kind with no entry fails with "no reduction known", so a new README command
cannot silently run for an hour. Commands that need an absent dataset, extra or server skip with the
reason; other shell commands (``pip install``, ``ray start``, ``python -m pytest``) are listed as skipped.

Python blocks run as written in a subprocess. A block that is a template, i.e. uses names the reader
supplies, says so in an HTML comment on one of the three lines above its fence:
``<!-- template: my_snn, images -->``; the test then defines those names first from
:data:`TEMPLATE_INPUTS` (a name without an entry fails loudly).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED = Path(os.environ.get("SPIKENAS_SHARED", ROOT.parent / "shared"))
# One reduced command's limit; the whole module takes a few minutes of CPU on 2 idle cores.
COMMAND_TIMEOUT_S = float(os.environ.get("SPIKENAS_README_TIMEOUT", 300))

#: flags appended to a command of each kind (only those the README's command does not already give)
REDUCTIONS: dict[tuple[str, ...], list[str]] = {
    ("search", "spikenas"): ["--fast", "--quiet"],
    # A search with --calibrate N trains N candidates twice: one epoch on a few training images each.
    ("search", "spikenas", "calibrate"): [
        "--fast", "--calibrate-epochs", "1", "--calibrate-train-samples", "128", "--quiet",
    ],
    ("search", "random"): ["--fast", "--samples", "50", "--quiet"],
    # The README's network shape is kept (no --fast; T does not change parameters), so a budget that no
    # network of that shape fits still fails here.
    ("search", "evolution"): [
        "--population", "4", "--iterations", "2", "--supernet-epochs", "1", "--train-images", "128",
        "--batch-size", "16", "--timesteps", "2", "--quiet",
    ],
    ("train",): ["--epochs", "1", "--max-train-samples", "256", "--max-test-samples", "256", "--quiet"],
    ("analyze", "scenarios"): [
        "--epochs", "1", "--max-train-samples", "256", "--max-test-samples", "256", "--cells-list", "1",
        "--quiet",
    ],
    ("analyze", "ops"): [
        "--epochs", "1", "--max-train-samples", "256", "--max-test-samples", "256", "--samples", "8", "--quiet",
    ],
    ("analyze", "correlation"): [
        "--epochs", "1", "--max-train-samples", "256", "--max-test-samples", "256", "--k", "3", "--quiet",
    ],
    ("analyze", "fidelity"): ["--sample", "20", "--batch-size", "16", "--width", "4", "--no-plots"],
    ("analyze", "selection"): [
        "--sample", "20", "--seeds", "0", "--folds", "2", "--batch-size", "16", "--width", "4", "--no-plots",
    ],
    ("analyze", "rerank"): ["--folds", "2", "--tie-seeds", "1", "--no-plot"],
    ("analyze", "guard"): ["--tie-seeds", "1", "--no-plot"],
    ("analyze", "ground_truth"): ["--sets", "2O-1cell", "--stack", "4", "--epochs", "1", "--max-train-samples", "128",
                                  "--val-samples", "64", "--noise-records", "2"],
    ("export",): [],  # converts one trained network: small already
}

#: Python modules a kind of command needs beyond the core install, and the extra that provides them
EXTRAS: dict[tuple[str, ...], tuple[str, str]] = {
    ("export",): ("nir", "nir"),
}

#: packages an export with ``--target NAME`` needs (sinabs for the Speck export)
TARGET_PACKAGES = {"speck": "sinabs"}

#: options whose value is an input file that the README expects in the working directory (the public
#: SpikeNAS-Bench files); the test links them in from the shared data folder when they are there
INPUT_FILE_OPTIONS = ("--bench", "--curves")

#: definitions of the names a template snippet (``<!-- template: NAME, ... -->``) leaves to the reader
TEMPLATE_INPUTS: dict[str, str] = {
    "my_snn": (
        "import torch\n"
        "from spikingjelly.activation_based import functional, layer, neuron\n"
        "my_snn = torch.nn.Sequential(layer.Conv2d(3, 8, 3, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(),\n"
        "                             layer.Flatten(), layer.Linear(8 * 16 * 16, 10), neuron.LIFNode())\n"
        "functional.set_step_mode(my_snn, 'm')\n"
    ),
    "images": "import torch\nimages = torch.rand(16, 3, 16, 16)\n",
}

#: shell commands that are not SpikeNAS commands, and why the test does not run them
NOT_RUN = {
    "pip": "installs packages: the test runs in the installed environment",
    "ray": "starts or joins a Ray server",
    "python -m pytest": "the test suite itself",
}

#: where each dataset is looked for: a path under --data-dir (or the default directory), or None if embedded
DATASET_FILES = {
    "digits": None,
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist", "train-images-idx3-ubyte"),
    "cifar10": (None, "cifar-10-batches-py"),
    "cifar100": (None, "cifar-100-python"),
    "cifar10-sample": (None, "cifar10_sample.npz"),
    "tinyimagenet": (None, "tiny-imagenet-200"),
}


@dataclass
class ReadmeCommand:
    """One runnable item of the README: a SpikeNAS command, another shell command, or a Python block."""

    line: int  # README line of the command (of the opening fence for a Python block)
    text: str  # as written (one command of a chain, continuations joined)
    argv: list[str] = field(default_factory=list)  # arguments after ``python -m spikenas`` (first: command)
    kind: tuple[str, ...] = ()  # key into REDUCTIONS; () for non-SpikeNAS commands
    python: str | None = None  # source of a Python block
    template: tuple[str, ...] = ()  # names a template block leaves to the reader
    example: str | None = None  # a block that shows a file of the repository in full (checked equal, not run)

    @property
    def id(self) -> str:
        if self.python is not None:
            return f"L{self.line}-python"
        words = self.argv[:3] if self.argv else self.text.split()[:3]
        return f"L{self.line}-" + "-".join(re.sub(r"[^\w.]", "", w) for w in words)


def _fenced_blocks(text: str) -> list[tuple[int, str, str, tuple[str, ...], str | None]]:
    """``(line, language, body, template names, example file)`` of every fenced block; indented fences are
    dedented."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        indent, language, start = len(match.group(1)), match.group(2), i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        template: tuple[str, ...] = ()
        example = None
        for above in lines[max(0, start - 3) : start]:
            marker = re.search(r"<!--\s*template:\s*([\w\s,]+?)\s*-->", above)
            if marker:
                template = tuple(n.strip() for n in marker.group(1).split(",") if n.strip())
            shown = re.search(r"<!--\s*example:\s*(\S+?)\s*-->", above)
            if shown:
                example = shown.group(1)
        blocks.append((start + 1, language, "\n".join(body), template, example))
        i += 1
    return blocks


def _spikenas_argv(words: list[str]) -> list[str] | None:
    """``[command, *args]`` of a SpikeNAS command (``python -m spikenas[.command] ...`` or ``spikenas ...``)."""
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].split(".")[0] == "spikenas":
        module = words[2].split(".")
        if len(module) > 2:
            return None  # a library module, not a command
        return module[1:] + words[3:]
    if words and words[0] == "spikenas":
        return words[1:]
    return None


def _value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag V`` or ``--flag=V``), or None."""
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _kind(argv: list[str]) -> tuple[str, ...]:
    command = argv[0] if argv else ""
    if command == "search":
        algorithm = ("search", _value(argv, "--algorithm") or "spikenas")
        return (*algorithm, "calibrate") if _value(argv, "--calibrate") is not None else algorithm
    if command == "analyze":
        study = next((w for w in argv[1:] if not w.startswith("-")), "")
        return ("analyze", study)
    return (command,)


def readme_commands(text: str | None = None) -> list[ReadmeCommand]:
    """Every runnable item of README.md, in README order."""
    text = README.read_text() if text is None else text
    out = []
    for line, language, body, template, example in _fenced_blocks(text):
        if language == "python":
            out.append(ReadmeCommand(line, body, python=body, template=template, example=example))
            continue
        if language not in ("", "bash", "sh", "shell", "console"):
            continue
        logical: list[tuple[int, str]] = []  # (README line, command line with continuations joined)
        pending = None
        for offset, raw in enumerate(body.splitlines()):
            if pending is None:
                pending = (line + 1 + offset, "")
            text_so_far = pending[1] + raw
            if raw.rstrip().endswith("\\"):
                pending = (pending[0], text_so_far.rstrip()[:-1] + " ")
                continue
            logical.append((pending[0], text_so_far))
            pending = None
        if pending is not None:
            logical.append(pending)
        for command_line, raw in logical:
            words_all = shlex.split(raw, comments=True)
            if not words_all:
                continue
            chain, part = [], []
            for word in words_all:
                if word == "&&":
                    chain.append(part)
                    part = []
                else:
                    part.append(word)
            chain.append(part)
            for words in chain:
                if not words:
                    continue
                argv = _spikenas_argv(words)
                command_text = shlex.join(words)
                if argv is None:
                    out.append(ReadmeCommand(command_line, command_text))
                else:
                    out.append(ReadmeCommand(command_line, command_text, argv=argv, kind=_kind(argv)))
    return out


def _flags(words: list[str]) -> set[str]:
    return {w.split("=", 1)[0] for w in words if w.startswith("--")}


def reduced_argv(command: ReadmeCommand) -> list[str]:
    """The README's arguments, then the kind's reducing flags that the README does not give."""
    if command.kind not in REDUCTIONS:
        raise KeyError(command.kind)
    given, extra, reduction = _flags(command.argv), [], REDUCTIONS[command.kind]
    i = 0
    while i < len(reduction):
        flag = reduction[i]
        values = []
        i += 1
        while i < len(reduction) and not reduction[i].startswith("--"):
            values.append(reduction[i])
            i += 1
        if flag not in given:
            extra += [flag, *values]
    return [*command.argv, *extra]


def _find_shared(name: str) -> Path | None:
    for folder in (SHARED / "data", SHARED):
        if (folder / name).exists():
            return folder / name
    return None


def skip_reason(command: ReadmeCommand, workdir: Path) -> str | None:
    """Why ``command`` cannot run here (absent data, extra or server), or None; may link shared files in."""
    if command.python is not None:
        return None
    if not command.argv:
        first = " ".join(command.text.split()[:3])
        for prefix, reason in NOT_RUN.items():
            if first.startswith(prefix):
                return f"not a SpikeNAS command ({reason}): {command.text}"
        return f"not a SpikeNAS command: {command.text}"
    argv = command.argv
    if _value(argv, "--ray-address") is not None:
        return f"needs a running Ray cluster (ray start; address {_value(argv, '--ray-address')})"
    if _value(argv, "--executor") == "ray" and importlib.util.find_spec("ray") is None:
        return "needs Ray: pip install -e '.[ray]'"
    dataset = _value(argv, "--dataset")
    if dataset in DATASET_FILES and DATASET_FILES[dataset] is not None:
        default_dir, required = DATASET_FILES[dataset]
        folder = _value(argv, "--data-dir") or default_dir
        if folder is None:
            return f"--dataset {dataset} needs --data-dir"
        if not (Path(folder).expanduser() / required).exists() and not (
            Path(folder).expanduser() / (required + ".gz")
        ).exists():
            return f"--dataset {dataset}: {Path(folder).expanduser() / required} is absent here"
    if command.kind in EXTRAS:
        module, extra = EXTRAS[command.kind]
        if importlib.util.find_spec(module) is None:
            return f"needs {module}: pip install -e '.[{extra}]'"
    target = _value(argv, "--target")
    if command.kind == ("export",) and target in TARGET_PACKAGES and importlib.util.find_spec(
            TARGET_PACKAGES[target]) is None:
        return f"--target {target} needs {TARGET_PACKAGES[target]}: pip install --no-deps sinabs==3.1.3"
    for option in INPUT_FILE_OPTIONS:
        name = _value(argv, option)
        if name is None or (workdir / name).exists():
            continue
        found = _find_shared(Path(name).name)
        if found is None:
            return f"{option} {name}: not in the working directory nor in {SHARED / 'data'}"
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).symlink_to(found)  # its folder (a study's default --data-dir) is the shared one
    return None


COMMANDS = readme_commands()
IDS = [f"{c.id}-{i}" if [d.id for d in COMMANDS].count(c.id) > 1 else c.id for i, c in enumerate(COMMANDS)]


def test_readme_has_commands_and_snippets():
    kinds = {c.kind for c in COMMANDS if c.argv}
    assert ("search", "spikenas") in kinds and ("train",) in kinds
    assert any(c.python is not None for c in COMMANDS)


def test_every_readme_command_has_a_reduction():
    """Parsing only: a new README command of an unknown kind fails here, before anything runs."""
    unknown = [f"{c.text} (kind {'/'.join(c.kind)})" for c in COMMANDS if c.argv and c.kind not in REDUCTIONS]
    assert not unknown, "no reduction known for command(s): " + "; ".join(unknown) + " (add them to REDUCTIONS)"
    templates = [n for c in COMMANDS for n in c.template if n not in TEMPLATE_INPUTS]
    assert not templates, f"no input known for template name(s) {templates} (add them to TEMPLATE_INPUTS)"


def test_parsing_rules():
    text = (
        "```bash\npip install x && python -m spikenas search --fast\n```\n"
        "```\npython -m spikenas.analyze ops --dataset digits \\\n    --k 2   # a comment\n"
        "spikenas train --genotype 0\nray start --head\n```\n"
        "<!-- template: images -->\n  ```python\n  print(images.shape)\n  ```\n"
    )
    found = readme_commands(text)
    assert [c.argv for c in found] == [
        [], ["search", "--fast"], ["analyze", "ops", "--dataset", "digits", "--k", "2"], ["train", "--genotype", "0"],
        [], [],
    ]
    assert [c.kind for c in found[1:4]] == [("search", "spikenas"), ("analyze", "ops"), ("train",)]
    assert found[-1].python == "print(images.shape)" and found[-1].template == ("images",)
    reduced = reduced_argv(ReadmeCommand(1, "", argv=["train", "--epochs", "3"], kind=("train",)))
    assert reduced[:3] == ["train", "--epochs", "3"] and "--epochs" not in reduced[3:]
    assert "--max-train-samples" in reduced


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One directory for every command, so outputs of earlier commands are there for later ones."""
    return tmp_path_factory.mktemp("readme")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_readme_item_runs(command: ReadmeCommand, workdir: Path):
    reason = skip_reason(command, workdir)
    if reason is not None:
        pytest.skip(reason)
    start = time.perf_counter()
    if command.example is not None:
        # The block shows a repository file in full; the file itself runs in its own test (tests/test_examples.py).
        assert command.python.strip() == (ROOT / command.example).read_text().strip(), (
            f"README line {command.line} no longer shows {command.example} as it is: copy the file into the block"
        )
        return
    if command.python is not None:
        missing = [n for n in command.template if n not in TEMPLATE_INPUTS]
        assert not missing, f"no input known for template name(s) {missing}"
        source = "".join(TEMPLATE_INPUTS[n] for n in command.template) + command.python
        argv = [sys.executable, "-c", source]
    else:
        if command.kind not in REDUCTIONS:
            pytest.fail(f"no reduction known for command {command.text!r} (kind {command.kind}): add it to REDUCTIONS")
        argv = [sys.executable, "-m", "spikenas", *reduced_argv(command)]
    try:
        proc = subprocess.run(
            argv, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README line {command.line}: {shlex.join(argv[1:])} ran over {COMMAND_TIMEOUT_S} s")
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (
        f"README line {command.line}: {command.text}\nran: {shlex.join(argv[1:])}\nexit {proc.returncode} "
        f"after {seconds:.1f} s\n{proc.stderr[-3000:]}"
    )


def test_console_script_matches_module(tmp_path):
    """``spikenas COMMAND`` (the README's console form) is the same program as ``python -m spikenas``."""
    script = shutil.which("spikenas")
    if script is None:
        pytest.skip("the spikenas console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "search", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--output" in proc.stdout
