"""The built-in experiment configs: one ``get_config()`` file per experiment, shipped inside the package.

``--config=configs/demo.py`` names a file; when no such file exists where the command runs, the
built-in config of that name is used (so an installed ``mer-jax`` finds them from any folder).
"""

from __future__ import annotations

import pathlib

CONFIGS = pathlib.Path(__file__).resolve().parent


def resolve(path: str) -> str:
    """`path` if it is a file, else the built-in config it names (``configs/x.py``, ``x.py`` or ``x``)."""
    if pathlib.Path(path).is_file():
        return path
    name = path.removeprefix("configs/").removeprefix("mer_jax/configs/")
    for candidate in (CONFIGS / name, CONFIGS / f"{name}.py"):
        if candidate.is_file():
            return str(candidate)
    return path  # config_flags reports the missing file
