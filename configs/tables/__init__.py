"""Paper tables as configs: one module per table.

Each module names its base config (``CONFIG``), its columns (``COLUMNS``: metric path, header) and
its rows (``ROWS``: folder name, label, the row's own config or None for ``CONFIG``, config overrides,
the paper's numbers in %, one per column or None). ``mer-jax table --table=<module> --workdir=runs/<x>`` trains every row (each a resumable run in
``<workdir>/<folder name>``) and writes ``<workdir>/table.md`` with ours and the paper's numbers side
by side; ``--config.field=value`` overrides apply to every row (e.g. the corpus, fewer epochs).
"""
