"""The record kinds of a run directory, one frozen dataclass each.

See `harness.records` for the layout of a run directory.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import pathlib
import re
from typing import Any, ClassVar

from harness.records._typed import SCHEMA_VERSION
from harness.records._typed import Record

META_FILE = 'meta.json'
METRICS_FILE = 'metrics.jsonl'
CURVATURE_FILE = 'curvature.jsonl'
SUMMARY_FILE = 'summary.json'
LOCK_FILE = 'lock'
CHECKPOINT_DIR = 'checkpoints'


class Status(str, enum.Enum):
  """How a run ended (or that it has not)."""

  REACHED_TARGET = 'reached_target'
  BUDGET_EXHAUSTED = 'budget_exhausted'
  DIVERGED = 'diverged'
  INTERRUPTED = 'interrupted'
  ERROR = 'error'
  # The submission ended training before the budget without reaching the
  # target (AlgoPerf's `spec.TrainingCompleteError`).
  TRAINING_COMPLETE = 'training_complete'
  # Only ever inferred by readers, for a run without a summary:
  RUNNING = 'running'  # its lock is held by a live process.
  KILLED = 'killed'  # no live process holds it (kill -9, a lost node).


class ErrorKind(str, enum.Enum):
  """Where a run that ended in `error` failed: whose failure it is."""

  SETUP = 'setup'  # Before the first update: data, model, submission load.
  SUBMISSION = 'submission'  # Inside the submission's step or its checks.
  HARNESS = 'harness'  # Elsewhere: evaluation, probe, checkpoint, records.


class ProbeReason(str, enum.Enum):
  """Why a curvature probe was taken."""

  SCHEDULE = 'schedule'  # --curvature_every or --curvature_log_spaced.
  TARGET = 'target'  # The first evaluation that reached the target.
  SOLUTION = 'solution'  # The first train loss below the threshold.
  FINAL = 'final'  # The end of the run.



@dataclasses.dataclass(frozen=True)
class WorkloadFacts(Record):
  """The workload's fixed settings, as `Workload.describe()` gives them.

  Settings particular to one workload family (WMT's direction, ImageNet's
  image size, ...) are kept in `details`, written beside the others.
  """

  name: str
  tier: str
  loss_type: str
  target_metric: str
  target_value: float
  target_higher_is_better: bool
  train_loss_threshold: float
  step_budget: int
  runtime_budget_s: float
  default_regime: Regime
  curvature_batch_size: int
  details: dict[str, Any] = dataclasses.field(default_factory=dict)

  open_field: ClassVar[str] = 'details'


@dataclasses.dataclass(frozen=True)
class Regime(Record):
  """How training batches were formed (`workloads.base.BatchRegime`)."""

  full_batch: bool
  train_size: int
  batch_size: int
  chunk_size: int


@dataclasses.dataclass(frozen=True)
class SubmissionFacts(Record):
  """Which submission ran: its name, how it was given, and its code.

  `source_sha256` is the SHA-256 of the submission's source file, so a
  user's file named `adam.py` is never taken for the baseline `adam`, and
  runs of edited code are not pooled with runs of the original.
  """

  name: str
  spec: str
  baseline: bool
  source_sha256: str


@dataclasses.dataclass(frozen=True)
class Devices(Record):
  """The accelerators a run used."""

  kind: str
  platform: str
  count: int
  local_count: int
  process_count: int


@dataclasses.dataclass(frozen=True)
class Meta(Record):
  """`meta.json`: what ran, where and with what."""

  workload: WorkloadFacts
  submission: SubmissionFacts
  hparams: dict[str, Any]
  seed: int
  study: int
  trial: int
  regime: Regime
  config: dict[str, Any]
  devices: Devices
  versions: dict[str, str]
  host: dict[str, str]
  start_time: str
  run_dir: str
  schema_version: int = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True)
class EvalRecord(Record):
  """One line of `metrics.jsonl`: an evaluation.

  `submission_time_s` is the time AlgoPerf scores (the first step's
  compilation and `prepare_for_eval` included); `compile_free_time_s` the
  steady training loop alone, for comparisons that compilation would blur.
  `metrics` holds `<split>/<metric>` values (e.g. `validation/accuracy`),
  written beside the other fields.
  """

  step: int
  submission_time_s: float
  compile_free_time_s: float
  train_loss: float
  target_reached: bool
  eval_seconds: float
  metrics: dict[str, float]
  schema_version: int = SCHEMA_VERSION

  open_field: ClassVar[str] = 'metrics'
  open_keys: ClassVar[re.Pattern[str]] = re.compile(r'[^/]+/.+')


@dataclasses.dataclass(frozen=True)
class ProbeRecord(Record):
  """One line of `curvature.jsonl`: a curvature probe."""

  step: int
  reason: ProbeReason
  learning_rate: float | None
  train_loss: float
  curvature_batch_loss: float
  sharpness: float
  sharpness_topk: tuple[float, ...]
  preconditioned_sharpness: float | None
  preconditioned_sharpness_topk: tuple[float, ...] | None
  stability_threshold: float | None
  threshold_ratio: float | None
  threshold_unknown: str | None
  grad_norm: float
  preconditioner_norm: float | None
  lanczos_residual: float
  lanczos_hvps: int
  lanczos_converged: bool
  curvature_batch_size: int
  probe_seconds: float
  schema_version: int = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True)
class Summary(Record):
  """`summary.json`: how the run ended.

  Times follow EvalRecord's two definitions: `submission_time_s` and
  `time_to_target_s` are AlgoPerf's (what is scored), `compile_free_time_s`
  and `time_to_target_compile_free_s` leave out `first_step_s` and
  `prepare_for_eval_s`.
  """

  status: Status
  time_to_target_s: float | None
  time_to_target_compile_free_s: float | None
  steps_to_target: int | None
  target_metric: str
  target_value: float
  solution_step: int | None
  sharpness_at_solution: float | None
  preconditioned_sharpness_at_solution: float | None
  final_step: int
  final_metrics: dict[str, float]
  submission_time_s: float
  compile_free_time_s: float
  eval_time_s: float
  probe_time_s: float
  first_step_s: float
  prepare_for_eval_s: float
  wall_time_s: float
  timed_compiles: int
  resumed_at_steps: tuple[int, ...]
  error: str | None
  error_kind: ErrorKind | None = None
  schema_version: int = SCHEMA_VERSION


def run_dir(experiment_dir: str | os.PathLike, workload: str, submission: str,
            study: int = 0, trial: int = 0) -> pathlib.Path:
  """Where a run's records live."""
  for label, part in (('workload', workload), ('submission', submission)):
    if not part or '/' in part or part in ('.', '..'):
      raise ValueError(f'{label} name {part!r} cannot be a directory name')
  return (pathlib.Path(experiment_dir) / workload / submission /
          f'study_{study}' / f'trial_{trial}')


def preconditioner_path(directory: str | os.PathLike,
                        step: int) -> pathlib.Path:
  """The file of the preconditioner saved at `step` in a run directory."""
  return pathlib.Path(directory) / f'preconditioner_step_{step}.npz'
