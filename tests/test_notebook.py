"""The Colab quickstart as a user runs it ("Run all"), in a fresh Python environment that holds no mer_jax:
the first cell pip-installs mer_jax from REPO_URL (here a copy of this checkout), and every later cell and
`mer-jax` command uses that installed copy. Colab-only cells (Drive, TensorBoard) skip themselves."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import venv

import nbformat
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "colab" / "mer_jax_quickstart.ipynb"
# Smaller than the notebook's demo sizes (papermill's convention: a cell after the one tagged "parameters").
PARAMETERS = "EPOCHS = 1\nMAX_FRAMES = 60\nHIDDEN = 16\n"


def copy_of_checkout(dest: pathlib.Path) -> pathlib.Path:
    """What a clone of this working tree holds (tracked and untracked files that git does not ignore, edits
    included): no .venv, no build outputs, and the checkout itself is left as it was by the build."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def fresh_environment(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A new virtual environment without mer_jax whose other packages are this environment's, so that the
    install is quick and offline: a .pth file puts a folder of links to this environment's site-packages
    entries (all but mer_jax's own: its dist-info and editable finder) on its path. pip there finds every
    dependency satisfied, and could not remove one (they lie outside its environment). Returns its python
    and its site-packages."""
    venv.create(root / "env", with_pip=False, symlinks=True)
    python = root / "env" / "bin" / "python"
    ours = pathlib.Path(sysconfig.get_paths()["purelib"])
    links = root / "dependencies"
    links.mkdir()
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(("mer_jax", "mer-jax", "__editable__")):
            (links / entry.name).symlink_to(entry)
    site = pathlib.Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    (site / "dependencies.pth").write_text(f"{links}\n")
    return python, site


def test_quickstart_notebook_installs_and_runs_top_to_bottom(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # none committed
    install = next(cell for cell in notebook.cells if cell.source.startswith("#@title Install mer_jax"))
    assert '"pip", "install"' in install.source
    assert re.search(r'^REPO_URL = "git\+https://github\.com/[\w.-]+/mer_jax"  #@param', install.source, re.M)
    drive = next(cell for cell in notebook.cells if "drive.mount" in cell.source)
    assert re.search(r"^USE_DRIVE = False  #@param \{type:\"boolean\"\}$", drive.source, re.M)  # opt-in
    (parameters,) = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    notebook.cells.insert(parameters + 1, nbformat.v4.new_code_cell(PARAMETERS))

    python, site = fresh_environment(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # holds no repository
    elsewhere.mkdir()
    importing = [python, "-c", "import mer_jax.data.demo as demo; print(demo.__file__)"]
    before = subprocess.run(importing, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert "No module named 'mer_jax'" in before.stderr  # this environment's editable mer_jax is hidden there
    entries = {path.name for path in site.iterdir()}

    # The kernel is the fresh environment's Python; the install cell reads MER_JAX_REPO_URL instead of its form
    # field. pip's settings: nothing from an index (a dependency not already satisfied fails the test), and
    # setuptools from the environment rather than an isolated build environment (offline, and seconds faster;
    # PIP_NO_BUILD_ISOLATION=0 is pip's spelling of --no-build-isolation).
    ours = pathlib.Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if pathlib.Path(p) != ours)
    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh environment", "language": "python",
        "env": {"MER_JAX_REPO_URL": str(copy_of_checkout(tmp_path / "checkout")), "PATH": path,
                "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "JAX_PLATFORMS": "cpu"}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    folder = tmp_path / "notebook"
    folder.mkdir()
    NotebookClient(notebook, timeout=900, kernel_name="fresh", coalesce_streams=True,
                   resources={"metadata": {"path": str(folder)}}).execute()

    def text(cell):
        return "".join(output.get("text", "") for output in cell.outputs)

    installed = text(install)
    assert re.search(r"^Successfully installed mer_jax-[\w.+]+\s*$", installed, re.M), installed[-3000:]
    added = {path.name for path in site.iterdir()} - entries
    assert "mer_jax" in added and all(name.startswith("mer_jax") for name in added), added  # nothing else
    assert (python.parent / "mer-jax").exists()
    assert f"imported from {site / 'mer_jax'}" in installed  # the kernel ran the installed copy
    after = subprocess.run(importing, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert after.stdout.strip() == str(site / "mer_jax" / "data" / "demo.py"), after.stderr[-3000:]
    assert not (folder / "mer_jax").exists()  # nothing cloned into a folder that would shadow the package

    outputs = "\n".join(text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "backend: cpu" in outputs and "runtime: CPU only" in outputs
    assert "attention (heads, frames, tokens)" in outputs and "exported to" in outputs
    assert "mean ± std over 2 seeds" in outputs  # the LPGNet section
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)
    runs = folder / "mer_jax_quickstart" / "runs"  # no Drive outside Colab: the local runs folder
    assert f"runs are written to {runs}" in outputs
    for run in ("demo_fused", "demo_lpgnet"):
        assert (runs / run / "metrics.json").exists(), run
    training = text(next(cell for cell in notebook.cells if "write_demo_corpus(" in cell.source))
    assert "training demo_fused" in training  # the command's progress bar (its stderr) reaches the notebook
