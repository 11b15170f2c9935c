"""The frozen configuration of one run, built from flags or by tests."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping

from workloads import base


class TuningRuleset(str, enum.Enum):
  """AlgoPerf's tuning rulesets (its `docs/DOCUMENTATION.md`)."""

  # Hyperparameters from the submission's search space, one point a trial.
  EXTERNAL = 'external'
  # The submission tunes itself: its functions get None as hyperparameters.
  SELF = 'self'

  @property
  def budget_factor(self) -> float:
    """The multiple of the workload's runtime budget a run gets.

    AlgoPerf's `submission_runner.py` gives a self-tuning run 1.5 × the
    external-tuning budget ("use 1.5x the runtime budget for the
    self-tuning ruleset"; its 2023 rules gave 3 ×), which has no tuning
    trials in exchange.
    """
    return 1.5 if self is TuningRuleset.SELF else 1.0


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
    chunk_size: examples per chunk of the curvature batch (0: the training
      chunk size). Larger chunks make each Hessian-vector product cheaper
      where the memory allows (BENCHMARKS.md).
  """

  every: int = 0
  log_spaced: bool = False
  at_events: bool = True
  top_k: int = 1
  num_iterations: int = 20
  tol: float | None = 1e-3
  warm_start: bool = True
  chunk_size: int = 0

  def __post_init__(self):
    if self.every < 0:
      raise ValueError(f'curvature every (--curvature_every) must be >= 0 '
                       f'(0: only at events), got {self.every}')
    if not 1 <= self.top_k <= self.num_iterations:
      raise ValueError(
          'curvature needs 1 <= top_k <= num_iterations (--curvature_top_k, '
          '--lanczos_iterations: Lanczos finds at most one eigenvalue per '
          f'iteration), got top_k={self.top_k}, '
          f'num_iterations={self.num_iterations}')
    if self.chunk_size < 0:
      raise ValueError(f'curvature chunk size (--curvature_chunk_size) must '
                       f'be >= 0 (0: the training chunk size), got '
                       f'{self.chunk_size}')
    if self.tol is not None and not self.tol >= 0:
      raise ValueError(f'curvature tol (--lanczos_tol) must be >= 0, or '
                       f'None to always run num_iterations; got {self.tol}')

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
    max_runtime_s: submission-time budget; None uses the workload's (1.5 ×
      under the self-tuning ruleset, `TuningRuleset.budget_factor`).
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
    overwrite: replace an existing (finished or killed) run directory.
    resume: continue a run directory that holds an unfinished run from its
      last checkpoint; False refuses such a directory.
    checkpoint_every: checkpoint every this many steps (0: not by steps).
    checkpoint_every_s: checkpoint when this many seconds of wall time have
      passed since the last one (0: not by time). A run also checkpoints
      when it is told to stop (SIGTERM, Ctrl-C).
    curvature: the curvature probe's schedule and settings.
    save_preconditioner_at: steps at which to save the submission's
      preconditioner (.npz in the run directory) for frozen-Adam runs.
    tensorboard: also write the records' scalars live as TensorBoard event
      files under this log directory ('': none; `harness.tensorboard_log`).
    tuning_ruleset: AlgoPerf's ruleset; under `SELF` the submission gets no
      hyperparameters, so `hparams` must be empty.
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
  resume: bool = True
  checkpoint_every: int = 0
  checkpoint_every_s: float = 600.0
  curvature: CurvatureConfig = NO_CURVATURE
  save_preconditioner_at: tuple[int, ...] = ()
  tensorboard: str = ''
  tuning_ruleset: TuningRuleset = TuningRuleset.EXTERNAL

  def __post_init__(self):
    """Refuses values no run can use, before any file is written.

    Each message is one line naming the field (as its flag is named).
    `not value >= bound` also refuses NaN.
    """
    for name, bound, when_given in _BOUNDS:
      value = getattr(self, name)
      if value is None and when_given:
        continue
      if not value >= bound:
        kind = 'positive' if bound == 1 else f'>= {bound}'
        unset = ' (leave it unset for the default)' if when_given else ''
        raise ValueError(f'{name} must be {kind}{unset}, got {value}')
    if self.max_runtime_s is not None and not self.max_runtime_s > 0:
      raise ValueError(
          'max_runtime_s must be positive (leave it unset for the '
          f"workload's budget), got {self.max_runtime_s}")
    # A name ('self') is taken as the ruleset it names.
    object.__setattr__(self, 'tuning_ruleset',
                       TuningRuleset(self.tuning_ruleset))
    if self.tuning_ruleset is TuningRuleset.SELF and self.hparams:
      raise ValueError(
          'tuning_ruleset self: the submission tunes itself and takes no '
          f'hyperparameters; got {sorted(self.hparams)}')
    early = [step for step in self.save_preconditioner_at if step < 1]
    if early:
      raise ValueError(f'save_preconditioner_at steps must be >= 1 (the '
                       f'preconditioner exists after the first update), got '
                       f'{early}')


# (field, lowest allowed value, whether None means "unset" and passes). The
# batch-regime overrides are replaced by the workload's default when unset,
# so an explicit 0 would silently mean "unset": it is refused instead.
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ('eval_every', 1, False),
    ('log_every', 1, False),
    ('eval_resident_gb', 0, False),
    ('study', 0, False),
    ('trial', 0, False),
    ('max_steps', 1, True),
    ('train_size', 1, True),
    ('batch_size', 1, True),
    ('chunk_size', 1, True),
    ('checkpoint_every', 0, False),
    ('checkpoint_every_s', 0, False),
)


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
