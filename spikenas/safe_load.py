"""Loading files that may come from elsewhere without ever running code from them.

Python's pickle calls whatever a file names (``os.system`` included) while it loads, so two loaders here
refuse every name a legitimate file never holds, before anything is called:

* :func:`load_cifar_batch` reads a CIFAR-10/100 "python version" batch (a pickled dict of ``b'data'`` uint8
  ``[N, 3072]``, ``b'labels'`` or ``b'fine_labels'``, ``b'batch_label'``, ``b'filenames'``) with an unpickler
  that builds only dicts, lists, tuples, bytes, str, numbers and numpy arrays (numpy's array
  reconstructors, ``numpy.dtype`` and ``_codecs.encode``, which Python 2 pickles of bytes use).
* :func:`load_checkpoint_file` reads a ``torch.save`` file with ``torch.load(weights_only=True)``: tensors,
  dicts, lists, tuples, str, numbers, bools and None only. SpikeNAS checkpoints hold nothing else.

Every failure is one :class:`~spikenas.errors.SpikeNASError` line naming the file and, for a refused object,
the refused global.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch

from spikenas.errors import SpikeNASError

#: (module, name) pairs a numpy-pickled array needs, for numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)
CIFAR_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
    + [(f"numpy.{core}.{module}", name) for core in ("core", "_core")
       for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))]
)
_JSON_START = (b"{", b"[")


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`CIFAR_GLOBALS`; any other global raises before it is called."""

    def __init__(self, file: io.BufferedReader, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise SpikeNASError(
            f"refused CIFAR batch {self.path}: it asks for the global {module}.{name}, which a CIFAR batch never "
            "holds (only dicts, lists, bytes, str, numbers and numpy arrays are read)"
        )

    def persistent_load(self, pid: object) -> object:
        raise SpikeNASError(f"refused CIFAR batch {self.path}: it holds a persistent reference, which a CIFAR "
                            "batch never does")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def load_cifar_batch(path: str | Path) -> dict:
    """The dict of one CIFAR "python version" batch file, read without running code from it.

    :returns: the unpickled dict (keys are bytes, e.g. ``b'data'`` uint8 ``[N, 3072]``).
    :raises SpikeNASError: an unreadable or malformed file, a refused global, or a payload that is not a dict.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except SpikeNASError:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed pickle raises nearly any type; all mean the same
        raise SpikeNASError(f"malformed CIFAR pickle {path}: {_one_line(err)}") from err
    if not isinstance(batch, dict):
        raise SpikeNASError(f"malformed CIFAR pickle {path}: expected a dict, got {type(batch).__name__}")
    return batch


_REFUSED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)|Unsupported class ([\w.]+)")


def load_checkpoint_file(path: str | Path, *, what: str = "checkpoint", hint: str = "") -> dict:
    """The dict a ``torch.save`` file holds, loaded on the CPU with ``weights_only=True``.

    :param what: how the file is named in errors (e.g. ``checkpoint``); ``hint`` ends the message.
    :raises SpikeNASError: a missing or unreadable file, a JSON file given where a checkpoint is expected, an
        object other than tensors, containers, str and numbers (named, and never constructed), or a payload that
        is not a dict.
    """
    path = Path(path)
    suffix = f" ({hint})" if hint else ""
    if not path.is_file():
        raise SpikeNASError(f"no {what} at {path}{suffix}")
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as err:
        raise SpikeNASError(f"cannot read {what} {path}: {_one_line(err)}") from err
    if head in _JSON_START:
        raise SpikeNASError(f"{path} is a JSON file, not a {what} (a results.json? pass it as --from-results)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _REFUSED.search(str(err))
        name = next((g for g in found.groups() if g), None) if found else None
        if name is None and "Unsupported operand" in str(err):
            raise SpikeNASError(f"cannot read {what} {path}: not a torch.save file{suffix}") from err
        if name is None:
            detail = re.search(r"WeightsUnpickler error: ([^\n]+)", str(err))
            reason = detail.group(1)[:200] if detail else _one_line(err)
            raise SpikeNASError(f"refused {what} {path}: {reason} (loaded with weights_only=True){suffix}") from err
        raise SpikeNASError(
            f"refused {what} {path}: it asks for {name}, which is not a tensor, container, string or number "
            "(checkpoints are loaded with weights_only=True and nothing in them is run)"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError, ... for bad files
        raise SpikeNASError(f"cannot read {what} {path}: {_one_line(err)}{suffix}") from err
    if not isinstance(state, dict):
        raise SpikeNASError(f"{what} {path} holds a {type(state).__name__}, expected a dict{suffix}")
    return state
