"""The built-in experiment configs: one ``get_config()`` file per experiment, shipped inside the package.

``--config=configs/demo.py`` names a file; when no such file exists where the command runs, the
built-in config of that name is used (so an installed ``mer-jax`` finds them from any folder).
"""

from __future__ import annotations

import ast
import pathlib
import re

CONFIGS = pathlib.Path(__file__).resolve().parent


def first_sentence(path: pathlib.Path) -> str:
    """The first sentence of a module's docstring (read without importing it), on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    return re.split(r"\.\s+(?=[A-Z])", paragraph)[0].rstrip(".")


def built_in() -> dict[str, str]:
    """The built-in configs: name (``--config=configs/NAME.py``) -> what the experiment is."""
    return {p.stem: first_sentence(p) for p in sorted(CONFIGS.glob("*.py")) if p.stem != "__init__"}


def resolve(path: str) -> str:
    """`path` if it is a file, else the built-in config it names (``configs/x.py``, ``x.py`` or ``x``)."""
    if pathlib.Path(path).is_file():
        return path
    name = path.removeprefix("configs/").removeprefix("mer_jax/configs/")
    for candidate in (CONFIGS / name, CONFIGS / f"{name}.py"):
        if candidate.is_file():
            return str(candidate)
    return path  # config_flags reports the missing file
