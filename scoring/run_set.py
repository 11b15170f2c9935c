"""Which runs a leaderboard counts, under which names, and why not the rest.

`load_runs(experiment_dirs)` reads every run directory through
`harness.records` and returns the scored runs (`RunEntry`), what was skipped
(`Skipped`, each naming the file and the reason), notes on how runs were
split, and where the run directories were found (`Found`: run directories
are found at any depth, e.g. `runs/study/<workload>/...`, see
`records.find_run_dirs`). `scoring.leaderboard` ranks what it returns.

Whose failure. A run that recorded a time to target counts with that time
whatever happened after it (see `scores.run_score`). Otherwise only the
optimizer's own failures are scored, as infinite: diverged, budget
exhausted, interrupted before the target, and an error inside the
submission's update (`summary.error_kind` submission; an error of a record
without an error kind counts so too). An error of the set-up (before the
first update: missing data, bad flags, a submission that does not load) or
of the harness (evaluation, probe, checkpoint) says nothing about the
optimizer: such a run is skipped, with the error, not counted as failed.

Names. A submission is identified by (name, baseline, source SHA-256), so a
user's file `adam.py` is never pooled with the baseline `adam`: a baseline
shows its name, a file `name (file 1a2b3c4d)` (and when two versions of a
baseline's code ran, each shows `name (baseline <sha>)`). Runs that are not
trials of one study are never ranked as one:
  * a workload whose runs differ in their settings (meta.json `workload`,
    including its details) or data source (`config.data.source`) becomes
    several workloads: the settings most runs share keep the name, the others
    are named `workload [what differs]`;
  * runs of one submission on one workload with different batch regimes
    (`regime`) are split the same way, the workload's default regime (else
    the most common) keeping the plain name: `adam [batch_size=32]`.
Each split is listed in `Leaderboard.notes`.

Duplicates. Two copies of one trial (same workload, submission, study and
trial, e.g. in two experiment directories) keep one, chosen by: a finished
run over one that has not finished, over a harness error, over a set-up
error (or an error at step 0 without an error kind) or records that
contradict themselves; then the later `start_time`; then the first path in
sorted order. The choice never depends on the order of the experiment
directories; every copy dropped is listed.

Bad input never stops the build. Skipped, each with the file and the reason
(`Skipped`, logged with `absl.logging.warning`): a run directory whose
meta.json or summary.json is unusable; a missing experiment directory (all of
them missing is an error); a run still running (no summary.json, its lock
held: "running at step N") or killed (no summary.json, no live holder:
"killed at step N"); a set-up or harness error (above); a run whose
summary.json disagrees with metrics.jsonl (see `scores.run_score`); a
dropped duplicate. A truncated or corrupt JSONL line is skipped while the
rest of the run is used. A run that has not finished is left out rather
than counted as a failed trial, because it may still be resumed and reach
the target.
"""


from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import math
import os
import pathlib
from typing import Any, Iterable, Sequence

from absl import logging

from harness import records
from scoring import aeos
from scoring import curves
from scoring import run_names
from scoring import scores

