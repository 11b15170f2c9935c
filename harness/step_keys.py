"""The per-step PRNG keys of a run."""

from __future__ import annotations

import jax
import numpy as np


class StepKeys:
  """Per-step PRNG keys, made in blocks so a step costs no key derivation."""

  def __init__(self, rng: jax.Array, block: int = 1024):
    self._rng = rng
    self._block = block
    self._start = -block
    self._keys = None

  def __getitem__(self, step: int) -> np.ndarray:
    if not self._start <= step < self._start + self._block:
      self._start = step - step % self._block
      block_rng = jax.random.fold_in(self._rng, self._start // self._block)
      self._keys = np.asarray(jax.random.split(block_rng, self._block))
    return self._keys[step - self._start]
