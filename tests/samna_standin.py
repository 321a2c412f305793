"""A stand-in for the import of SynSense's samna SDK, so that sinabs' Speck backend can be imported.

PyPI's ``samna`` is a stub that installs from elsewhere, and sinabs 3.1.3 imports ``samna`` and ``samnagui`` at
module level only to talk to a device. The tests here use sinabs' graph checks, memory model and core mapping,
none of which calls samna: every attribute of the stand-in is another stand-in, so an accidental call fails.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

NAMES = ("samna", "samnagui")


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> _StandIn:
        if name.startswith("__"):
            raise AttributeError(name)
        module = _StandIn(f"{self.__name__}.{name}")
        sys.modules[module.__name__] = module
        setattr(self, name, module)
        return module


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in NAMES:
            return importlib.machinery.ModuleSpec(name, _Loader(), is_package=True)
        return None


def install() -> None:
    """Make ``import samna`` and ``import samnagui`` give stand-ins (once per process)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
