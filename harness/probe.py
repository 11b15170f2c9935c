"""The curvature probe of a run: sharpness against the stability threshold.

At scheduled steps (and when the target or the solution is reached, and at
the end) the probe measures on the workload's fixed curvature batch:

- the sharpness λ1(H) and top-k eigenvalues of the training-loss Hessian;
- the preconditioned sharpness λ1(P^-1/2 H P^-1/2) = λ1(P⁻¹H), with P from
  the submission's `preconditioner` hook (None when it has none);
- the stability threshold of the submission's momentum (its `dynamics`
  hook) at the learning rate its optimizer state holds, and their ratio;
  where either is unknown the record says why instead.

The loss is `Workload.curvature_loss`, whose docstring gives its batch-norm
and dropout convention.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from harness import clock as clock_lib
from harness import config as config_lib
from harness import curvature
from harness import mesh as mesh_lib
from harness import records
from harness import stability
from submissions import api
from workloads import base


def log_spaced_steps(max_steps: int, count: int = 40) -> frozenset[int]:
  """About `count` distinct steps spaced evenly in log scale up to the end."""
  steps = np.unique(np.round(np.logspace(0, math.log10(max(max_steps, 1)),
                                         count)).astype(int))
  return frozenset(int(s) for s in steps)


def curvature_batch_shape(config: config_lib.CurvatureConfig,
                          workload: base.Workload,
                          regime: base.BatchRegime) -> tuple[int, int]:
  """The probe's fixed batch: (examples, examples per chunk).

  The full batch, or the workload's curvature batch within the pool, in
  chunks of `config.chunk_size`, else of the regime's, at most the batch.
  """
  size = regime.train_size if regime.full_batch else min(
      workload.curvature_batch_size, regime.train_size)
  return size, min(config.chunk_size or regime.chunk_size, size)


class CurvatureProbe:
  """Measures a run's sharpness statistics; one compiled Lanczos, reused."""

  def __init__(self, config: config_lib.CurvatureConfig,
               workload: base.Workload, submission: api.Submission,
               dataset: base.Dataset, regime: base.BatchRegime,
               parallel: mesh_lib.DataParallel, max_steps: int):
    self.config = config
    self.submission = submission
    self.parallel = parallel
    self.dynamics = submission.dynamics()
    size, chunk = curvature_batch_shape(config, workload, regime)
    self.batch = parallel.shard_batch(
        dataset.fixed_batch(size, chunk, parallel.part()))
    self.batch_size = size

    def loss_fn(params, chunk, model_state):
      return workload.curvature_loss(params, model_state, chunk)

    self._sharpness = curvature.make_sharpness_fn(
        loss_fn, k=config.top_k, num_iterations=config.num_iterations,
        tol=config.tol, check_every=1, return_vectors=config.warm_start)
    self._scheduled = log_spaced_steps(max_steps) if config.log_spaced else (
        frozenset())
    self._warm: dict[str, Any] = {}
    self.total_seconds = 0.0
    self.last_step: int | None = None
    self.at_solution: records.ProbeRecord | None = None

  def due(self, step: int) -> bool:
    # Never at step 0: no update has been made, and an adaptive method's
    # preconditioner (ν = 0, P = ε) is not yet the one it trains with.
    every = self.config.every
    return step > 0 and ((every > 0 and step % every == 0) or
                         step in self._scheduled)

  # ---- What a checkpoint keeps (see harness.resume) ----

  def warm_vectors(self) -> dict[str, Any]:
    """The warm-start eigenvectors by name ('raw', 'pre'); arrays are kept."""
    return dict(self._warm)

  def warm_like(self, params) -> Any:
    """Vectors with the structure and sharding of a warm start."""
    # Replicated like the eigenvectors probes pass back, so the first warm
    # start does not compile a second variant.
    return self.parallel.replicate(self._sharpness.initial_vectors(params))

  def bookkeeping(self) -> dict[str, Any]:
    return {'total_seconds': self.total_seconds, 'last_step': self.last_step,
            'warm': sorted(self._warm)}

  def restore(self, bookkeeping: dict[str, Any], warm: dict[str, Any],
              at_solution: records.ProbeRecord | None) -> None:
    self.total_seconds = bookkeeping['total_seconds']
    self.last_step = bookkeeping['last_step']
    self._warm = dict(warm)
    self.at_solution = at_solution

  # ---- Measuring ----

  def _init(self, name: str, params) -> Any:
    init = self._warm.get(name)
    if init is None and self.config.warm_start:
      init = self.warm_like(params)
    return init

  def _eigen(self, params, model_state, preconditioner):
    """λ(H), and λ(P^-1/2 H P^-1/2) with P; keeps their warm starts."""
    raw, pre = self._solve(params, (model_state,), preconditioner)
    if self.config.warm_start:
      self._warm['raw'] = raw.eigenvectors
      if pre is not None:
        self._warm['pre'] = pre.eigenvectors
    return raw, pre

  def _solve(self, params, loss_args, preconditioner):
    """The eigenproblems at one point, from one compiled call."""
    if preconditioner is None:
      return self._sharpness(params, self.batch, None,
                             self._init('raw', params),
                             loss_args=loss_args), None
    return tuple(self._sharpness.joint(
        params, self.batch, preconditioner,
        (self._init('raw', params), self._init('pre', params)),
        loss_args=loss_args))

  def measure(self, step: int, params, model_state, optimizer_state, *,
              reason: records.ProbeReason,
              train_loss: float | None = None) -> records.ProbeRecord:
    """One probe; returns the `curvature.jsonl` record."""
    with clock_lib.Stopwatch() as watch:
      preconditioner = curvature.as_preconditioner(
          self.submission.preconditioner(optimizer_state))
      raw, pre = self._eigen(params, model_state, preconditioner)
      learning_rate, unknown = self._learning_rate(optimizer_state)
      raw, pre, p_norm = jax.device_get(
          (raw, pre, None if preconditioner is None else
           preconditioner.norm()))
    self.total_seconds += watch.seconds
    self.last_step = step
    top = tuple(float(x) for x in raw.eigenvalues)
    pre_top = None if pre is None else tuple(float(x) for x in
                                             pre.eigenvalues)
    threshold = ratio = None
    if unknown is None:
      threshold = stability.threshold(self.dynamics, learning_rate)
      ratio = (top if pre_top is None else pre_top)[0] / threshold
    residuals = raw.residuals if pre is None else pre.residuals
    record = records.ProbeRecord(
        step=step, reason=reason, learning_rate=learning_rate,
        train_loss=float(raw.loss) if train_loss is None else train_loss,
        curvature_batch_loss=float(raw.loss),
        sharpness=top[0], sharpness_topk=top,
        preconditioned_sharpness=None if pre_top is None else pre_top[0],
        preconditioned_sharpness_topk=pre_top,
        stability_threshold=threshold, threshold_ratio=ratio,
        threshold_unknown=unknown, grad_norm=float(raw.grad_norm),
        preconditioner_norm=None if p_norm is None else float(p_norm),
        lanczos_residual=float(np.max(residuals)),
        lanczos_hvps=int(raw.num_hvps) + (0 if pre is None else
                                          int(pre.num_hvps)),
        lanczos_converged=bool(raw.converged) and (
            pre is None or bool(pre.converged)),
        curvature_batch_size=self.batch_size, probe_seconds=watch.seconds)
    if reason is records.ProbeReason.SOLUTION:
      self.at_solution = record
    return record

  def _learning_rate(self, optimizer_state
                     ) -> tuple[float | None, str | None]:
    """The learning rate, and why the threshold is unknown (None if known)."""
    try:
      learning_rate = self.submission.learning_rate(optimizer_state)
    except api.LearningRateUnknown as e:
      return None, str(e)
    if self.dynamics is None:
      return learning_rate, (
          f'{self.submission.name} has no dynamics hook, so its momentum '
          'and threshold are unknown')
    if self.dynamics.nonlinearity is not None:
      return learning_rate, (
          f'{self.submission.name}\'s update is nonlinear '
          f'({self.dynamics.nonlinearity}), so no linear stability threshold '
          'applies')
    return learning_rate, None
