"""Evaluation of a workload's metrics over whole splits, on the device."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from harness import mesh as mesh_lib
from workloads import base

# Splits up to this size stay on the devices between evaluations.
DEFAULT_RESIDENT_BYTES = 4 << 30


def _nbytes(tree: Any) -> int:
  return sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))


class Evaluator:
  """Evaluates every split with a jitted scan over its chunks.

  A split of at most `resident_bytes` is put on the devices once (sharded by
  example, like training batches, each process holding its own part), so
  evaluating it moves nothing from the host. A larger split (ImageNet's 50,000 validation images take 7.5 GB)
  stays in host memory and goes to the devices one chunk at a time; dispatch
  is asynchronous, so the next chunk's transfer is queued while the current
  one is evaluated.
  """

  def __init__(self, workload: base.Workload, dataset: base.Dataset,
               parallel: mesh_lib.DataParallel, *,
               resident_bytes: int = DEFAULT_RESIDENT_BYTES):
    if resident_bytes < 0:
      raise ValueError(f'resident_bytes must be >= 0, got {resident_bytes}')
    self.workload = workload
    self.dataset = dataset
    self.parallel = parallel
    chunk = math.ceil(workload.eval_chunk_size / parallel.num_devices) * (
        parallel.num_devices)
    self.resident: dict[str, Any] = {}
    self.streamed: dict[str, Any] = {}
    for split in dataset.eval_splits:
      arrays = dataset.eval_arrays(split, chunk, parallel.part())
      if _nbytes(arrays) <= resident_bytes:
        self.resident[split] = parallel.shard_batch(arrays)
      else:
        self.streamed[split] = arrays
    self._totals = jax.jit(self._split_totals)
    self._add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))

  def _split_totals(self, params, model_state, arrays) -> dict[str, jax.Array]:
    def body(totals, chunk):
      out = self.workload.eval_chunk(params, model_state, chunk)
      return jax.tree.map(jnp.add, totals, out), None

    first = jax.tree.map(lambda x: x[0], arrays)
    zeros = jax.tree.map(
        jnp.zeros_like,
        jax.eval_shape(self.workload.eval_chunk, params, model_state, first))
    totals, _ = jax.lax.scan(body, zeros, arrays)
    return totals

  def _streamed_totals(self, params, model_state,
                       arrays) -> dict[str, jax.Array]:
    """The same sums, one chunk per transfer (one compiled shape)."""
    totals = None
    for i in range(len(jax.tree.leaves(arrays)[0])):
      chunk = self.parallel.shard_batch(
          jax.tree.map(lambda x, i=i: x[i:i + 1], arrays))
      out = self._totals(params, model_state, chunk)
      totals = out if totals is None else self._add(totals, out)
    return totals

  def __call__(self, params: Any, model_state: Any) -> dict[str, float]:
    """Metrics named '<split>/<metric>', e.g. 'validation/accuracy'."""
    totals = {}
    for split in self.dataset.eval_splits:
      if split in self.resident:
        totals[split] = self._totals(params, model_state, self.resident[split])
      else:
        totals[split] = self._streamed_totals(params, model_state,
                                              self.streamed[split])
    metrics = {}
    for split, total in jax.device_get(totals).items():
      split_metrics = {
          **self.workload.finalize_eval(total),
          **self.workload.extra_eval_metrics(params, model_state,
                                             self.dataset, split)}
      for name, value in split_metrics.items():
        metrics[f'{split}/{name}'] = value
    return metrics
