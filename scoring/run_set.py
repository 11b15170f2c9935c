"""Which runs a leaderboard counts, under which names, and why not the rest.

`load_runs(experiment_dirs)` reads every run directory through
`harness.records` and returns the scored runs (`RunEntry`), what was skipped
(`Skipped`, each naming the file and the reason) and notes on how runs were
split. `scoring.leaderboard` ranks what it returns.

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
run over one that has not finished, over a set-up error (status error at
step 0) or records that contradict themselves; then the later `start_time`;
then the first path in sorted order. The choice never depends on the order
of the experiment directories; every copy dropped is listed.

Bad input never stops the build. Skipped, each with the file and the reason
(`Skipped`, logged with `absl.logging.warning`): a run directory whose
meta.json or summary.json is unusable; a missing experiment directory (all of
them missing is an error); a run still running (no summary.json, its lock
held: "running at step N") or killed (no summary.json, no live holder:
"killed at step N"); a run whose summary.json disagrees with metrics.jsonl
(see `scores.run_score`); a dropped duplicate. A truncated or corrupt JSONL
line is skipped while the rest of the run is used. A run that has not
finished is left out rather than counted as a failed trial, because it may
still be resumed and reach the target.
"""


from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import hashlib
import json
import math
import os
import pathlib
from typing import Any, Hashable, Iterable, Mapping, Sequence, TypeVar

from absl import logging

from harness import records
from scoring import aeos
from scoring import curves
from scoring import scores

_K = TypeVar('_K', bound=Hashable)


class SkipKind(str, enum.Enum):
  """Why a run, or a part of one, was left out."""

  UNREADABLE = 'unreadable'  # meta.json or summary.json unusable.
  MISSING = 'missing'  # An experiment directory that does not exist.
  RUNNING = 'running'  # No summary yet; a live process holds its lock.
  KILLED = 'killed'  # No summary and no live holder.
  DUPLICATE = 'duplicate'  # Another copy of the same trial was kept.
  INCONSISTENT = 'inconsistent'  # summary.json contradicts metrics.jsonl.
  PART = 'part'  # A line or a file; the rest of the run is used.


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


# ---- Names: identities and splits ----


def _canonical(value: Any) -> str:
  return json.dumps(value, sort_keys=True, default=str)


def _flat(value: Any, prefix: str = '') -> dict[str, str]:
  """Nested JSON data as {dotted key: canonical JSON of the leaf}."""
  if isinstance(value, dict) and value:
    out = {}
    for key, item in value.items():
      out.update(_flat(item, f'{prefix}{key}.'))
    return out
  return {prefix.rstrip('.'): _canonical(value)}


def _difference(variant: Mapping[str, str], plain: Mapping[str, str]) -> str:
  """`key=value, ...` where `variant` differs from `plain`, shortened."""
  keys = sorted(k for k in variant.keys() | plain.keys()
                if variant.get(k) != plain.get(k))
  parts = [f'{k}={variant.get(k, "absent")[:24]}' for k in keys]
  text = ', '.join(parts)
  return text if len(text) <= 72 else text[:71] + '…'


def _unique(labels: dict[_K, str]) -> dict[_K, str]:
  """`labels` with a short hash of the key added where two coincide."""
  counts = collections.Counter(labels.values())
  return {k: label if counts[label] == 1 else
          f'{label} #{hashlib.sha256(repr(k).encode()).hexdigest()[:6]}'
          for k, label in labels.items()}


def _split(base: str, variants: Sequence[tuple[str, dict[str, str], bool]]
           ) -> dict[str, str]:
  """A label per variant key of one name.

  Args:
    base: the name.
    variants: (key, flattened settings, preferred) per run.

  Returns:
    key -> label: the preferred (else the most common, else the first)
    variant keeps `base`; the others are `base [what differs]`.
  """
  counts = collections.Counter(key for key, _, _ in variants)
  flat = {key: settings for key, settings, _ in variants}
  preferred = {key for key, _, chosen in variants if chosen}
  if len(flat) == 1:
    return {key: base for key in flat}
  plain = min(flat, key=lambda k: (k not in preferred, -counts[k], k))
  return _unique({k: base if k == plain else
                  f'{base} [{_difference(flat[k], flat[plain])}]'
                  for k in flat})


def _split_note(what: str, labels: Mapping[str, str],
                counts: Mapping[str, int]) -> str:
  shown = '; '.join(f'{labels[k]!r} ({counts[k]} runs)'
                    for k in sorted(labels, key=labels.get))
  return f'{what} are ranked apart: {shown}.'


def _data_source(meta: records.Meta) -> Any:
  data = meta.config.get('data')
  return data.get('source') if isinstance(data, dict) else None


def _workload_labels(runs: Sequence[records.RunRecord]
                     ) -> tuple[list[str], list[str]]:
  """Each run's workload name, split where settings differ; and notes."""
  keys = [_canonical([r.meta.workload.to_json(), _data_source(r.meta)])
          for r in runs]
  by_name: dict[str, list[int]] = collections.defaultdict(list)
  for i, run in enumerate(runs):
    by_name[run.workload].append(i)
  names, notes = [''] * len(runs), []
  for name in sorted(by_name):
    members = by_name[name]
    labels = _split(name, [
        (keys[i], _flat({**runs[i].meta.workload.to_json(),
                         'data.source': _data_source(runs[i].meta)}), False)
        for i in members])
    for i in members:
      names[i] = labels[keys[i]]
    if len(labels) > 1:
      notes.append(_split_note(
          f'Runs of workload {name!r} with different settings', labels,
          collections.Counter(keys[i] for i in members)))
  return names, notes


