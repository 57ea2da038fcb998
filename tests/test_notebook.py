"""The Colab quickstart runs top to bottom outside Colab (its Colab-only cells skip themselves)."""

import os

import nbformat
from nbclient import NotebookClient

from test_cli import REPO


def test_quickstart_notebook_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(REPO / "colab" / "mer_jax_quickstart.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # none committed
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)
    assert "backend: cpu" in text and "attention (heads, frames, tokens)" in text and "exported to" in text
    assert "mean ± std over 2 seeds" in text  # the LPGNet section
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)
