"""Calibration records, and the target-setting rules that fill them.

AlgoPerf sets each workload's target from its target-setting runs: AdamW,
NAdamW, Nesterov and heavy-ball tuned over a large budget, the best of them
rerun over several seeds, and the median of those seeds' best validation
metrics taken as the target (mlcommons/algorithmic-efficiency, pull request
541 spells out the median step). `harness.calibrate` runs that procedure at a
size a flag sets, and writes a `CalibrationRecord`; this module holds the
record and the rules, as pure functions of the runs' records.

The budget is ours, because AlgoPerf's documentation gives no single rule:
`budget_margin` × the slowest seed's steps (and submission time, compilation
included as on the benchmark's clock) to reach the target.

References:
  Dahl et al., 2023, Benchmarking Neural Network Training Algorithms,
  arXiv:2306.07179, Sec. 4 (target setting).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import statistics
from typing import Any, Sequence

from harness import records

RECORD_FILE = 'calibration.json'
# Calibration records are committed beside the workloads and outlive run
# record schemas, so they carry a version of their own.
CALIBRATION_VERSION = 1
# The committed records, one per calibrated workload: `<name>.json`.
COMMITTED_DIR = (pathlib.Path(__file__).resolve().parent.parent /
                 'workloads' / 'calibrations')


class CalibrationError(ValueError):
  """Runs from which no target can be set; one line says why."""


@dataclasses.dataclass(frozen=True)
class Curve(records.Record):
  """A run's validation metric at each evaluation.

  Attributes:
    steps: the evaluations' steps.
    submission_time_s: the submission clock at each.
    values: the target metric at each.
  """

  steps: tuple[int, ...]
  submission_time_s: tuple[float, ...]
  values: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class CalibrationRun(records.Record):
  """One run of a calibration: a search trial or a seed of the chosen point.

  Attributes:
    submission: the baseline it ran.
    study, trial: where it ran in its phase's suite.
    seed: its seed.
    hparams: its hyperparameters.
    status: its summary's status ('' when it left none).
    best_value: the best value of the target metric it reached (None when
      it never evaluated a finite one).
    best_step: the first step at which it reached `best_value`.
    curve: its validation metric at every evaluation.
  """

  submission: str
  study: int
  trial: int
  seed: int
  hparams: dict[str, Any]
  status: str
  best_value: float | None
  best_step: int | None
  curve: Curve


@dataclasses.dataclass(frozen=True)
class CalibrationRecord(records.Record):
  """`calibration.json`: how a workload's target and budget were set.

  Attributes:
    workload: the workload calibrated.
    target_metric: e.g. 'validation/accuracy'.
    higher_is_better: whether the target is a lower bound.
    candidates: the target-setting algorithms searched.
    trials_per_candidate: search-space points tried for each.
    num_seeds: reruns of the chosen point.
    max_steps: steps of every calibration run (no run stops at a target).
    eval_every: their evaluation period.
    budget_margin: budgets are this × the slowest seed's time to target.
    seed: the calibration's seed (of the search's and the reruns' suites).
    search: every search trial.
    chosen_submission, chosen_hparams: the best search trial's point.
    seeds: the reruns of the chosen point.
    target_value: the median of the reruns' best values.
    step_budget: `budget_margin` × the most steps a rerun took to reach it.
    runtime_budget_s: `budget_margin` × the most submission time a rerun
      took to reach it, in seconds, rounded up.
    devices: where the runs ran.
    versions: Python and package versions.
    command: the command line.
    date: when the record was written (UTC, ISO 8601).
    calibration_version: this record's format version.
  """

  workload: str
  target_metric: str
  higher_is_better: bool
  candidates: tuple[str, ...]
  trials_per_candidate: int
  num_seeds: int
  max_steps: int
  eval_every: int
  budget_margin: float
  seed: int
  search: tuple[CalibrationRun, ...]
  chosen_submission: str
  chosen_hparams: dict[str, Any]
  seeds: tuple[CalibrationRun, ...]
  target_value: float
  step_budget: int
  runtime_budget_s: float
  devices: records.Devices
  versions: dict[str, str]
  command: str
  date: str
  calibration_version: int = CALIBRATION_VERSION


def curve_of(run: records.RunRecord, metric: str) -> Curve:
  """The finite values of `metric` in `run`'s evaluations."""
  rows = [(m.step, m.submission_time_s, m.metrics[metric])
          for m in run.metrics
          if metric in m.metrics and math.isfinite(m.metrics[metric])]
  return Curve(steps=tuple(r[0] for r in rows),
               submission_time_s=tuple(r[1] for r in rows),
               values=tuple(r[2] for r in rows))


