"""Data parallelism with `jax.sharding`: one code path for 1 to N devices.

A one-axis `Mesh` named 'data' spans every device of every process. Batch
leaves are `(num_chunks, chunk_size, ...)`: the chunk axis is replicated and
the example axis split over 'data'; parameters and optimizer state are
replicated. jit propagates these shardings, so gradients are all-reduced by
XLA and no step function knows how many devices there are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """The mesh and the shardings of a data-parallel run."""

  mesh: Mesh

  @classmethod
  def over_all_devices(cls) -> DataParallel:
    return cls(Mesh(np.asarray(jax.devices()), ('data',)))

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def chunked_batch(self) -> NamedSharding:
    return NamedSharding(self.mesh, P(None, 'data'))

  def check_chunk_size(self, chunk_size: int) -> None:
    if chunk_size % self.num_devices:
      raise ValueError(
          f'chunk size {chunk_size} must be a multiple of the '
          f'{self.num_devices} devices; set --chunk_size accordingly')

  def replicate(self, tree: Any) -> Any:
    return jax.tree.map(lambda x: self._put(np.asarray(x), self.replicated),
                        tree)

  def place(self, tree: Any) -> Any:
    """Gives every array leaf of `tree` its final sharding before step 0.

    A leaf that already has a `NamedSharding` on this mesh keeps it; any
    other array (a NumPy array, an uncommitted `jnp.zeros` such as optax's
    step count) is replicated, as jit's outputs will be. Otherwise the
    step's second call would see a new input layout and compile again,
    inside the timed region. Non-array leaves are left as they are.
    """
    def final(x):
      sharding = getattr(x, 'sharding', None)
      if (isinstance(sharding, NamedSharding) and
          sharding.mesh == self.mesh):
        return x
      if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return self._put(np.asarray(x), self.replicated)
      return x
    return jax.tree.map(final, tree)

  def shard_batch(self, batch: Any) -> Any:
    """Host arrays with a chunk axis -> global device arrays, split by example.

    Every process holds the whole host batch (the in-memory data sets are
    loaded by each process), and each device takes its slice, so this is the
    same call on one host or many.
    """
    return jax.tree.map(lambda x: self._put(x, self.chunked_batch), batch)

  @staticmethod
  def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])
