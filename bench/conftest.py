"""Shared benchmark plumbing: a module that defines ``markdown() -> str`` gets its table printed to the terminal
once its benchmarks are done (pytest's output capture is suspended for it)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _print_table(request: pytest.FixtureRequest):
    yield
    markdown = getattr(request.module, "markdown", None)
    table = markdown() if callable(markdown) else ""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if table and capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + table + "\n")
