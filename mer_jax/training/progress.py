"""What a training run shows while it runs: one bar over the epochs, with the epoch's training loss and the
latest validation metric beside it, and a line for the first step, which compiles the train step.

The first epoch of a process is mostly compilation, so the bar's rate and remaining time count from the
second epoch on (an ETA from the first would be minutes off)."""

from __future__ import annotations

import time

import jax
import numpy as np
from tqdm import tqdm


class EpochProgress:
    def __init__(self, name: str, start: int, epochs: int, metric: str, enabled: bool):
        self.metric, self.enabled, self.first = metric, enabled, True
        self.bar = tqdm(total=epochs, initial=start, desc=f"training {name}", unit="epoch", disable=not enabled)
        self.compile_started = None

    def before_first_step(self) -> None:
        cache = jax.config.jax_compilation_cache_dir
        where = f"cached in {cache}" if cache else "not cached: data.cache_dir is empty"
        if self.enabled:
            self.bar.write(f"compiling the train step (once per batch shape; {where}) ...")
        self.compile_started = time.perf_counter()

    def after_first_step(self, outputs) -> None:
        jax.block_until_ready(outputs)  # one wait, for the compile time; no step after this one waits
        if self.enabled:
            self.bar.write(f"compiled and ran the first train step in {time.perf_counter() - self.compile_started:.1f} s")

    def epoch_done(self, train_loss, validation) -> None:
        """After an epoch: its mean training loss and the validation metric that selects checkpoints, over
        the seeds (their mean when several)."""
        self.bar.set_postfix_str(f"loss {np.nanmean(train_loss):.3f}, validation {self.metric} "
                                 f"{np.nanmean(validation):.3f}", refresh=False)
        self.bar.update(1)
        if self.first and self.enabled:  # the rate and the remaining time start after the compiling epoch
            done = self.bar.n
            self.bar.reset()
            self.bar.n = self.bar.last_print_n = self.bar.initial = done
            self.bar.refresh()
        self.first = False

    def close(self) -> None:
        self.bar.close()