def best(curve: Curve, *, higher_is_better: bool
         ) -> tuple[float, int] | tuple[None, None]:
  """The best value on `curve` and the first step that reached it."""
  if not curve.values:
    return None, None
  value = max(curve.values) if higher_is_better else min(curve.values)
  return value, curve.steps[curve.values.index(value)]


def reaches(value: float, target: float, *, higher_is_better: bool) -> bool:
  return value >= target if higher_is_better else value <= target


def first_reaching(curve: Curve, target: float, *, higher_is_better: bool
                   ) -> tuple[int, float] | None:
  """(step, submission time) of the first evaluation that reached `target`."""
  for step, seconds, value in zip(curve.steps, curve.submission_time_s,
                                  curve.values):
    if reaches(value, target, higher_is_better=higher_is_better):
      return step, seconds
  return None


def calibration_run(run: records.RunRecord, *, submission: str, seed: int,
                    metric: str, higher_is_better: bool) -> CalibrationRun:
  """What a calibration keeps of one run's records."""
  curve = curve_of(run, metric)
  value, step = best(curve, higher_is_better=higher_is_better)
  return CalibrationRun(
      submission=submission, study=run.study, trial=run.trial, seed=seed,
      hparams=dict(run.meta.hparams),
      status='' if run.summary is None else run.summary.status.value,
      best_value=value, best_step=step, curve=curve)


def choose(search: Sequence[CalibrationRun], *, higher_is_better: bool
           ) -> CalibrationRun:
  """The search trial with the best value; ties go to the earlier step,
  then to the earlier trial in the job list.

  Raises:
    CalibrationError: no trial evaluated a finite value.
  """
  scored = [run for run in search if run.best_value is not None]
  if not scored:
    raise CalibrationError('no search trial evaluated a finite target '
                           'metric: every one diverged or failed at once')
  sign = -1.0 if higher_is_better else 1.0
  return min(scored, key=lambda run: (sign * run.best_value, run.best_step))


@dataclasses.dataclass(frozen=True)
class TargetAndBudget:
  """A target and the budgets set from the reruns' time to reach it."""

  target_value: float
  step_budget: int
  runtime_budget_s: float


def target_and_budget(seeds: Sequence[CalibrationRun], *,
                      higher_is_better: bool, budget_margin: float
                      ) -> TargetAndBudget:
  """AlgoPerf's target (the median of the reruns' best values) and our
  budget (`budget_margin` × the slowest rerun that reached it).

  Raises:
    CalibrationError: no more than half the reruns evaluated a finite
      value, so their median is no value the chosen point reaches.
  """
  values = [run.best_value for run in seeds if run.best_value is not None]
  if 2 * len(values) <= len(seeds):
    raise CalibrationError(
        f'only {len(values)} of {len(seeds)} reruns of the chosen point '
        'evaluated a finite target metric; no median target can be set')
  # A rerun that never evaluated counts as the worst, as AlgoPerf's median
  # over every seed would have it.
  worst = -math.inf if higher_is_better else math.inf
  target = statistics.median(
      [worst if run.best_value is None else run.best_value for run in seeds])
  reached = [first_reaching(run.curve, target,
                            higher_is_better=higher_is_better)
             for run in seeds]
  reached = [r for r in reached if r is not None]
  return TargetAndBudget(
      target_value=float(target),
      step_budget=math.ceil(budget_margin * max(step for step, _ in reached)),
      runtime_budget_s=float(math.ceil(
          budget_margin * max(seconds for _, seconds in reached))))


def committed_path(workload: str) -> pathlib.Path:
  """Where a calibrated workload's record is committed."""
  return COMMITTED_DIR / f'{workload}.json'


def read(path: str | pathlib.Path) -> CalibrationRecord:
  """A calibration record, checked field by field."""
  return records.read_json(pathlib.Path(path), CalibrationRecord)
