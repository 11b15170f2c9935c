"""Data parallelism with `jax.sharding`: one code path for 1 to N devices.

A one-axis `Mesh` named 'batch' spans every device of every process. Batch
leaves are `(num_chunks, chunk_size, ...)`: the chunk axis is replicated and
the example axis split over 'batch'. AlgoPerf-form submissions get their
batches as AlgoPerf gives them, `(batch_size, ...)` split along the first
axis (`shard_examples`). Parameters and optimizer state are replicated.

The mesh is the one AlgoPerf's `jax_sharding_utils` builds (all devices,
axis 'batch'): an AlgoPerf-form step jitted with its shardings then gets its
inputs in exactly those shardings, at the first step and every later one,
so it compiles once. jit propagates these shardings, so gradients are all-reduced by
XLA and no step function knows how many devices there are.

Over several processes (hosts), each process loads only the examples its
own devices hold (`part`, a `workloads.chunks.Part`) and
`jax.make_array_from_process_local_data` joins the parts into global
arrays; replicated arrays are given whole by every process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from workloads import chunks

# The mesh's one axis, named as AlgoPerf's `jax_sharding_utils` names it.
AXIS = 'batch'


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """The mesh and the shardings of a data-parallel run."""

  mesh: Mesh

  @classmethod
  def over_all_devices(cls) -> DataParallel:
    return cls(Mesh(np.asarray(jax.devices()), (AXIS,)))

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def chunked_batch(self) -> NamedSharding:
    return NamedSharding(self.mesh, P(None, AXIS))

  @property
  def examples_batch(self) -> NamedSharding:
    return NamedSharding(self.mesh, P(AXIS))

  def check_chunk_size(self, chunk_size: int) -> None:
    if chunk_size % self.num_devices:
      raise ValueError(
          f'chunk size {chunk_size} must be a multiple of the '
          f'{self.num_devices} devices; set --chunk_size accordingly')

  def part(self, *, chunk_axis: bool = True) -> chunks.Part:
    """The part of every batch this process's devices hold.

    With the chunk axis each chunk's examples are split over the mesh;
    without it (`shard_examples`) the batch's examples are.

    Raises:
      ValueError: this process's devices are not one contiguous run of the
        mesh (each process then would hold scattered examples).
    """
    owners = [d.process_index for d in self.mesh.devices.flat]
    blocks = list(dict.fromkeys(owners))  # Processes in mesh order.
    size = len(owners) // len(blocks)
    if owners != [p for p in blocks for _ in range(size)]:
      raise ValueError(
          f'the mesh\'s devices belong to processes {owners}: each process '
          'must hold one contiguous, equal run of them')
    return chunks.Part(blocks.index(jax.process_index()), len(blocks),
                       across_chunks=not chunk_axis)

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
    """This process's part (`part()`) of a batch with a chunk axis -> global
    device arrays, split by example: the same call on one host or many."""
    return jax.tree.map(lambda x: self._put(x, self.chunked_batch), batch)

  def shard_examples(self, batch: Any) -> Any:
    """This process's part (`part(chunk_axis=False)`) of a batch with a
    chunk axis -> global device arrays without it.

    The chunks are merged in order, so example i of chunk c becomes example
    c * chunk_size + i, and the one example axis is split over the mesh, as
    AlgoPerf's `jax_sharding_utils.shard_along_batch_dim` places a batch.
    """
    return jax.tree.map(
        lambda x: self._put(np.reshape(x, (-1,) + np.shape(x)[2:]),
                            self.examples_batch), batch)

  def place_batch(self, batch: Any, *, chunk_axis: bool) -> Any:
    """`shard_batch` when the submission takes a chunk axis, else
    `shard_examples`."""
    return self.shard_batch(batch) if chunk_axis else self.shard_examples(
        batch)

  @staticmethod
  def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
      # What the call below does for one process, without its bookkeeping
      # (13 µs a leaf, measured): a minibatch is placed every step.
      return jax.device_put(x, sharding)
    # This process's part: the global shape follows from the sharding (a
    # replicated array is given whole by every process).
    return jax.make_array_from_process_local_data(sharding, x)
