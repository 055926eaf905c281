"""Shared fixtures. Every test works in pytest's ``tmp_path``; none touches the real home or cwd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test with its own temp directory as cwd and HOME, so nothing leaks out."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", os.fspath(tmp_path))
    yield


# Long property-based runs: `pytest --hypothesis-profile=long` (tests/test_fidelity.py sizes itself
# from the active profile; the default run stays short).
settings.register_profile("long", max_examples=10_000, deadline=None)
