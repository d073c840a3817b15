"""notebooks/explore_checkpoint.ipynb runs top to bottom on a tiny checkpoint (so it never rots)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_checkpoint.ipynb"


def test_explore_checkpoint_notebook_executes(
    tiny_gan_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAN_CKPT", str(tiny_gan_run / "checkpoints" / "last.ckpt"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "4 generator steps" in text
    assert (
        "'metrics/classifier_fd': 2" in text and "'loss/g':" in text
    )  # curves were read from TensorBoard
    assert (
        sum("image/png" in o.get("data", {}) for o in outputs) == 3
    )  # samples, interpolation, curves
