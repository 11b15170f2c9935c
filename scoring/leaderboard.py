"""The computed statistics of a leaderboard: every view renders these.

`compute_leaderboard(experiment_dirs)` reads every run directory through
`harness.records`, scores each run, groups runs by hardware, aggregates the
trials and studies, and computes ratios, profiles, scores, ranks and AEoS
statistics once. Tables, figures, Markdown, HTML, JSON and CSV are all views
of the `Leaderboard` it returns.

Fixed hardware: times from different device kinds (meta.json
`devices.kind`) are not comparable, so by default each device kind gets its
own ranking group. With `allow_mixed_hardware=True` all runs form a single
group marked `mixed`, and every view says so.

Missing runs (`MissingRuns`, `--missing_runs` of `scoring.report`). Within a
group, a submission may have no scored run on a workload that others ran.
Every view names each such cell, and the policy says how it is ranked:
  * `fail` (the default, AlgoPerf's rule): the n workloads of the
    performance profile are those with at least one scored run in the group,
    and a submission without runs on one of them counts as failing there
    (time inf);
  * `common`: the group is ranked over the workloads every one of its
    submissions has runs on; the others are listed as left out
    (`RankingGroup.left_out`);
  * `refuse`: `compute_leaderboard` raises `MissingRunsError`, naming every
    missing cell.

Noise. Each cell keeps the spread behind its time (each study's fastest
time and steps, every trial's time), a steps-to-target view beside the
time view, and a group warns (`RankingGroup.warnings`) when the
submissions of a workload have unequal numbers of studies or of trials per
study, since a median over more studies or a minimum over more trials is
not the same statistic.

Which runs count, under which names, and what is skipped and why (bad
records, runs not finished, duplicates, splits of runs that are not trials of
one study) is `scoring.run_set`'s; its `Skipped` entries and notes are part
of the `Leaderboard`.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import os
from typing import Any, Iterable, Sequence

from harness import records
from scoring import aeos
from scoring import run_set
from scoring import scores

MIXED_GROUP = 'mixed hardware'
# The run-level records, defined with the rules that choose them.
RunEntry = run_set.RunEntry
SkipKind = run_set.SkipKind
Skipped = run_set.Skipped
Found = run_set.Found


class MissingRuns(str, enum.Enum):
  """What a submission without runs on a workload of its group counts as."""

  FAIL = 'fail'  # Failed there (time inf): AlgoPerf's rule, the default.
  COMMON = 'common'  # Rank over the workloads every submission has.
  REFUSE = 'refuse'  # No leaderboard: `MissingRunsError`.


class MissingRunsError(ValueError):
  """A submission has no run on a workload of its group (policy refuse)."""


@dataclasses.dataclass(frozen=True)
class WorkloadInfo:
  """A workload's target, as its runs' meta.json gives it."""

  name: str
  target_metric: str
  target_value: float
  target_higher_is_better: bool
  train_loss_threshold: float


@dataclasses.dataclass(frozen=True)
class Cell:
  """One submission on one workload within a ranking group.

  Attributes:
    workload: workload name.
    submission: submission name.
    time_s: t_{s,w}, median over studies of the fastest trial (inf: failed).
    steps: the same aggregation of steps to target.
    ratio: r_{s,w} = time_s / fastest time_s on the workload.
    num_runs: scored runs.
    study_times: each study's fastest time, by study index.
    study_steps: each study's fastest trial's steps (inf: not reached).
    trial_times: every scored trial's time (inf: not reached), by study and
      trial.
    steps_ratio: steps / the fewest steps on the workload.
    representative: path of the run that sets the median (or, when none
      reached the target, the run with the most probes); None without runs.
    aeos: that run's AEoS statistics.
    series: that run's probe series.
  """

  workload: str
  submission: str
  time_s: float
  steps: float
  ratio: float
  num_runs: int
  study_times: tuple[float, ...]
  representative: str | None
  aeos: aeos.AeosStats | None
  series: aeos.CurvatureSeries
  study_steps: tuple[float, ...] = ()
  trial_times: tuple[float, ...] = ()
  steps_ratio: float = math.inf


@dataclasses.dataclass(frozen=True)
class Standing:
  """A submission's place in one ranking group."""

  submission: str
  score: float
  rank: int
  workloads_reached: int


