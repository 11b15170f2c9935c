"""AlgoPerf's `random_utils` for JAX: its names over `jax.random`.

AlgoPerf's version chooses JAX or NumPy by a command-line flag; a JAX
submission here always gets JAX keys.
"""

from __future__ import annotations

from typing import Any

import jax


def PRNGKey(seed: int) -> jax.Array:  # pylint: disable=invalid-name
  """A key from an integer seed."""
  return jax.random.PRNGKey(seed)


def split(key: jax.Array, num: int = 2) -> jax.Array:
  """`num` new keys from `key`."""
  return jax.random.split(key, num)


def fold_in(key: jax.Array, data: Any) -> jax.Array:
  """A key derived from `key` and the integer `data`."""
  return jax.random.fold_in(key, data)
