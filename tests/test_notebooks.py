"""The notebooks of examples/ run top to bottom (nbclient), each in a fresh kernel whose working directory is a temp
folder: EDGEMEM_WORK says where they write (never the checkout), EDGEMEM_ROOT where the checkout's models and exports
are. Committed without outputs (tools/make_notebooks.py writes them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_the_three_notebooks_are_there_and_committed_without_outputs():
    import nbformat

    assert [p.name for p in NOTEBOOKS] == ["01_own_data_to_c.ipynb", "02_kws_mixed_precision_and_patches.ipynb",
                                           "03_spiking_internals.ipynb"]
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{p.name}: strip outputs (tools/make_notebooks.py)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("EDGEMEM_ROOT", str(ROOT))
    monkeypatch.setenv("EDGEMEM_WORK", str(work))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    before = time.monotonic()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.monotonic() - before
    print(f"{path.name}: {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(work.iterdir()), "the notebook wrote nothing into EDGEMEM_WORK"
