"""Orbax checkpoints of a run: the latest training state (to resume) and the best model by validation.

``<workdir>/checkpoints/latest/<epoch>``: parameters, other model state, optimiser state and the loop's
bookkeeping, written every ``checkpoint_every_epochs`` epochs (the last two kept).
``<workdir>/checkpoints/best/<epoch>``: parameters and model state of each seed's epoch with the
best validation score (only the newest kept); evaluation, test and prediction load this.
Orbax writes each checkpoint to a temporary folder and renames it when complete, so a run killed
mid-write still has every checkpoint it had finished.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


def _manager(directory: pathlib.Path, max_to_keep: int) -> ocp.CheckpointManager:
    # the handler named up front, so that a fresh manager reads a saved checkpoint's metadata (`restore_latest`)
    return ocp.CheckpointManager(directory.absolute(), item_handlers=ocp.StandardCheckpointHandler(),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                                      cleanup_tmp_directories=True))


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class RunCheckpoints:
    def __init__(self, workdir):
        root = pathlib.Path(workdir) / "checkpoints"
        self.latest = _manager(root / "latest", max_to_keep=2)
        self.best = _manager(root / "best", max_to_keep=1)

    def save_latest(self, epoch: int, state: dict) -> None:
        # The latest state names the best epochs; their checkpoint must be complete before it is.
        self.best.wait_until_finished()
        self.latest.save(epoch, args=ocp.args.StandardSave(state))

    def save_best(self, epoch: int, model_state: dict) -> None:
        # A resumed run redoes the epochs after its latest checkpoint and reproduces them exactly, so
        # a best checkpoint that the killed run already wrote for this epoch is kept as it is.
        if epoch not in self.best.all_steps():
            self.best.save(epoch, args=ocp.args.StandardSave(model_state), force=True)

    def restore_latest(self, like: dict) -> dict | None:
        """The latest training state shaped (and sharded) like `like`, or None for a fresh run. A key of
        `like` that the checkpoint lacks (one added to the state since an older run saved it, e.g.
        ``diverged``) keeps `like`'s value, the fresh run's."""
        epoch = self.latest.latest_step()
        if epoch is None:
            return None
        saved = self.latest.item_metadata(epoch)
        saved = getattr(saved, "tree", saved)  # the saved tree's top-level keys
        missing = {key: value for key, value in like.items() if key not in saved}
        present = {key: value for key, value in like.items() if key in saved}
        return self.latest.restore(epoch, args=ocp.args.StandardRestore(_abstract(present))) | missing

    def latest_epoch(self) -> int | None:
        """The epoch of the newest complete latest checkpoint (after the writes in flight), or None."""
        self.latest.wait_until_finished()
        return self.latest.latest_step()

    def restore_best(self, like: dict) -> dict:
        epoch = self.best.latest_step()
        if epoch is None:
            raise FileNotFoundError(f"no best checkpoint under {self.best.directory}")
        return self.best.restore(epoch, args=ocp.args.StandardRestore(_abstract(like)))

    def close(self) -> None:
        """Wait for asynchronous writes to finish."""
        for manager in (self.latest, self.best):
            manager.wait_until_finished()
            manager.close()
