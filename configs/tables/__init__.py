"""Paper tables as configs: one module per table.

Each module names its base config (``CONFIG``), its columns (``COLUMNS``: metric path, header) and
its rows (``ROWS``: folder name, label, the row's own config or None for ``CONFIG``, config overrides,
the paper's numbers in %, one per column or None). ``mer-jax table --table=<module> --workdir=runs/<x>`` trains every row (each a resumable run in
``<workdir>/<folder name>``) and writes ``<workdir>/table.md`` with ours and the paper's numbers side
by side; ``--config.field=value`` overrides apply to every row (e.g. the corpus, fewer epochs).
"""

import pathlib  # noqa: E402

from mer_jax.configs import first_sentence  # noqa: E402


def built_in_tables() -> dict[str, str]:
    """The paper tables: name (``mer-jax table --table=NAME``) -> what the table compares."""
    folder = pathlib.Path(__file__).resolve().parent
    return {p.stem: first_sentence(p) for p in sorted(folder.glob("*.py")) if p.stem != "__init__"}