class SkipKind(str, enum.Enum):
  """Why a run, or a part of one, was left out."""

  UNREADABLE = 'unreadable'  # meta.json or summary.json unusable.
  MISSING = 'missing'  # An experiment directory that does not exist.
  RUNNING = 'running'  # No summary yet; a live process holds its lock.
  KILLED = 'killed'  # No summary and no live holder.
  DUPLICATE = 'duplicate'  # Another copy of the same trial was kept.
  INCONSISTENT = 'inconsistent'  # summary.json contradicts metrics.jsonl.
  PART = 'part'  # A line or a file; the rest of the run is used.
  SETUP_ERROR = 'set-up error'  # Failed before the first update.
  HARNESS_ERROR = 'harness error'  # Evaluation, probe or checkpoint failed.


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A run or part of a run left out of the statistics.

  Attributes:
    path: the run directory (or the experiment directory).
    reason: why, in words, naming the file at fault.
    whole_run: True when the run was left out; False when only a line or a
      file of it was.
    kind: the reason's category.
  """

  path: str
  reason: str
  whole_run: bool
  kind: SkipKind = SkipKind.UNREADABLE


@dataclasses.dataclass(frozen=True)
class RunEntry:
  """One scored run: its time to target and its AEoS statistics.

  `workload` and `submission` are the names the leaderboard ranks it under
  (see the module docstring); `submission_name`, `baseline` and
  `source_sha256` are its meta.json identity; `config` its meta.json flags
  and `host` the host name it ran on.
  """

  path: str
  workload: str
  submission: str
  study: int
  trial: int
  device_kind: str
  status: records.Status
  time_to_target_s: float
  steps_to_target: int | None
  seed: Any
  hparams: dict[str, Any]
  final_step: int
  error: str | None
  aeos: aeos.AeosStats
  series: aeos.CurvatureSeries
  submission_name: str = ''
  baseline: bool = False
  source_sha256: str = ''
  curve: curves.TrainingCurve = curves.TrainingCurve()
  config: dict[str, Any] = dataclasses.field(default_factory=dict)
  host: str = ''


def _skipped(skipped: list[Skipped], path: Any, reason: str,
             kind: SkipKind) -> None:
  logging.warning('Skipped %s: %s', path, reason)
  skipped.append(Skipped(path=str(path), reason=reason,
                         whole_run=kind is not SkipKind.PART, kind=kind))


def _entry(record: records.RunRecord, workload: str,
           submission: str) -> RunEntry:
  """Scores one run; raises RecordError when it cannot be scored."""
  score = scores.run_score(record)
  summary, facts = record.summary, record.meta.submission
  return RunEntry(
      path=str(record.path), workload=workload, submission=submission,
      study=record.study, trial=record.trial,
      device_kind=record.device_kind, status=record.status,
      time_to_target_s=score.time_to_target_s,
      steps_to_target=score.steps_to_target, seed=record.meta.seed,
      hparams=dict(record.meta.hparams), final_step=summary.final_step,
      error=summary.error,
      aeos=aeos.aeos_stats(record.curvature, record.summary),
      series=aeos.curvature_series(record.curvature),
      submission_name=facts.name, baseline=facts.baseline,
      source_sha256=facts.source_sha256,
      curve=curves.training_curve(record.metrics, record.curvature,
                                  record.meta.workload.target_metric),
      config=dict(record.meta.config),
      host=str(record.meta.host.get('hostname', '')))


# ---- Choosing the runs that count ----


@dataclasses.dataclass(frozen=True)
class _Candidate:
  """A readable run with its leaderboard names: its entry, or why not."""

  record: records.RunRecord
  workload: str
  submission: str
  entry: RunEntry | None
  problem: tuple[str, SkipKind] | None

  @property
  def key(self) -> tuple[str, str, int, int]:
    return (self.workload, self.submission, self.record.study,
            self.record.trial)

  @property
  def tier(self) -> int:
    """Precedence among copies of a trial (see `_TIERS`)."""
    if self.entry is not None:
      summary = self.record.summary
      early_error = (summary.status is records.Status.ERROR and
                     summary.final_step == 0)
      return 0 if early_error else 3
    return _PROBLEM_TIERS.get(self.problem[1], 2)

  @property
  def started(self) -> float:
    """meta.json start_time as a POSIX time; -inf when unreadable."""
    try:
      when = datetime.datetime.fromisoformat(self.record.meta.start_time)
      if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
      return when.timestamp()
    except (ValueError, OverflowError, OSError):
      return -math.inf


_TIERS = {3: 'a finished run', 2: 'a run that has not finished',
          1: 'a harness error', 0: 'a set-up error or inconsistent records'}
# Runs left out for what they recorded; any other problem (running, killed,
# an unusable summary) is a run that has not finished.
_PROBLEM_TIERS = {SkipKind.HARNESS_ERROR: 1, SkipKind.SETUP_ERROR: 0,
                  SkipKind.INCONSISTENT: 0}
_NOT_THE_OPTIMIZERS = {
    records.ErrorKind.SETUP: (
        SkipKind.SETUP_ERROR, 'set-up error before the first update'),
    records.ErrorKind.HARNESS: (
        SkipKind.HARNESS_ERROR,
        "harness error (evaluation, probe or checkpoint), not the "
        "optimizer's"),
}


def _not_the_optimizers(record: records.RunRecord, entry: RunEntry
                        ) -> tuple[str, SkipKind] | None:
  """Why an error run is skipped rather than failed; None when it counts.

  A run that recorded a time to target counts whatever came after.
  """
  summary = record.summary
  if (entry.status is not records.Status.ERROR or
      math.isfinite(entry.time_to_target_s) or
      summary.error_kind not in _NOT_THE_OPTIMIZERS):
    return None
  kind, whose = _NOT_THE_OPTIMIZERS[summary.error_kind]
  error = summary.error or 'no error message recorded'
  return (f'{whose}: {error} ({record.path / records.SUMMARY_FILE}, step '
          f'{summary.final_step})', kind)


def _unfinished(record: records.RunRecord) -> tuple[str, SkipKind]:
  """Why a run without a usable summary is left out."""
  summary_file = str(record.path / records.SUMMARY_FILE)
  bad = [w for w in record.warnings if w.startswith(summary_file)]
  if bad:
    return bad[0], SkipKind.UNREADABLE
  step = record.last_step
  at = f'at step {step}' if step is not None else 'before recording a step'
  if record.status is records.Status.RUNNING:
    holder = record.lock_holder[:200]
    return (f'running {at}: no {records.SUMMARY_FILE} yet and its lock is '
            f'held by {holder}', SkipKind.RUNNING)
  return (f'killed {at}: no {summary_file} and no live process holds its '
          'lock', SkipKind.KILLED)


def _candidate(record: records.RunRecord, workload: str,
               submission: str) -> _Candidate:
  if record.summary is None:
    return _Candidate(record, workload, submission, None,
                      _unfinished(record))
  try:
    entry = _entry(record, workload, submission)
  except records.RecordError as e:
    reason = str(e)
    if record.warnings:  # Often the cause: a lost line of metrics.jsonl.
      reason += (f'; {len(record.warnings)} parts of the run were unusable, '
                 f'the first: {record.warnings[0]}')
    return _Candidate(record, workload, submission, None,
                      (reason, SkipKind.INCONSISTENT))
  skip = _not_the_optimizers(record, entry)
  if skip is not None:
    return _Candidate(record, workload, submission, None, skip)
  return _Candidate(record, workload, submission, entry, None)


def _why_kept(kept: _Candidate, dropped: _Candidate) -> str:
  if kept.tier != dropped.tier:
    return f'{_TIERS[kept.tier]} over {_TIERS[dropped.tier]}'
  if kept.started != dropped.started:
    return 'the later start_time'
  return 'the first path in sorted order'


def _deduplicate(candidates: Iterable[_Candidate], skipped: list[Skipped]
                 ) -> list[_Candidate]:
  """One candidate per trial (see the module docstring); drops the rest."""
  copies: dict[tuple[str, str, int, int], list[_Candidate]] = (
      collections.defaultdict(list))
  for candidate in candidates:
    copies[candidate.key].append(candidate)
  kept = []
  for key in sorted(copies):
    ordered = sorted(copies[key], key=lambda c: str(c.record.path))
    best = max(ordered, key=lambda c: (c.tier, c.started))
    kept.append(best)
    for other in ordered:
      if other is not best:
        _skipped(skipped, other.record.path,
                 f'duplicate of {best.record.path} (same workload, '
                 f'submission, study and trial); kept '
                 f'{_why_kept(best, other)}', SkipKind.DUPLICATE)
  return kept


@dataclasses.dataclass(frozen=True)
class Found:
  """Run directories found in one folder of an experiment directory.

  Attributes:
    experiment_dir: the experiment directory as given.
    folder: the folder holding `<workload>/<submission>/study_S/trial_T/`,
      relative to `experiment_dir` ('.' for the directory itself).
    runs: run directories found there, scored or skipped.
  """

  experiment_dir: str
  folder: str
  runs: int


def _folder(path: pathlib.Path, experiment_dir: pathlib.Path) -> str:
  """The folder above a run's `<workload>/`, relative to the experiment
  directory (a run directory not laid out so: its parent)."""
  depth = len(path.relative_to(experiment_dir).parts)
  holder = path.parents[3] if depth >= 4 else path.parent
  return holder.relative_to(experiment_dir).as_posix() or '.'


def _read_all(experiment_dirs: Sequence[str | os.PathLike],
              skipped: list[Skipped]
              ) -> tuple[list[records.RunRecord], list[Found]]:
  """Every readable run, each directory once, and where they were found;
  the rest skipped."""
  missing = [d for d in experiment_dirs if not pathlib.Path(d).is_dir()]
  if experiment_dirs and len(missing) == len(experiment_dirs):
    raise FileNotFoundError(
        'experiment directory not found: ' + ', '.join(map(str, missing)))
  for directory in missing:
    _skipped(skipped, directory, f'{directory}: experiment directory not '
             'found', SkipKind.MISSING)
  runs, seen, found = [], set(), []
  for directory in experiment_dirs:
    folders: collections.Counter[str] = collections.Counter()
    for path in records.find_run_dirs(directory):
      real = os.path.realpath(path)
      if real in seen:
        continue  # The same directory given twice.
      seen.add(real)
      folders[_folder(path, pathlib.Path(directory))] += 1
      try:
        runs.append(records.read_run(path))
      except records.RecordError as e:
        _skipped(skipped, path, str(e), SkipKind.UNREADABLE)
    found += [Found(str(directory), folder, n)
              for folder, n in sorted(folders.items())]
  return runs, found


@dataclasses.dataclass(frozen=True)
class LoadedRuns:
  """The runs that count, with what was left out and why.

  Attributes:
    runs: (entry, meta) per scored run, by path.
    skipped: what was left out, by path.
    notes: the splits made (see the module docstring).
    found: where run directories were found, by experiment directory and
      folder.
  """

  runs: tuple[tuple[RunEntry, records.Meta], ...]
  skipped: tuple[Skipped, ...]
  notes: tuple[str, ...]
  found: tuple[Found, ...] = ()


def load_runs(experiment_dirs: Sequence[str | os.PathLike]) -> LoadedRuns:
  """Reads, names, deduplicates and scores every run under the directories.

  Args:
    experiment_dirs: directories holding `<workload>/<submission>/study_S/
      trial_T/` run directories, at any depth.

  Returns:
    The scored runs and what was skipped; neither depends on the order of
    `experiment_dirs`.

  Raises:
    FileNotFoundError: none of the experiment directories exists.
  """
  skipped: list[Skipped] = []
  runs, found = _read_all(experiment_dirs, skipped)
  names, notes = run_names.names(runs)
  kept = _deduplicate((_candidate(r, *n) for r, n in zip(runs, names)),
                      skipped)
  loaded = []
  for candidate in kept:
    if candidate.entry is None:
      _skipped(skipped, candidate.record.path, *candidate.problem)
      continue
    for warning in candidate.record.warnings:
      _skipped(skipped, candidate.record.path, warning, SkipKind.PART)
    loaded.append((candidate.entry, candidate.record.meta))
  return LoadedRuns(
      runs=tuple(sorted(loaded, key=lambda item: item[0].path)),
      skipped=tuple(sorted(skipped, key=lambda s: (s.path, s.reason))),
      notes=tuple(notes),
      found=tuple(sorted(found, key=lambda f: (f.experiment_dir, f.folder))))
