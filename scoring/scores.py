"""Time-to-target, tuning aggregation, performance profiles and the score.

The definitions follow AlgoPerf's external-tuning ruleset (mlcommons/
algorithmic-efficiency, `docs/DOCUMENTATION.md` "Scoring" and
`scoring/performance_profile.py`):

* A run's time to target t is the submission time of the first evaluation
  that reached the validation target, as the runner records it in
  `summary.json`, and only when metrics.jsonl's first evaluation with
  `target_reached` shows the same time and step (a run whose records
  disagree is not scored). The submission time is AlgoPerf's training time:
  data selection and updates, the first step's just-in-time compilation
  ("includes the compilation times") and every `prepare_for_eval`, but not
  evaluation, nor this harness's curvature probes and checkpoints. A resumed
  run counts its compilation once, like a run never interrupted. The records
  also hold the compile-free time (`time_to_target_compile_free_s`), which is
  not scored. A time to target, once recorded, counts whatever the run's
  final status: a run interrupted, diverged, out of budget or in error after
  the target (training on with `--keep_training_past_target`) scores its
  time. A run without a recorded time (diverged, out of budget, interrupted
  before the target, an error in the submission's update, or not finished)
  has t = inf. (Which errors are the optimizer's and which are skipped as the
  set-up's or the harness's is `scoring.run_set`'s.)
* Within a study, the study's time is the fastest (minimum) time over its
  trials, as AlgoPerf's documentation defines it. AlgoPerf's scoring code
  instead picks the trial with the earliest evaluation index that reached
  the target, which can differ when trials evaluate at different times;
  this module keeps the documented rule. The per-workload time of a
  submission is the median over studies, t_{s,w} = median_j min_i t_{i,j}.
  Infinite times take part in the median (so two of three studies failing
  gives inf).
* The performance ratio is r_{s,w} = t_{s,w} / min_s t_{s,w}; when no
  submission reached the target on w, every ratio is inf.
* The performance profile is rho_s(tau) = |{w : r_{s,w} <= tau}| / n with n the
  number of workloads scored (a workload where everyone failed still counts).
* The benchmark score is B_s = 1/(tau_max - 1) * integral_1^tau_max rho_s(tau)
  dtau with tau_max = 4. rho_s is a step function, so the integral is computed
  exactly: B_s = sum_{w: r <= tau_max} (tau_max - r_{s,w}) / (n (tau_max - 1)).
  (AlgoPerf's code approximates the same integral with the trapezoid rule on
  100 points; the two agree to within the grid spacing.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from harness.records import EvalRecord, RecordError, RunRecord, Status
from harness.records import finite

DEFAULT_TAU_MAX = 4.0
DEFAULT_NUM_POINTS = 100


@dataclasses.dataclass(frozen=True)
class RunScore:
  """How fast one run reached the target.

  Attributes:
    workload: workload name (the run directory's workload part).
    submission: submission name.
    study: study index.
    trial: trial index within the study.
    status: how the run ended.
    time_to_target_s: submission seconds to the target; inf unless reached.
    steps_to_target: steps to the target; None unless reached.
  """

  workload: str
  submission: str
  study: int
  trial: int
  status: Status
  time_to_target_s: float
  steps_to_target: int | None

  @property
  def reached(self) -> bool:
    return math.isfinite(self.time_to_target_s)


def _first_target_eval(metrics: Sequence[EvalRecord]) -> EvalRecord | None:
  reached = [m for m in metrics if m.target_reached]
  return min(reached, key=lambda m: m.step) if reached else None


# Times round-trip through JSON exactly; the tolerance only forgives a
# writer that rounds its last digit.
_SAME_TIME = dict(rel_tol=1e-9, abs_tol=1e-9)


def check_target_claims(record: RunRecord) -> EvalRecord | None:
  """The first evaluation with target_reached, checked against summary.json.

  A time or step to target that summary.json claims must be that evaluation's
  `submission_time_s` and `step` (and a compile-free time its
  `compile_free_time_s`): a leaderboard time is counted only where both
  records agree.

  Args:
    record: a run as read by `harness.records.read_run`.

  Returns:
    The first evaluation (lowest step) with target_reached, or None.

  Raises:
    RecordError: summary.json claims a time or step to target that
      metrics.jsonl does not show, naming both files.
  """
  first = _first_target_eval(record.metrics)
  summary = record.summary
  if summary is None:
    return first
  time_s, steps = summary.time_to_target_s, summary.steps_to_target
  summary_file = f'{record.path}/summary.json'
  metrics_file = f'{record.path}/metrics.jsonl'
  if first is None:
    if time_s is not None or steps is not None:
      raise RecordError(
          f'{summary_file}: claims the target (time_to_target_s {time_s!r}, '
          f'steps_to_target {steps!r}) but {metrics_file} has no evaluation '
          'with target_reached')
    return None
  seen = (f'the first evaluation with target_reached in {metrics_file} is '
          f'step {first.step} at submission_time_s {first.submission_time_s!r}')
  if time_s is not None and not math.isclose(time_s, first.submission_time_s,
                                             **_SAME_TIME):
    raise RecordError(f'{summary_file}: time_to_target_s {time_s!r} does not '
                      f'match: {seen}')
  free_s = summary.time_to_target_compile_free_s
  if free_s is not None and not math.isclose(
      free_s, first.compile_free_time_s, **_SAME_TIME):
    raise RecordError(
        f'{summary_file}: time_to_target_compile_free_s {free_s!r} does not '
        f'match compile_free_time_s {first.compile_free_time_s!r} of {seen}')
  if steps is not None and steps != first.step:
    raise RecordError(f'{summary_file}: steps_to_target {steps!r} does not '
                      f'match: {seen}')
  return first


def _recorded_target(record: RunRecord, first: EvalRecord | None
                     ) -> tuple[float | None, int | None]:
  """(time, steps) to target as recorded; None where not recorded.

  summary.json gives them; a run whose status is reached_target but whose
  summary lacks them takes them from the first evaluation with
  target_reached.
  """
  summary = record.summary
  if summary is None:
    return None, None
  time_s, steps = summary.time_to_target_s, summary.steps_to_target
  if summary.status is Status.REACHED_TARGET and first is not None:
    time_s = first.submission_time_s if time_s is None else time_s
    steps = first.step if steps is None else steps
  return time_s, steps


def run_score(record: RunRecord) -> RunScore:
  """Time and steps to target of one run.

  The time comes from `summary.json`, checked against metrics.jsonl by
  `check_target_claims`, whatever the run's status; when a run that reached
  the target lacks `time_to_target_s`, the first evaluation in metrics.jsonl
  with `target_reached` supplies it.

  Args:
    record: a run as read by `harness.records.read_run`.

  Returns:
    The run's score; infinite time unless a time to target was recorded.

  Raises:
    RecordError: the run says it reached the target but no record gives a
      finite, non-negative time, or summary.json and metrics.jsonl disagree.
  """
  status = record.status
  time_s, steps = _recorded_target(record, check_target_claims(record))
  if time_s is None and status is not Status.REACHED_TARGET:
    time_s, steps = math.inf, None
  elif finite(time_s) is None or time_s < 0 or (steps is not None and
                                                steps < 0):
    raise RecordError(
        f'{record.path}/summary.json: status {status.value} but '
        f'time_to_target_s is {time_s!r} and steps_to_target {steps!r}; '
        'expected a finite time >= 0 (from summary.json or the first '
        'evaluation with target_reached in metrics.jsonl)')
  return RunScore(
      workload=record.workload, submission=record.submission,
      study=record.study, trial=record.trial, status=status,
      time_to_target_s=time_s, steps_to_target=steps)


def median(values: Iterable[float]) -> float:
  """Median that lets inf take part (mean of the middle two when even).

  Args:
    values: numbers, possibly inf.

  Returns:
    The median; inf for no values.
  """
  ordered = sorted(values)
  if not ordered:
    return math.inf
  mid = len(ordered) // 2
  if len(ordered) % 2:
    return float(ordered[mid])
  return (ordered[mid - 1] + ordered[mid]) / 2


@dataclasses.dataclass(frozen=True)
class StudyBest:
  """The fastest trial of one study.

  Attributes:
    study: study index.
    trial: the fastest trial to reach the target; None when none did.
    time_s: its time to target; inf when none reached it.
    steps: its steps to target; None when none reached it.
    num_trials: trials the study holds.
  """

  study: int
  trial: int | None
  time_s: float
  steps: int | None
  num_trials: int


def study_best(runs: Sequence[RunScore]) -> StudyBest:
  """The fastest trial of one study (ties go to the lower trial index)."""
  studies = {r.study for r in runs}
  if len(studies) != 1:
    raise ValueError(f'expected the runs of one study, got studies {studies}')
  best = min(runs, key=lambda r: (r.time_to_target_s, r.trial))
  if not best.reached:
    return StudyBest(study=best.study, trial=None, time_s=math.inf,
                     steps=None, num_trials=len(runs))
  return StudyBest(study=best.study, trial=best.trial,
                   time_s=best.time_to_target_s, steps=best.steps_to_target,
                   num_trials=len(runs))


@dataclasses.dataclass(frozen=True)
class TunedTime:
  """A submission's per-workload time: median over studies of the fastest.

  Attributes:
    workload: workload name.
    submission: submission name.
    time_s: median over studies of each study's fastest time; inf if the
      median study failed.
    steps: median over studies of the fastest trials' steps (inf where a
      study failed); inf if the median study failed.
    studies: each study's fastest trial, by study index.
    representative: (study, trial) of the run that sets the median: the
      fastest trial of the lower-median study when studies are ranked by time
      (ties by study index); None when that study did not reach the target.
  """

  workload: str
  submission: str
  time_s: float
  steps: float
  studies: tuple[StudyBest, ...]
  representative: tuple[int, int] | None

  @property
  def num_runs(self) -> int:
    return sum(s.num_trials for s in self.studies)


def tuned_time(runs: Sequence[RunScore]) -> TunedTime:
  """Aggregates the runs of one workload and submission (external tuning).

  Args:
    runs: every scored run of one (workload, submission), any studies.

  Returns:
    The per-workload time t_{s,w} = median_j min_i t_{i,j}.
  """
  keys = {(r.workload, r.submission) for r in runs}
  if len(keys) != 1:
    raise ValueError(f'expected runs of one workload and submission, got '
                     f'{sorted(keys)}')
  workload, submission = keys.pop()
  by_study: dict[int, list[RunScore]] = {}
  for run in runs:
    by_study.setdefault(run.study, []).append(run)
  studies = tuple(study_best(by_study[s]) for s in sorted(by_study))
  ranked = sorted(studies, key=lambda s: (s.time_s, s.study))
  middle = ranked[(len(ranked) - 1) // 2]
  representative = (middle.study, middle.trial) if middle.trial is not None \
      else None
  steps = [math.inf if s.steps is None else float(s.steps) for s in studies]
  return TunedTime(
      workload=workload, submission=submission,
      time_s=median(s.time_s for s in studies), steps=median(steps),
      studies=studies, representative=representative)


def tuned_times(runs: Iterable[RunScore]
                ) -> dict[tuple[str, str], TunedTime]:
  """`tuned_time` for every (workload, submission) among the runs."""
  groups: dict[tuple[str, str], list[RunScore]] = {}
  for run in runs:
    groups.setdefault((run.workload, run.submission), []).append(run)
  return {key: tuned_time(groups[key]) for key in sorted(groups)}


def performance_ratios(times: Mapping[str, Mapping[str, float]],
                       workloads: Sequence[str]
                       ) -> dict[str, dict[str, float]]:
  """r_{s,w} = t_{s,w} / min_s t_{s,w}.

  Args:
    times: times[submission][workload] in seconds; a missing entry is inf.
    workloads: the workloads scored.

  Returns:
    ratios[submission][workload]; inf where the submission failed or where
    every submission failed. A best time of exactly 0 gives ratio 1 to the
    submissions at 0 and inf to the rest.
  """
  ratios: dict[str, dict[str, float]] = {s: {} for s in times}
  for workload in workloads:
    column = {s: float(times[s].get(workload, math.inf)) for s in times}
    best = min(column.values(), default=math.inf)
    for submission, t in column.items():
      ratios[submission][workload] = _ratio(t, best)
  return ratios


def _ratio(time_s: float, best: float) -> float:
  if not math.isfinite(time_s):
    return math.inf
  if best == 0:
    return 1.0 if time_s == 0 else math.inf
  return time_s / best


def rho(ratios: Mapping[str, float], tau: float, num_workloads: int) -> float:
  """rho(tau): the fraction of the n workloads with ratio <= tau."""
  if num_workloads <= 0:
    raise ValueError(f'num_workloads must be positive, got {num_workloads}')
  return sum(1 for r in ratios.values() if r <= tau) / num_workloads


@dataclasses.dataclass(frozen=True)
class PerformanceProfile:
  """rho_s(tau) for each submission on one grid of tau.

  Attributes:
    taus: increasing grid from 1 to tau_max: AlgoPerf's 100 evenly spaced
      points plus every finite ratio <= tau_max, so the step function is exact
      when drawn with steps-post.
    rho: rho[submission] = values on `taus`.
  """

  taus: tuple[float, ...]
  rho: Mapping[str, tuple[float, ...]]


def performance_profile(ratios: Mapping[str, Mapping[str, float]],
                        num_workloads: int, *,
                        tau_max: float = DEFAULT_TAU_MAX,
                        num_points: int = DEFAULT_NUM_POINTS
                        ) -> PerformanceProfile:
  """Performance profiles of every submission on a common tau grid."""
  _check_tau_max(tau_max)
  breaks = {r for per in ratios.values() for r in per.values()
            if 1.0 <= r <= tau_max}
  grid = set(np.linspace(1.0, tau_max, num_points).tolist()) | breaks
  taus = tuple(sorted(grid))
  return PerformanceProfile(
      taus=taus,
      rho={s: tuple(rho(per, t, num_workloads) for t in taus)
           for s, per in ratios.items()})


def benchmark_score(ratios: Mapping[str, float], num_workloads: int, *,
                    tau_max: float = DEFAULT_TAU_MAX) -> float:
  """B = 1/(tau_max - 1) * integral_1^tau_max rho(tau) dtau, exactly.

  Args:
    ratios: one submission's ratio per workload (inf for failures).
    num_workloads: n, the number of workloads scored (missing ones count 0).
    tau_max: the upper integration limit r_max (AlgoPerf: 4).

  Returns:
    The score in [0, 1]; 1 means fastest on every workload.
  """
  _check_tau_max(tau_max)
  if num_workloads <= 0:
    raise ValueError(f'num_workloads must be positive, got {num_workloads}')
  area = sum(tau_max - max(r, 1.0) for r in ratios.values() if r <= tau_max)
  return area / (num_workloads * (tau_max - 1.0))


def _check_tau_max(tau_max: float) -> None:
  if not tau_max > 1.0:
    raise ValueError(f'tau_max must be greater than 1, got {tau_max}')


def ranks(scores: Mapping[str, float], *, tolerance: float = 1e-12
          ) -> dict[str, int]:
  """Competition ranks (1, 2, 2, 4) by score, higher first.

  Args:
    scores: score per submission.
    tolerance: scores closer than this share a rank.

  Returns:
    rank per submission.
  """
  ordered = sorted(scores, key=lambda s: (-scores[s], s))
  result: dict[str, int] = {}
  for position, submission in enumerate(ordered, start=1):
    previous = ordered[position - 2] if position > 1 else None
    tied = (previous is not None
            and abs(scores[previous] - scores[submission]) <= tolerance)
    result[submission] = result[previous] if tied else position
  return result
