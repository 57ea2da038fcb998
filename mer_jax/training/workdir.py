"""A run's folder: where each fold writes, who writes, and what a rerun in the same folder may change.

A rerun of a command resumes from the folder's last checkpoint, so it must train what the folder's
saved ``config.json`` describes: a config that differs in anything that changes training (learning
rates, epochs, data, model, ...) is refused, naming the fields, unless the user asks to start over
(``restart``; or a new workdir). Fields that change no number (how often to log or checkpoint, where
the feature cache is) may differ. On several hosts only process 0 writes files.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import jax

from mer_jax.config import load_run_config, with_absolute_paths
from mer_jax.errors import ConfigError

# Fields a resumed run may change: they change no parameter and no metric. train.nonfinite changes only
# what a diverged seed does, so a run stopped by one resumes with drop_seed exactly as a drop_seed run goes on.
HARMLESS = {"train.log_every_steps", "train.checkpoint_every_epochs", "data.cache_dir", "train.nonfinite"}
# What a run writes into its folder (and a restart removes).
OUTPUTS = ("checkpoints", "tensorboard", "tokenizer", "extractors", "metrics.json", "report.txt",
           "fold_metrics.json", "history.json", "test_predictions.csv", "test_predictions_seed*.csv", "model_sizes.json",
           "config.json")


def is_writer() -> bool:
    """Only process 0 writes files (on one host, the only process)."""
    return jax.process_index() == 0


def fold_dir(run_dir: pathlib.Path, k: int, n_folds: int) -> pathlib.Path:
    """Where fold k of a run keeps its checkpoints and outputs: the run folder itself for one fold."""
    return run_dir if n_folds == 1 else run_dir / f"fold{k}"


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_fields(saved_path: pathlib.Path, config) -> list[str]:
    """The fields (section.name) whose values differ between a saved config.json and `config`."""
    old, new = (_flat(json.loads(with_absolute_paths(c).to_json())) for c in (load_run_config(saved_path), config))
    return sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f) and f not in HARMLESS)


def _has_trained(workdir: pathlib.Path) -> bool:
    """Whether a run in `workdir` got as far as saving anything trained: a folder whose run stopped before
    (bad input, a bad encoder name) holds only its config, and a rerun with a fixed config is a fresh start."""
    return any(path.exists() for name in ("checkpoints", "extractors")
               for path in [workdir / name, *workdir.glob(f"fold*/{name}")])


def prepare_workdir(config, workdir, *, restart: bool = False) -> pathlib.Path:
    """Make the run folder and save the config there, its local paths absolute (so that the run's folder works
    from any working directory); refuse a folder that holds another experiment."""
    workdir = pathlib.Path(workdir)
    saved_path = workdir / "config.json"
    if saved_path.exists() and not restart and _has_trained(workdir):
        changed = changed_fields(saved_path, config)
        if changed:
            raise ConfigError(
                f"{workdir} holds a run with a different config ({', '.join(changed)} differ); a rerun there "
                "resumes that run. Use a new --workdir, or --restart to delete its checkpoints and start over")
    if is_writer():
        if restart:
            for name in OUTPUTS:
                for path in [*workdir.glob(name), *workdir.glob(f"fold*/{name}")]:
                    if path.exists():
                        print(f"restart: removing {path}")
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
        workdir.mkdir(parents=True, exist_ok=True)
        saved_path.write_text(with_absolute_paths(config).to_json(indent=2))
    if jax.process_count() > 1:  # nobody reads the folder before process 0 has prepared it
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(f"prepared {workdir}")
    return workdir
