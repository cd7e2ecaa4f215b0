"""Fixtures that more than one test module shares."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


class RuntimePacks:
    """Weights packs of built segmentation runtimes, each exported once per session (1.2 GB for the
    CPU runtime): the bundle test and the frozen-runtime test import the same pack, so the disk holds
    the runtime, one pack and one installed copy at a time (a CI machine ran out of disk with two)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.packs: dict[Path, tuple] = {}

    def pack_of(self, runtime: Path) -> tuple:
        """(the pack's path, its manifest)"""
        from inference.weights_pack.export import export_pack, runtime_source

        if runtime not in self.packs:
            pack = self.folder / f"{runtime.name}.tcpack.tar"
            self.packs[runtime] = pack, export_pack(pack, [runtime_source(runtime)])
        return self.packs[runtime]


@pytest.fixture(scope="session")
def runtime_packs(tmp_path_factory):
    packs = RuntimePacks(tmp_path_factory.mktemp("runtime_packs"))
    yield packs
    shutil.rmtree(packs.folder, ignore_errors=True)


@pytest.fixture
def disposable_tmp(tmp_path):
    """tmp_path, removed when the test ends whatever its outcome: for gigabyte-sized installs that
    would otherwise stay on disk until the session ends (pytest keeps a failed test's tmp_path)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)