@dataclasses.dataclass(frozen=True)
class RankingGroup:
  """Runs ranked together: one device kind, or all kinds when mixed.

  Attributes (beyond the names):
    workloads: the workloads ranked (n of the performance profile).
    cells: one per workload ranked and submission.
    missing: (submission, workload) with no scored run where others have
      runs, whatever the policy.
    left_out: workloads not ranked (policy common).
    warnings: unequal numbers of studies or trials per study.
  """

  name: str
  device_kinds: tuple[str, ...]
  mixed: bool
  workloads: tuple[WorkloadInfo, ...]
  submissions: tuple[str, ...]
  standings: tuple[Standing, ...]
  cells: tuple[Cell, ...]
  profile: scores.PerformanceProfile
  missing: tuple[tuple[str, str], ...] = ()
  left_out: tuple[str, ...] = ()
  warnings: tuple[str, ...] = ()

  def cell(self, workload: str, submission: str) -> Cell:
    return next(c for c in self.cells
                if (c.workload, c.submission) == (workload, submission))


@dataclasses.dataclass(frozen=True)
class Leaderboard:
  """Everything a report shows, computed once.

  `found` lists where run directories were found (per experiment directory,
  each folder and how many); `missing_runs` is the policy applied.
  """

  experiment_dirs: tuple[str, ...]
  allow_mixed_hardware: bool
  tau_max: float
  groups: tuple[RankingGroup, ...]
  runs: tuple[RunEntry, ...]
  skipped: tuple[Skipped, ...]
  notes: tuple[str, ...] = ()
  missing_runs: MissingRuns = MissingRuns.FAIL
  found: tuple[Found, ...] = ()


def _workload_info(name: str, meta: records.Meta) -> WorkloadInfo:
  workload = meta.workload
  return WorkloadInfo(
      name=name, target_metric=workload.target_metric,
      target_value=workload.target_value,
      target_higher_is_better=workload.target_higher_is_better,
      train_loss_threshold=workload.train_loss_threshold)


def _representative(tuned: scores.TunedTime, runs: Sequence[RunEntry]
                    ) -> RunEntry:
  """The run that sets the median time, else the one with most probes."""
  if tuned.representative is not None:
    return next(r for r in runs
                if (r.study, r.trial) == tuned.representative)
  return min(runs, key=lambda r: (-r.aeos.num_probes, r.study, r.trial))


def _cells(workloads: Sequence[str], submissions: Sequence[str],
           runs: Sequence[RunEntry]) -> list[Cell]:
  run_scores = [scores.RunScore(
      workload=r.workload, submission=r.submission, study=r.study,
      trial=r.trial, status=r.status, time_to_target_s=r.time_to_target_s,
      steps_to_target=r.steps_to_target) for r in runs]
  tuned = scores.tuned_times(run_scores)

  def ratios_of(value):
    return scores.performance_ratios(
        {s: {w: value(tuned[(w, s)]) for w in workloads if (w, s) in tuned}
         for s in submissions}, workloads)

  ratios = ratios_of(lambda t: t.time_s)
  steps_ratios = ratios_of(lambda t: t.steps)
  return [_cell(tuned.get((w, s)), (ratios[s][w], steps_ratios[s][w]), w, s,
                [r for r in runs if (r.workload, r.submission) == (w, s)])
          for w in workloads for s in submissions]


