"""The errors that say the user's input is wrong, not the code: the ground floor every room may import.

The command line prints them in one line, without a traceback (`mer_jax.cli.main`). A room's own
error that no other room raises or catches stays in its room (e.g. the encoders'
`CheckpointMismatchError`).
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """A config value that no run can use."""


class CorpusError(ValueError):
    """Bad input in a corpus; the message lists every problem with its file and line.

    `problems` are the readers' `mer_jax.data.records.Problem`s, each printed as ``file:line: message``.
    """

    def __init__(self, problems: Sequence[object]):
        self.problems = list(problems)
        lines = "\n  ".join(str(p) for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the corpus (pass on_error='skip' / "
            f"--config.data.skip_bad_input=True to skip and count them):\n  {lines}"
        )


class InputError(ValueError):
    """An input that no model can score (missing or unreadable audio, an empty transcript)."""


class TrainingDiverged(FloatingPointError):
    """Training met a non-finite loss, gradient norm or state and stopped (``train.nonfinite``): the
    message names the run, the seed(s), the epoch and step, what the run folder kept and what to try."""
