"""Data parallelism with `jax.sharding`: a 1-D mesh over every device, axis ``data``.

Parameters and optimiser state are replicated; each batch is split along its first axis. The same
code runs on one CPU, N GPUs, a TPU slice and several hosts (each process feeds its own share of
the global batch, which `global_batch` assembles into one array spanning all devices).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Split along `axis` (the batch axis: 0, or 1 behind a leading seed axis) over the ``data`` devices."""
    return NamedSharding(mesh, PartitionSpec(*[None] * axis, "data"))


def replicate(tree, mesh: Mesh):
    """Place a pytree of arrays on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh, axis: int = 0) -> dict[str, jax.Array]:
    """This process's numpy batch -> global arrays sharded along ``data`` (on `axis`) over all processes."""
    sharding = batch_sharded(mesh, axis)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def gather(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) global array as a numpy array on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
