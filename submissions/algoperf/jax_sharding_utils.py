"""AlgoPerf's `jax_sharding_utils`: shardings over all devices.

One mesh axis, 'batch', spans every device, as in AlgoPerf: parameters and
optimizer state are replicated over it, and batches are split along their
first axis. On one device both shardings are trivial, so a submission
jitted with them runs unchanged on one device or several. The harness
places a run's inputs on an equal mesh (`harness.mesh`), so such a step
sees the same shardings at every call and compiles once.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

BATCH_AXIS = 'batch'


@functools.cache
def get_mesh() -> Mesh:
  """The one-axis mesh of all devices, as AlgoPerf's.

  Cached: AlgoPerf's baselines ask for shardings at every step, and the
  same mesh makes equal shardings, so `jax.jit`'s cache is hit.
  """
  return Mesh(jax.devices(), (BATCH_AXIS,))


def get_replicate_sharding() -> NamedSharding:
  """A sharding that holds a full copy on every device."""
  return NamedSharding(get_mesh(), PartitionSpec())


def get_batch_dim_sharding() -> NamedSharding:
  """A sharding that splits the first axis across the devices."""
  return NamedSharding(get_mesh(), PartitionSpec(BATCH_AXIS))


def shard_along_batch_dim(tree: Any) -> Any:
  """Places every leaf of `tree` split along its first axis."""
  sharding = get_batch_dim_sharding()
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def replicate(tree: Any) -> Any:
  """Places a full copy of every leaf of `tree` on every device."""
  sharding = get_replicate_sharding()
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def disp_shard_info(x: jax.Array) -> None:
  """Prints where each shard of `x` lives, for debugging a layout."""
  for shard in x.addressable_shards:
    print(f'shard.device: {shard.device}, index: {shard.index}, '
          f'replica_id: {shard.replica_id}')
