"""The frozen configuration of one run, built from flags or by tests."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from workloads import base


@dataclasses.dataclass(frozen=True)
class CurvatureConfig:
  """When and how the curvature probe measures sharpness.

  Attributes:
    every: probe every this many steps (0: only at target, solution, end).
    log_spaced: additionally probe at roughly log-spaced steps 1, 2, 4, ...
    at_events: probe when the target is reached, at the solution (first
      train loss below the workload's threshold) and at the end.
    top_k: number of top eigenvalues to report.
    num_iterations: Lanczos iteration cap per probe.
    tol: stop Lanczos once the top-k residuals fall below tol * |eigenvalue|
      (None: always run `num_iterations`).
    warm_start: start Lanczos from the previous probe's top eigenvectors.
  """

  every: int = 0
  log_spaced: bool = False
  at_events: bool = True
  top_k: int = 1
  num_iterations: int = 20
  tol: float | None = 1e-3
  warm_start: bool = True

  @property
  def enabled(self) -> bool:
    return self.every > 0 or self.log_spaced or self.at_events


NO_CURVATURE = CurvatureConfig(at_events=False)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything that defines a run.

  Attributes:
    workload: registered workload name.
    submission: baseline name or path to a submission .py file.
    hparams: hyperparameters over the submission's defaults.
    experiment_dir: root of the run records.
    study, trial: indices of the run within a tuning study.
    seed: seeds initialisation, data order and the submission's rng.
    max_steps: step budget; None uses the workload's.
    max_runtime_s: submission-time budget; None uses the workload's.
    eval_every: evaluate every this many steps (and at steps 0 and last).
    eval_resident_gb: evaluation splits up to this size stay on the devices;
      larger ones are streamed from host memory one chunk at a time.
    stop_at_target: stop when the target is reached; False keeps training
      to the budget (time-to-target is still recorded).
    data: where the data is.
    full_batch, train_size, batch_size, chunk_size: batch-regime overrides
      of the workload's default (None keeps it).
    log_every: synchronise, check for NaN/Inf and report progress every this
      many steps.
    quiet: no progress lines.
    overwrite: replace an existing run directory.
    curvature: the curvature probe's schedule and settings.
    save_preconditioner_at: steps at which to save the submission's
      preconditioner (.npz in the run directory) for frozen-Adam runs.
  """

  workload: str
  submission: str
  hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  experiment_dir: str = 'runs'
  study: int = 0
  trial: int = 0
  seed: int = 0
  max_steps: int | None = None
  max_runtime_s: float | None = None
  eval_every: int = 50
  eval_resident_gb: float = 4.0
  stop_at_target: bool = True
  data: base.DataConfig = base.DataConfig()
  full_batch: bool | None = None
  train_size: int | None = None
  batch_size: int | None = None
  chunk_size: int | None = None
  log_every: int = 10
  quiet: bool = False
  overwrite: bool = False
  curvature: CurvatureConfig = NO_CURVATURE
  save_preconditioner_at: tuple[int, ...] = ()

  def __post_init__(self):
    for name in ('eval_every', 'log_every'):
      if getattr(self, name) <= 0:
        raise ValueError(f'{name} must be positive')
    if not self.eval_resident_gb >= 0:
      raise ValueError('eval_resident_gb must be >= 0')
    if self.max_steps is not None and self.max_steps < 1:
      raise ValueError('max_steps must be at least 1')


def resolve_regime(config: RunConfig, workload: base.Workload,
                   submission_batch_size: int | None) -> base.BatchRegime:
  """The workload's default regime with the run's overrides applied.

  Precedence: explicit flags, then the submission's `get_batch_size`, then
  the workload's default.
  """
  default = workload.default_regime
  full_batch = default.full_batch if config.full_batch is None else (
      config.full_batch)
  batch_size = config.batch_size or submission_batch_size
  if batch_size is not None and config.full_batch is None:
    full_batch = False
  train_size = config.train_size or default.train_size
  if full_batch:
    batch_size = train_size
  else:
    batch_size = batch_size or default.batch_size
  chunk_size = config.chunk_size or min(default.chunk_size, batch_size)
  return base.BatchRegime(full_batch=full_batch, train_size=train_size,
                          batch_size=batch_size, chunk_size=chunk_size)
