"""`pip install .` (not editable) gives a working `mer-jax`: the built-in configs ship inside the package."""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_installed_package_trains_from_another_folder(demo_root, demo_cache, tmp_path):
    source = tmp_path / "source"  # a copy of what a clean clone holds, so that building writes nothing here
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("mer_jax", "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("mer_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    sources = {f"mer_jax/{p.relative_to(REPO / 'mer_jax')}" for p in (REPO / "mer_jax").rglob("*.py")}
    sources |= {f"mer_jax/configs/{p.relative_to(REPO / 'configs')}" for p in (REPO / "configs").rglob("*.py")}
    assert sources - set(names) == set()  # every module, the configs (from configs/) under mer_jax/configs/
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"  # no configs/ folder here, and the repository is not on the path
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    code = "import sys, mer_jax.cli; sys.argv[0] = 'mer-jax'; mer_jax.cli.run()"
    result = subprocess.run([sys.executable, "-c", code, "train", "--config=configs/demo.py", "--workdir=run",
                             f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}",
                             "--config.train.epochs=1",
                             "--config.train.batch_size=16", "--config.features.max_frames=40",
                             "--config.model.d_model=16", "--config.text.hidden=16"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (elsewhere / "run" / "metrics.json").exists()
    imported = subprocess.run([sys.executable, "-c", "import mer_jax; print(mer_jax.__file__)"], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.stdout.startswith(str(site)), imported.stdout  # the installed copy ran, not the repository
    shutil.rmtree(site)


def test_models_steps_and_benchmarks_import_without_tensorflow_or_audio_decoders():
    """The GPU images people benchmark on (and the project's device machines) often lack TensorFlow,
    soundfile and librosa: models, steps, objectives and every benchmark must import without them."""
    blocked = ("tensorflow", "tensorflow_datasets", "soundfile", "librosa")
    code = "\n".join([
        "import runpy, sys",
        f"for name in {blocked!r}: sys.modules[name] = None  # importing any of them now raises ImportError",
        "import mer_jax.models.registry, mer_jax.training.steps, mer_jax.training.objectives",
        "import mer_jax.training.optimizer, mer_jax.training.checkpoints, mer_jax.evaluation.metrics",
        "sys.path.insert(0, 'benchmarks')",
        "for script in sorted(__import__('glob').glob('benchmarks/*.py')):",
        "    sys.argv = [script, '--help']",
        "    try: runpy.run_path(script, run_name='__main__')",
        "    except SystemExit as e: assert e.code == 0, (script, e.code)",
    ])
    env = dict(os.environ, USE_TF="0", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
