"""Evaluation of a workload's metrics over whole splits, on the device."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from harness import mesh as mesh_lib
from workloads import base


class Evaluator:
  """Evaluates every split with one jitted scan over its chunks.

  The splits' arrays are put on the devices once (sharded by example, like
  training batches), so an evaluation moves nothing from the host.
  """

  def __init__(self, workload: base.Workload, dataset: base.Dataset,
               parallel: mesh_lib.DataParallel):
    self.workload = workload
    self.dataset = dataset
    chunk = math.ceil(workload.eval_chunk_size / parallel.num_devices) * (
        parallel.num_devices)
    self.arrays = {split: parallel.shard_batch(dataset.eval_arrays(split, chunk))
                   for split in dataset.eval_splits}
    self._totals = jax.jit(self._split_totals)

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

  def __call__(self, params: Any, model_state: Any) -> dict[str, float]:
    """Metrics named '<split>/<metric>', e.g. 'validation/accuracy'."""
    totals = {split: self._totals(params, model_state, arrays)
              for split, arrays in self.arrays.items()}
    metrics = {}
    for split, total in jax.device_get(totals).items():
      split_metrics = {
          **self.workload.finalize_eval(total),
          **self.workload.extra_eval_metrics(params, model_state,
                                             self.dataset, split)}
      for name, value in split_metrics.items():
        metrics[f'{split}/{name}'] = value
    return metrics
