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

Within a group, the n workloads of the performance profile are those with at
least one scored run in the group; a submission without runs on one of them
counts as failing there (time inf), as in AlgoPerf.

Which runs count, under which names, and what is skipped and why (bad
records, runs not finished, duplicates, splits of runs that are not trials of
one study) is `scoring.run_set`'s; its `Skipped` entries and notes are part
of the `Leaderboard`.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Standing:
  """A submission's place in one ranking group."""

  submission: str
  score: float
  rank: int
  workloads_reached: int


@dataclasses.dataclass(frozen=True)
class RankingGroup:
  """Runs ranked together: one device kind, or all kinds when mixed."""

  name: str
  device_kinds: tuple[str, ...]
  mixed: bool
  workloads: tuple[WorkloadInfo, ...]
  submissions: tuple[str, ...]
  standings: tuple[Standing, ...]
  cells: tuple[Cell, ...]
  profile: scores.PerformanceProfile

  def cell(self, workload: str, submission: str) -> Cell:
    return next(c for c in self.cells
                if (c.workload, c.submission) == (workload, submission))


@dataclasses.dataclass(frozen=True)
class Leaderboard:
  """Everything a report shows, computed once."""

  experiment_dirs: tuple[str, ...]
  allow_mixed_hardware: bool
  tau_max: float
  groups: tuple[RankingGroup, ...]
  runs: tuple[RunEntry, ...]
  skipped: tuple[Skipped, ...]
  notes: tuple[str, ...] = ()


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
  times = {s: {w: tuned[(w, s)].time_s for w in workloads if (w, s) in tuned}
           for s in submissions}
  ratios = scores.performance_ratios(times, workloads)
  return [_cell(tuned.get((w, s)), ratios[s][w], w, s,
                [r for r in runs if (r.workload, r.submission) == (w, s)])
          for w in workloads for s in submissions]


def _cell(tuned: scores.TunedTime | None, ratio: float, workload: str,
          submission: str, runs: Sequence[RunEntry]) -> Cell:
  """One (workload, submission) cell; `tuned` is None when it has no runs."""
  if tuned is None:
    return Cell(workload=workload, submission=submission, time_s=math.inf,
                steps=math.inf, ratio=ratio, num_runs=0, study_times=(),
                representative=None, aeos=None, series=aeos.CurvatureSeries())
  rep = _representative(tuned, runs)
  return Cell(
      workload=workload, submission=submission, time_s=tuned.time_s,
      steps=tuned.steps, ratio=ratio, num_runs=len(runs),
      study_times=tuple(s.time_s for s in tuned.studies),
      representative=rep.path, aeos=rep.aeos, series=rep.series)


def _group(name: str, mixed: bool,
           loaded: Sequence[tuple[RunEntry, records.Meta]],
           tau_max: float) -> RankingGroup:
  runs = [entry for entry, _ in loaded]
  workloads = sorted({r.workload for r in runs})
  submissions = sorted({r.submission for r in runs})
  first_meta = {}
  for entry, meta in sorted(loaded, key=lambda em: em[0].path):
    first_meta.setdefault(entry.workload, meta)
  cells = _cells(workloads, submissions, runs)
  ratios = {s: {c.workload: c.ratio for c in cells if c.submission == s}
            for s in submissions}
  n = len(workloads)
  score = {s: scores.benchmark_score(ratios[s], n, tau_max=tau_max)
           for s in submissions}
  rank = scores.ranks(score)
  standings = tuple(sorted(
      (Standing(submission=s, score=score[s], rank=rank[s],
                workloads_reached=sum(math.isfinite(c.time_s) for c in cells
                                      if c.submission == s))
       for s in submissions), key=lambda st: (st.rank, st.submission)))
  return RankingGroup(
      name=name, device_kinds=tuple(sorted({r.device_kind for r in runs})),
      mixed=mixed,
      workloads=tuple(_workload_info(w, first_meta[w]) for w in workloads),
      submissions=tuple(submissions), standings=standings, cells=tuple(cells),
      profile=scores.performance_profile(ratios, n, tau_max=tau_max))


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


def compute_leaderboard(experiment_dirs: Sequence[str | os.PathLike], *,
                        allow_mixed_hardware: bool = False,
                        tau_max: float = scores.DEFAULT_TAU_MAX
                        ) -> Leaderboard:
  """Reads, scores and ranks every run under the experiment directories.

  Args:
    experiment_dirs: directories of run records.
    allow_mixed_hardware: rank runs from different device kinds together (the
      group is then marked mixed); otherwise one ranking per device kind.
    tau_max: upper limit of the performance profile and score integral.

  Returns:
    The statistics every view of the report renders.
  """
  loaded = run_set.load_runs(experiment_dirs)
  parts = _partition(loaded.runs, allow_mixed_hardware)
  groups = tuple(_group(name, mixed, items, tau_max)
                 for name, mixed, items in parts)
  return Leaderboard(
      experiment_dirs=tuple(str(d) for d in experiment_dirs),
      allow_mixed_hardware=allow_mixed_hardware, tau_max=tau_max,
      groups=groups, runs=tuple(e for e, _ in loaded.runs),
      skipped=loaded.skipped, notes=loaded.notes)