def _cell(tuned: scores.TunedTime | None, ratios: tuple[float, float],
          workload: str, submission: str, runs: Sequence[RunEntry]) -> Cell:
  """One (workload, submission) cell; `tuned` is None when it has no runs.

  `ratios` is (time ratio, steps ratio).
  """
  ratio, steps_ratio = ratios
  if tuned is None:
    return Cell(workload=workload, submission=submission, time_s=math.inf,
                steps=math.inf, ratio=ratio, num_runs=0, study_times=(),
                representative=None, aeos=None, series=aeos.CurvatureSeries(),
                steps_ratio=steps_ratio)
  rep = _representative(tuned, runs)
  ordered = sorted(runs, key=lambda r: (r.study, r.trial))
  return Cell(
      workload=workload, submission=submission, time_s=tuned.time_s,
      steps=tuned.steps, ratio=ratio, num_runs=len(runs),
      study_times=tuple(s.time_s for s in tuned.studies),
      representative=rep.path, aeos=rep.aeos, series=rep.series,
      study_steps=tuple(math.inf if s.steps is None else float(s.steps)
                        for s in tuned.studies),
      trial_times=tuple(r.time_to_target_s for r in ordered),
      steps_ratio=steps_ratio)


def _balance_warnings(runs: Sequence[RunEntry]) -> tuple[str, ...]:
  """A warning per workload whose submissions ran unequal numbers of studies
  or of trials per study: their medians and minima are not alike."""
  layout: dict[str, dict[str, collections.Counter[int]]] = (
      collections.defaultdict(lambda: collections.defaultdict(
          collections.Counter)))
  for run in runs:
    layout[run.workload][run.submission][run.study] += 1
  warnings = []
  for workload in sorted(layout):
    shapes = {s: [c[k] for k in sorted(c)]
              for s, c in sorted(layout[workload].items())}
    if len(shapes) < 2:
      continue
    if len({len(trials) for trials in shapes.values()}) > 1:
      shown = ', '.join(f'{s} {len(t)}' for s, t in shapes.items())
      warnings.append(
          f'Workload {workload!r}: unequal numbers of studies ({shown}); '
          'the median over studies is not the same statistic for each.')
    elif len({n for trials in shapes.values() for n in trials}) > 1:
      shown = '; '.join(f'{s} {", ".join(map(str, t))}'
                        for s, t in shapes.items())
      warnings.append(
          f'Workload {workload!r}: unequal numbers of trials per study '
          f'({shown}); the fastest of more trials is faster by chance alone.')
  return tuple(warnings)


def _missing(runs: Sequence[RunEntry], workloads: Sequence[str],
             submissions: Sequence[str]) -> tuple[tuple[str, str], ...]:
  """(submission, workload) without a scored run, by workload."""
  have = {(r.workload, r.submission) for r in runs}
  return tuple((s, w) for w in workloads for s in submissions
               if (w, s) not in have)


def _standings(cells: Sequence[Cell], submissions: Sequence[str], n: int,
               tau_max: float
               ) -> tuple[tuple[Standing, ...], scores.PerformanceProfile]:
  """Scores, ranks and profiles over n workloads (none: all score 0)."""
  ratios = {s: {c.workload: c.ratio for c in cells if c.submission == s}
            for s in submissions}
  if n:
    score = {s: scores.benchmark_score(ratios[s], n, tau_max=tau_max)
             for s in submissions}
    profile = scores.performance_profile(ratios, n, tau_max=tau_max)
  else:
    score = dict.fromkeys(submissions, 0.0)
    profile = scores.PerformanceProfile(
        taus=(), rho={s: () for s in submissions})
  rank = scores.ranks(score)
  standings = tuple(sorted(
      (Standing(submission=s, score=score[s], rank=rank[s],
                workloads_reached=sum(math.isfinite(c.time_s) for c in cells
                                      if c.submission == s))
       for s in submissions), key=lambda st: (st.rank, st.submission)))
  return standings, profile


