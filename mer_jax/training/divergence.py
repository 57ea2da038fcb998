"""What a run does when training meets a non-finite number (``train.nonfinite``): stop, or drop the seed.

Detection is on the device, inside the jitted step (`steps.make_train_step` with ``guard``): per seed it
records the global step of the first step whose loss, gradient norm or updated state (parameters, other
state, optimiser state) is not finite, with that step's loss and gradient norm, and from that step on
keeps the seed's state as it was before it. So no seed's state becomes non-finite in training, whatever
a checkpoint saves, and the record names the exact step although the loop reads it later: only where it
already syncs (each logged step, and the end of each epoch before validation), so the hot loop gains no
host round-trip.

``stop`` (the default): the first read that finds a diverged seed raises `TrainingDiverged`, before that
epoch's validation, history, best or latest checkpoint is written; the run folder keeps its last finite
checkpoint and history.json up to the last finished epoch, and the message says what to try. A rerun
resumes from that checkpoint (with ``drop_seed``, or after fixing the cause with ``--restart``).

``drop_seed`` (several seeds vmapped together): a diverged seed is announced and dropped; the others go
on. The dropped seed trains no more (its state stays at its last finite step), its history entries are
null from the epoch it diverged in, its best checkpoint keeps its best finite epoch (it no longer
competes), and the fold's metrics name it under ``dropped_seeds`` instead of scoring it: the seeds'
mean, spread and ensemble are of the seeds that trained to the end (choosing by divergence in training
looks at no test number). If every seed diverges, the run stops as with ``stop``.

On several hosts every process computes the same global loss and gradient norm (each step reduces over
the global batch), so every process holds the same record, reads it at the same loop step, and all of
them stop (or drop the same seed) at the same step.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from mer_jax.errors import TrainingDiverged


@dataclasses.dataclass(frozen=True)
class Divergence:
    """One seed's first non-finite step, as the guarded train step recorded it."""

    seed: int
    global_step: int  # counted from 0 over the whole run, as the TensorBoard curves count
    loss: float
    grad_norm: float
    steps_per_epoch: int

    @property
    def epoch(self) -> int:
        return self.global_step // self.steps_per_epoch + 1

    @property
    def step(self) -> int:
        """The step within its epoch, counted from 1."""
        return self.global_step % self.steps_per_epoch + 1

    def where(self) -> str:
        return (f"seed {self.seed} at epoch {self.epoch}, step {self.step} of {self.steps_per_epoch} "
                f"(global step {self.global_step})")

    def cause(self) -> str:
        if not math.isfinite(self.loss):
            return f"loss {self.loss}"
        if not math.isfinite(self.grad_norm):
            return f"gradient norm {self.grad_norm} (loss {self.loss:.4g})"
        return (f"its update made the parameters or optimiser state non-finite (loss {self.loss:.4g}, gradient norm "
                f"{self.grad_norm:.4g})")

    def to_json(self) -> dict:
        number = lambda x: x if math.isfinite(x) else str(x)  # noqa: E731 (JSON has no NaN or infinity)
        return {"seed": self.seed, "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "loss": number(self.loss), "grad_norm": number(self.grad_norm), "cause": self.cause()}


def divergences(record: dict, seeds: list[int], steps_per_epoch: int) -> list[Divergence]:
    """The diverged seeds of a divergence record read from the device (`steps.no_divergence`'s form)."""
    step, loss, grad_norm = (np.asarray(record[k]) for k in ("step", "loss", "grad_norm"))
    return [Divergence(seed, int(step[k]), float(loss[k]), float(grad_norm[k]), max(steps_per_epoch, 1))
            for k, seed in enumerate(seeds) if step[k] >= 0]


class Watch:
    """The loop's side: reads the record where the loop syncs anyway, stops the run or drops seeds.

    `record` is the record the run starts from (a resumed run's seeds dropped before its checkpoint)."""

    def __init__(self, config, seeds: list[int], steps_per_epoch: int, workdir, checkpoints, record: dict):
        self.config, self.seeds, self.steps, self.workdir = config, seeds, steps_per_epoch, pathlib.Path(workdir)
        self.checkpoints = checkpoints
        self.dropped = {d.seed for d in divergences(record, seeds, steps_per_epoch)}

    def alive(self) -> np.ndarray:
        """Per seed: True while it trains (it has not diverged)."""
        return np.array([seed not in self.dropped for seed in self.seeds])

    def check(self, record: dict, epochs_done: int) -> None:
        """Stop (raise `TrainingDiverged`) or drop the seeds that `record` (read from the device) says
        diverged; `epochs_done` epochs have finished and written their history."""
        found = divergences(record, self.seeds, self.steps)
        if not found:
            return
        if self.config.train.nonfinite == "stop" or len(found) == len(self.seeds):
            raise TrainingDiverged(self.message(found, epochs_done))
        for d in found:
            if d.seed not in self.dropped:
                others = ", ".join(str(s) for s in self.seeds if s not in {f.seed for f in found})
                print(f"warning: {self.workdir}: training diverged: {d.where()}: {d.cause()}; seed {d.seed} is "
                      "dropped (train.nonfinite = 'drop_seed'): it trains no more, and the report names it apart "
                      f"from the mean and ensemble of the seeds that go on ({others})", flush=True)
        self.dropped |= {d.seed for d in found}

    def message(self, found: list[Divergence], epochs_done: int) -> str:
        """One line: where each seed diverged and why, what the run folder kept, what to try."""
        tc, n = self.config.train, len(self.seeds)
        kept_epoch = self.checkpoints.latest_epoch()
        if kept_epoch is None:
            kept = "nothing was checkpointed (it diverged before its first checkpoint)"
        else:
            kept = (f"kept the last finite checkpoint (epoch {kept_epoch}) and history.json"
                    + (f" up to epoch {epochs_done}" if epochs_done else ""))
        tries = [f"a lower train.lr (now {tc.lr:g}) or train.encoder_lr (now {tc.encoder_lr:g})",
                 "gradient clipping, train.clip_norm=1.0 (now 0: off)" if tc.clip_norm <= 0
                 else f"check train.clip_norm (now {tc.clip_norm:g})"]
        bf16 = [f for f in ("model.dtype", "text.dtype") if self.config[f.split(".")[0]].get("dtype") == "bfloat16"]
        if bf16:
            tries.append(f"float32 instead of bfloat16 ({' and '.join(bf16)})")
        tries.append("check the data for extreme values")
        if tc.nonfinite == "stop" and len(found) < n:
            tries.append("train.nonfinite=drop_seed to train the other seeds on (a rerun resumes from the checkpoint)")
        every = " in every seed" if n > 1 and len(found) == n else ""
        seeds = "; ".join(f"{d.where()}: {d.cause()}" for d in found)
        return f"{self.workdir}: training diverged{every}: {seeds}. {kept[0].upper()}{kept[1:]}. Try: {'; '.join(tries)}"
