"""Builds the optional C++ extension ``spikenas._native`` from csrc/ and maps kernels/ into the package.

The kernels/ folder sits at the top of the repository (beside csrc/, whose C++ it wraps) but is installed
as ``spikenas.kernels``: ``spikenas`` is the only top-level name the distribution installs.

Without a working C++ compiler the package still installs and runs on the pure-PyTorch reference path: the
extension is marked optional and setuptools prints a warning instead of failing.
"""

import os
import sys

from setuptools import find_packages, setup

try:
    from pybind11.setup_helpers import Pybind11Extension, build_ext
except ImportError:  # pybind11 is a build requirement; this only happens with --no-build-isolation
    Pybind11Extension = None

packages = ["spikenas", *(f"spikenas.{p}" for p in find_packages("spikenas"))]
packages += ["spikenas.kernels", *(f"spikenas.kernels.{p}" for p in find_packages("kernels"))]

ext_modules = []
cmdclass = {}
sources = []
if os.path.isdir("csrc"):
    sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp"))
if Pybind11Extension is not None and sources and os.environ.get("SPIKENAS_NO_NATIVE") != "1":
    openmp = [] if sys.platform == "darwin" else ["-fopenmp"]
    ext_modules.append(
        Pybind11Extension(
            "spikenas._native",
            sources=sources,
            depends=sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".hpp")),
            include_dirs=["csrc"],
            extra_compile_args=["-O3", *openmp],
            extra_link_args=openmp,
            cxx_std=17,
            optional=True,
        )
    )
    cmdclass["build_ext"] = build_ext

setup(
    packages=packages,
    package_dir={"spikenas.kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