def _group(name: str, mixed: bool,
           loaded: Sequence[tuple[RunEntry, records.Meta]],
           tau_max: float, missing_runs: MissingRuns) -> RankingGroup:
  runs = [entry for entry, _ in loaded]
  ran = sorted({r.workload for r in runs})
  submissions = sorted({r.submission for r in runs})
  first_meta = {}
  for entry, meta in sorted(loaded, key=lambda em: em[0].path):
    first_meta.setdefault(entry.workload, meta)
  missing = _missing(runs, ran, submissions)
  left_out = tuple(sorted({w for _, w in missing})) if (
      missing_runs is MissingRuns.COMMON) else ()
  workloads = [w for w in ran if w not in left_out]
  cells = _cells(workloads, submissions,
                 [r for r in runs if r.workload in workloads])
  standings, profile = _standings(cells, submissions, len(workloads),
                                  tau_max)
  return RankingGroup(
      name=name, device_kinds=tuple(sorted({r.device_kind for r in runs})),
      mixed=mixed,
      workloads=tuple(_workload_info(w, first_meta[w]) for w in workloads),
      submissions=tuple(submissions), standings=standings, cells=tuple(cells),
      profile=profile, missing=missing, left_out=left_out,
      warnings=_balance_warnings(runs))


def _partition(loaded: Iterable[tuple[RunEntry, records.Meta]],
               allow_mixed_hardware: bool
               ) -> list[tuple[str, bool, list[tuple[RunEntry, Any]]]]:
  """(name, mixed, runs) per ranking group."""
  by_kind: dict[str, list[tuple[RunEntry, records.Meta]]] = {}
  for item in loaded:
    by_kind.setdefault(item[0].device_kind, []).append(item)
  if allow_mixed_hardware and len(by_kind) > 1:
    return [(MIXED_GROUP, True,
             [item for kind in sorted(by_kind) for item in by_kind[kind]])]
  return [(kind, False, by_kind[kind])
          for kind in sorted(by_kind, key=lambda k: (k.lower(), k))]


def _refuse(groups: Sequence[RankingGroup]) -> None:
  """Raises MissingRunsError naming every missing cell, if any."""
  cells = [f'in group {g.name!r}, submission {s!r} has no run on workload '
           f'{w!r}' for g in groups for s, w in g.missing]
  if cells:
    raise MissingRunsError(
        f'missing runs (missing_runs=refuse): {"; ".join(cells)}. Run them, '
        'or rank with missing_runs=fail (counted as failed, the default) or '
        'missing_runs=common (over the workloads every submission has)')


def compute_leaderboard(experiment_dirs: Sequence[str | os.PathLike], *,
                        allow_mixed_hardware: bool = False,
                        tau_max: float = scores.DEFAULT_TAU_MAX,
                        missing_runs: MissingRuns | str = MissingRuns.FAIL
                        ) -> Leaderboard:
  """Reads, scores and ranks every run under the experiment directories.

  Args:
    experiment_dirs: directories of run records (found at any depth).
    allow_mixed_hardware: rank runs from different device kinds together (the
      group is then marked mixed); otherwise one ranking per device kind.
    tau_max: upper limit of the performance profile and score integral.
    missing_runs: how a submission without runs on a workload of its group
      is ranked (`MissingRuns`; default fail, AlgoPerf's rule).

  Returns:
    The statistics every view of the report renders.

  Raises:
    FileNotFoundError: none of the experiment directories exists.
    MissingRunsError: missing_runs is refuse and a run is missing.
  """
  missing_runs = MissingRuns(missing_runs)
  loaded = run_set.load_runs(experiment_dirs)
  parts = _partition(loaded.runs, allow_mixed_hardware)
  groups = tuple(_group(name, mixed, items, tau_max, missing_runs)
                 for name, mixed, items in parts)
  if missing_runs is MissingRuns.REFUSE:
    _refuse(groups)
  return Leaderboard(
      experiment_dirs=tuple(str(d) for d in experiment_dirs),
      allow_mixed_hardware=allow_mixed_hardware, tau_max=tau_max,
      groups=groups, runs=tuple(e for e, _ in loaded.runs),
      skipped=loaded.skipped, notes=loaded.notes, missing_runs=missing_runs,
      found=loaded.found)
