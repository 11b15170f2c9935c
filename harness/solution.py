"""The solution step, found on the device at every step.

The paper's "solution" is the first step whose training loss falls below
the workload's threshold (Cohen et al., 2022, §6), and the sharpness at
solution is measured there. An evaluation sees only its own steps; in the
full-batch regime every step computes the training loss anyway (the loss
its update returns is the loss over the whole training set at the
parameters before the update), so the step that first falls below the
threshold is known exactly, on the device, with no synchronisation.

`SolutionLatch` does that with one small jitted call after each update:
it compares the step's loss with the threshold and, the first time it is
below, keeps the state the loss was computed at (when asked to, for the
probe at solution). It runs ahead of the host like the steps themselves;
the host reads what it found only when the loop synchronises anyway
(`found`), and then stops calling it.

Keeping that state costs a copy of the parameters and optimizer state per
step until the solution is found, and the memory of two more copies; so it
is kept only when the run probes at the solution.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

_NOT_FOUND = -1


@dataclasses.dataclass(frozen=True)
class Found:
  """The solution step and, when kept, the state at it.

  Attributes:
    step: the first step (number of updates before it) whose training
      loss was below the threshold.
    state: `(params, optimizer_state, model_state)` at that step, or None
      when the latch keeps no state.
  """

  step: int
  state: Any


class SolutionLatch:
  """Finds the first step whose loss falls below `threshold`, on device.

  Call `after_update` after every update with the loss that update
  returned (computed at the state before it) and the new state; call
  `found` at a synchronisation to learn whether and where.

  Args:
    threshold: the workload's training-loss threshold.
    state: the state the next update starts from (params, optimizer state,
      model state); its step is `step`.
    step: the number of updates made before `state`.
    keep_state: whether to keep the state at the solution (for a probe).
  """

  def __init__(self, threshold: float, state: Any, step: int, *,
               keep_state: bool):
    self.threshold = threshold
    self.keep_state = keep_state
    self._first_step = step
    self._step = step  # The step of `_previous`, whose loss comes next.
    leaves, self._treedef = jax.tree.flatten(state)
    # Only arrays are kept: a state may hold functions (an AlgoPerf-form
    # submission's update function), which are the same at every step.
    self._arrays = [i for i, leaf in enumerate(leaves)
                    if isinstance(leaf, jax.Array)]
    arrays = [leaves[i] for i in self._arrays]
    # Every buffer is placed as its outputs will be, so that the call
    # after the run's first step (timed apart) is the last to compile.
    placement = [x.sharding for x in arrays]
    scalar = _replicated(placement[0]) if placement else None
    kept = [jnp.zeros_like(x, device=x.sharding) for x in arrays]
    self._kept, self._previous = ((kept, _copy(arrays)) if keep_state
                                  else ([], []))
    self._found = jax.device_put(jnp.int32(_NOT_FOUND), scalar)
    placement = placement if keep_state else []
    self._latch = jax.jit(self._advance, donate_argnums=(0, 1),
                          out_shardings=(placement, placement, scalar))
    self._last_state = state

  def _advance(self, kept, previous, found, loss, step, state):
    first = (found == _NOT_FOUND) & (loss < self.threshold)
    kept = jax.tree.map(lambda k, p: jnp.where(first, p, k), kept, previous)
    return kept, _copy(state), jnp.where(first, step, found)

  def after_update(self, loss: jax.Array, state: Any) -> None:
    """The update from step `self._step` returned `loss`; `state` follows."""
    arrays = []
    if self.keep_state:
      leaves = jax.tree.leaves(state)
      arrays = [leaves[i] for i in self._arrays]
      self._last_state = state
    self._kept, self._previous, self._found = self._latch(
        self._kept, self._previous, self._found, loss,
        jnp.asarray(self._step, jnp.int32), arrays)
    self._step += 1

  @property
  def measured_through(self) -> int | None:
    """The last step whose loss it has seen; None before any."""
    return None if self._step == self._first_step else self._step - 1

  def found(self) -> Found | None:
    """The solution, if a loss seen so far was below the threshold (this
    waits for the device, so call it where the loop synchronises)."""
    step = int(self._found)
    if step == _NOT_FOUND:
      return None
    if not self.keep_state:
      return Found(step, None)
    leaves = jax.tree.leaves(self._last_state)
    for i, array in zip(self._arrays, self._kept):
      leaves[i] = array
    return Found(step, jax.tree.unflatten(self._treedef, leaves))


def _replicated(sharding: jax.sharding.Sharding) -> jax.sharding.Sharding:
  """A scalar's placement beside arrays placed by `sharding`."""
  if isinstance(sharding, jax.sharding.NamedSharding):
    return jax.sharding.NamedSharding(sharding.mesh,
                                      jax.sharding.PartitionSpec())
  return sharding


def _copy(tree: Any) -> Any:
  # A fresh buffer, not the input forwarded: the next update donates it.
  return jax.tree.map(jnp.copy, tree)