def _identity(meta: records.Meta) -> tuple[str, bool, str]:
  facts = meta.submission
  return facts.name, facts.baseline, facts.source_sha256


def _identity_labels(identities: Iterable[tuple[str, bool, str]]
                     ) -> tuple[dict[tuple[str, bool, str], str], list[str]]:
  """A name per submission identity, and a note per name shared."""
  by_name = collections.defaultdict(list)
  for identity in sorted(set(identities)):
    by_name[identity[0]].append(identity)
  labels, notes = {}, []
  for name, identities_of_name in by_name.items():
    baselines = sum(baseline for _, baseline, _ in identities_of_name)
    for identity in identities_of_name:
      _, baseline, sha = identity
      labels[identity] = name if baseline and baselines == 1 else (
          f'{name} ({"baseline" if baseline else "file"} {sha[:8] or "?"})')
    if len(identities_of_name) > 1:
      notes.append(
          f'{len(identities_of_name)} different submissions are named '
          f'{name!r} (a baseline and files, or versions of their code, told '
          'apart by source SHA-256); they are ranked apart: ' +
          ', '.join(repr(labels[i]) for i in identities_of_name) + '.')
  return _unique(labels), notes


def _names(runs: Sequence[records.RunRecord]
           ) -> tuple[list[tuple[str, str]], list[str]]:
  """(workload, submission) names per run, and notes on every split."""
  workloads, notes = _workload_labels(runs)
  identity_labels, identity_notes = _identity_labels(
      _identity(r.meta) for r in runs)
  by_cell: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
  for i, run in enumerate(runs):
    by_cell[(workloads[i], identity_labels[_identity(run.meta)])].append(i)
  submissions = [''] * len(runs)
  for (workload, base), members in sorted(by_cell.items()):
    keys = {i: _canonical(runs[i].meta.regime.to_json()) for i in members}
    labels = _split(base, [
        (keys[i], _flat(runs[i].meta.regime.to_json()),
         runs[i].meta.regime == runs[i].meta.workload.default_regime)
        for i in members])
    for i in members:
      submissions[i] = labels[keys[i]]
    if len(labels) > 1:
      notes.append(_split_note(
          f'Runs of {base!r} on {workload!r} with different batch regimes',
          labels, collections.Counter(keys.values())))
  return list(zip(workloads, submissions)), identity_notes + notes


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
    """Precedence among copies of a trial: 2 finished, 1 not finished, 0 a
    set-up error or records that contradict themselves."""
    summary = self.record.summary
    if self.entry is None:
      return 1 if summary is None else 0
    setup_error = (summary.status is records.Status.ERROR and
                   summary.final_step == 0)
    return 0 if setup_error else 2

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


_TIERS = {2: 'a finished run', 1: 'a run that has not finished',
          0: 'a set-up error or inconsistent records'}


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


def _read_all(experiment_dirs: Sequence[str | os.PathLike],
              skipped: list[Skipped]) -> list[records.RunRecord]:
  """Every readable run, each directory once; the rest skipped."""
  missing = [d for d in experiment_dirs if not pathlib.Path(d).is_dir()]
  if experiment_dirs and len(missing) == len(experiment_dirs):
    raise FileNotFoundError(
        'experiment directory not found: ' + ', '.join(map(str, missing)))
  for directory in missing:
    _skipped(skipped, directory, f'{directory}: experiment directory not '
             'found', SkipKind.MISSING)
  runs, seen = [], set()
  for directory in experiment_dirs:
    for path in records.find_run_dirs(directory):
      real = os.path.realpath(path)
      if real in seen:
        continue  # The same directory given twice.
      seen.add(real)
      try:
        runs.append(records.read_run(path))
      except records.RecordError as e:
        _skipped(skipped, path, str(e), SkipKind.UNREADABLE)
  return runs


@dataclasses.dataclass(frozen=True)
class LoadedRuns:
  """The runs that count, with what was left out and why.

  Attributes:
    runs: (entry, meta) per scored run, by path.
    skipped: what was left out, by path.
    notes: the splits made (see the module docstring).
  """

  runs: tuple[tuple[RunEntry, records.Meta], ...]
  skipped: tuple[Skipped, ...]
  notes: tuple[str, ...]


def load_runs(experiment_dirs: Sequence[str | os.PathLike]) -> LoadedRuns:
  """Reads, names, deduplicates and scores every run under the directories.

  Args:
    experiment_dirs: directories holding `<workload>/<submission>/study_S/
      trial_T/` run directories.

  Returns:
    The scored runs and what was skipped; neither depends on the order of
    `experiment_dirs`.

  Raises:
    FileNotFoundError: none of the experiment directories exists.
  """
  skipped: list[Skipped] = []
  runs = _read_all(experiment_dirs, skipped)
  names, notes = _names(runs)
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
      notes=tuple(notes))
