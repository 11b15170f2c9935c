"""What changed between two leaderboard reports.

Reads each report's leaderboard.json (REPORT may be the report directory or
the JSON file) and lists, per ranking group (matched by name, i.e. device
kind): rank and score changes, per-workload time ratios (after / before),
changes of the AEoS statistics of each cell's representative run, and runs
whose configuration or host changed: `compare_reports(before, after)` and
`format_comparison(comparison)`. The entry point is
`python -m scoring.compare --before=REPORT_A --after=REPORT_B`.

A submission (or a cell) with runs in only one report is "new" or "gone",
never "newly reached" or "no longer reached": those say that the same
submission's runs changed outcome. A rank that moved only because a tie
broke differently is not a change (see `RankChange.moved`). Runs are matched
by (group, workload, submission, study, trial); one whose meta.json flags,
hyperparameters or host differ between the reports is listed with what
differs, except flags that do not change results (`RESULT_NEUTRAL_FLAGS`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Mapping, Sequence

from scoring import report_files

AEOS_STATISTICS = ('onset_step', 'ratio_median', 'ratio_iqr',
                   'fraction_in_band', 'sharpness_growth', 'solution_step',
                   'sharpness_at_solution',
                   'preconditioned_sharpness_at_solution')


# Scores closer than this are equal: a tie, and no change of score.
SCORE_TOLERANCE = 1e-9

# meta.json flags that say where and how verbosely a run wrote, not what it
# computed; a difference in them is not a changed run.
RESULT_NEUTRAL_FLAGS = frozenset({
    'experiment_dir', 'log_every', 'quiet', 'overwrite', 'resume',
    'checkpoint_every', 'checkpoint_every_s', 'eval_resident_gb',
    'tensorboard'})


@dataclasses.dataclass(frozen=True)
class RankChange:
  """A submission's standing in A and in B (None where absent).

  `moved` is the rule for a rank change: the submission is in both reports
  and either its score changed by more than `SCORE_TOLERANCE`, or the set of
  submissions strictly better than it (score higher by more than
  `SCORE_TOLERANCE`) changed. Competition ranks of equal scores depend on
  which side of the tolerance a rounding falls, so rank numbers alone can
  differ (2, 2 before; 2, 3 after) when nothing changed; that is not a move.
  """

  group: str
  submission: str
  rank_a: int | None
  rank_b: int | None
  score_a: float | None
  score_b: float | None
  moved: bool = False

  @property
  def status(self) -> str:
    """'new', 'gone' or 'both': in which reports the submission stands."""
    if self.rank_a is None:
      return 'new'
    return 'gone' if self.rank_b is None else 'both'

  @property
  def score_delta(self) -> float | None:
    if self.score_a is None or self.score_b is None:
      return None
    return self.score_b - self.score_a


@dataclasses.dataclass(frozen=True)
class TimeChange:
  """Per-workload time to target in A and B (None: not reached/absent).

  `in_a` and `in_b` say whether the submission has runs on the workload in
  each report; a time of None with runs is a failure to reach the target.
  """

  group: str
  workload: str
  submission: str
  time_a: float | None
  time_b: float | None
  in_a: bool = True
  in_b: bool = True

  @property
  def ratio(self) -> float | None:
    """time_b / time_a; below 1 means B is faster."""
    if self.time_a is None or self.time_b is None or self.time_a == 0:
      return None
    return self.time_b / self.time_a


@dataclasses.dataclass(frozen=True)
class AeosChange:
  """One AEoS statistic of one cell that differs between A and B."""

  group: str
  workload: str
  submission: str
  statistic: str
  value_a: float | None
  value_b: float | None


@dataclasses.dataclass(frozen=True)
class ValueChange:
  """One setting of a run that differs: its name, before and after."""

  name: str
  value_a: Any
  value_b: Any


@dataclasses.dataclass(frozen=True)
class RunChange:
  """A run in both reports whose flags, hyperparameters or host differ.

  Attributes:
    group, workload, submission, study, trial: the run matched.
    flags: meta.json flags that differ (nested ones dotted, e.g.
      `curvature.every`), without `RESULT_NEUTRAL_FLAGS`.
    hparams: hyperparameters that differ.
    host: the host name, when it differs.
  """

  group: str
  workload: str
  submission: str
  study: int
  trial: int
  flags: tuple[ValueChange, ...]
  hparams: tuple[ValueChange, ...]
  host: ValueChange | None


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Everything that changed from report A to report B."""

  report_a: str
  report_b: str
  groups_only_a: tuple[str, ...]
  groups_only_b: tuple[str, ...]
  ranks: tuple[RankChange, ...]
  times: tuple[TimeChange, ...]
  aeos: tuple[AeosChange, ...]
  runs: tuple[RunChange, ...] = ()


class ReportError(ValueError):
  """A report that cannot be compared: missing, corrupt or not a leaderboard."""


def _number(value: Any) -> bool:
  """A JSON number a comparison can do arithmetic on, or null."""
  if value is None or isinstance(value, float):
    return True
  return (isinstance(value, int) and not isinstance(value, bool)
          and abs(value) < 2**63)


def _of(kind: type) -> Any:
  return lambda value: isinstance(value, kind)


# The parts of leaderboard.json a comparison reads, each field's check.
_GROUP_FIELDS = {'name': _of(str), 'standings': _of(list),
                 'cells': _of(list)}
_STANDING_FIELDS = {'submission': _of(str), 'rank': _number,
                    'score': _number}
_CELL_FIELDS = {'workload': _of(str), 'submission': _of(str),
                'time_s': _number, 'num_runs': _number,
                'aeos': lambda v: v is None or isinstance(v, dict) and all(
                    _number(v.get(k)) for k in AEOS_STATISTICS)}


def _check_items(items: list[Any], fields: Mapping[str, Any],
                 where: str) -> None:
  """Each item an object whose fields pass their checks; else ReportError."""
  for i, item in enumerate(items):
    if not isinstance(item, dict):
      raise ReportError(f'{where}[{i}] is not an object')
    for name, check in fields.items():
      if not check(item.get(name)):
        raise ReportError(f'{where}[{i}].{name} is missing or has the wrong '
                          'type')


def _index(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _optional(kind: type) -> Any:
  return lambda value: value is None or isinstance(value, kind)


_RUN_FIELDS = {'workload': _of(str), 'submission': _of(str),
               'study': _index, 'trial': _index, 'device_kind': _of(str),
               'hparams': _optional(dict), 'config': _optional(dict),
               'host': _optional(str)}


def _check_structure(data: dict[str, Any]) -> None:
  groups = data.get('groups')
  if not isinstance(groups, list):
    raise ReportError('groups is missing or not a list')
  _check_items(groups, _GROUP_FIELDS, 'groups')
  runs = data.get('runs', [])
  if not isinstance(runs, list):
    raise ReportError('runs is not a list')
  _check_items(runs, _RUN_FIELDS, 'runs')
  for i, group in enumerate(groups):
    _check_items(group['standings'], _STANDING_FIELDS,
                 f'groups[{i}].standings')
    _check_items(group['cells'], _CELL_FIELDS, f'groups[{i}].cells')


def load_report(path: str | os.PathLike) -> dict[str, Any]:
  """A report's leaderboard.json, checked to hold what a comparison reads.

  Raises:
    ReportError: no readable leaderboard.json there, or not a leaderboard of
      the expected schema; the message names the file.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / report_files.JSON_FILE
  try:
    data = json.loads(path.read_text(encoding='utf-8'))
  except FileNotFoundError:
    raise ReportError(f'{path}: no such file (expected a report directory or '
                      f'its {report_files.JSON_FILE})') from None
  except (OSError, UnicodeDecodeError) as e:
    raise ReportError(f'{path}: cannot be read ({e})') from None
  except (ValueError, RecursionError) as e:
    raise ReportError(f'{path}: not valid JSON ({e})') from None
  schema = data.get('schema') if isinstance(data, dict) else None
  if schema != report_files.JSON_SCHEMA:
    raise ReportError(f'{path}: expected a leaderboard with schema '
                      f'{report_files.JSON_SCHEMA!r}, got {schema!r:.60}')
  try:
    _check_structure(data)
  except ReportError as e:
    raise ReportError(f'{path}: not a usable leaderboard: {e}') from None
  return data


def _changed(a: Any, b: Any, *, abs_tol: float = 1e-12) -> bool:
  if a is None or b is None:
    return a is not b
  return not math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


def _strictly_better(scores: Mapping[str, Any], submission: str
                     ) -> frozenset[str]:
  own = scores[submission]
  return frozenset(t for t, score in scores.items()
                   if score is not None and (own is None or
                                             score - own > SCORE_TOLERANCE))


def _group_ranks(name: str, a: Mapping[str, Any], b: Mapping[str, Any]
                 ) -> list[RankChange]:
  sa = {s['submission']: s for s in a['standings']}
  sb = {s['submission']: s for s in b['standings']}
  scores_a = {s: v['score'] for s, v in sa.items()}
  scores_b = {s: v['score'] for s, v in sb.items()}
  changes = []
  for s in sorted(sa.keys() | sb.keys()):
    moved = s in sa and s in sb and (
        _changed(scores_a[s], scores_b[s], abs_tol=SCORE_TOLERANCE) or
        _strictly_better(scores_a, s) != _strictly_better(scores_b, s))
    changes.append(RankChange(
        group=name, submission=s,
        rank_a=sa.get(s, {}).get('rank'), rank_b=sb.get(s, {}).get('rank'),
        score_a=scores_a.get(s), score_b=scores_b.get(s), moved=moved))
  return changes


def _has_runs(cell: Mapping[str, Any] | None) -> bool:
  """Whether a cell stands for runs (a cell without any counts as failed)."""
  return cell is not None and cell.get('num_runs') != 0


def _group_cells(name: str, a: Mapping[str, Any], b: Mapping[str, Any]
                 ) -> tuple[list[TimeChange], list[AeosChange]]:
  ca = {(c['workload'], c['submission']): c for c in a['cells']}
  cb = {(c['workload'], c['submission']): c for c in b['cells']}
  times, changes = [], []
  for key in sorted(ca.keys() | cb.keys()):
    cell_a, cell_b = ca.get(key), cb.get(key)
    in_a, in_b = _has_runs(cell_a), _has_runs(cell_b)
    cell_a, cell_b = cell_a or {}, cell_b or {}
    times.append(TimeChange(name, *key, cell_a.get('time_s'),
                            cell_b.get('time_s'), in_a=in_a, in_b=in_b))
    aeos_a, aeos_b = cell_a.get('aeos') or {}, cell_b.get('aeos') or {}
    changes += [AeosChange(name, *key, stat, aeos_a.get(stat),
                           aeos_b.get(stat)) for stat in AEOS_STATISTICS
                if _changed(aeos_a.get(stat), aeos_b.get(stat))]
  return times, changes


def _flat(settings: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """Nested settings as dotted names: {'curvature': {'every': 5}} ->
  {'curvature.every': 5}."""
  flat = {}
  for key, value in settings.items():
    if isinstance(value, dict) and value:
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _differences(a: Mapping[str, Any], b: Mapping[str, Any],
                 ignored: frozenset[str] = frozenset()
                 ) -> tuple[ValueChange, ...]:
  a, b = _flat(a), _flat(b)
  names = sorted(n for n in a.keys() | b.keys()
                 if n.split('.', 1)[0] not in ignored)
  return tuple(ValueChange(n, a.get(n), b.get(n)) for n in names
               if a.get(n) != b.get(n))


def _runs_by_key(data: Mapping[str, Any]
                 ) -> dict[tuple[str, str, str, int, int], Mapping[str, Any]]:
  """Runs by (group, workload, submission, study, trial); the first wins."""
  names = [g['name'] for g in data['groups']]
  keyed: dict[tuple[str, str, str, int, int], Mapping[str, Any]] = {}
  for run in data.get('runs', []):
    # A mixed-hardware report has one group for every device kind.
    group = (run['device_kind'] if run['device_kind'] in names or
             len(names) != 1 else names[0])
    keyed.setdefault((group, run['workload'], run['submission'],
                      run['study'], run['trial']), run)
  return keyed


def _run_changes(a: Mapping[str, Any], b: Mapping[str, Any]
                 ) -> list[RunChange]:
  runs_a, runs_b = _runs_by_key(a), _runs_by_key(b)
  changes = []
  for key in sorted(runs_a.keys() & runs_b.keys()):
    run_a, run_b = runs_a[key], runs_b[key]
    flags = _differences(run_a.get('config') or {}, run_b.get('config') or {},
                         RESULT_NEUTRAL_FLAGS)
    hparams = _differences(run_a.get('hparams') or {},
                           run_b.get('hparams') or {})
    host_a, host_b = run_a.get('host') or '', run_b.get('host') or ''
    host = ValueChange('host', host_a, host_b) if host_a != host_b else None
    if flags or hparams or host:
      changes.append(RunChange(*key, flags=flags, hparams=hparams, host=host))
  return changes


def compare_leaderboards(a: Mapping[str, Any], b: Mapping[str, Any], *,
                         name_a: str = 'A', name_b: str = 'B') -> Comparison:
  """Compares two leaderboard.json objects (see `load_report`)."""
  groups_a = {g['name']: g for g in a['groups']}
  groups_b = {g['name']: g for g in b['groups']}
  ranks, times, changes = [], [], []
  for name in sorted(groups_a.keys() & groups_b.keys()):
    ranks += _group_ranks(name, groups_a[name], groups_b[name])
    t, c = _group_cells(name, groups_a[name], groups_b[name])
    times += t
    changes += c
  shared = groups_a.keys() & groups_b.keys()
  return Comparison(
      report_a=name_a, report_b=name_b,
      groups_only_a=tuple(sorted(groups_a.keys() - groups_b.keys())),
      groups_only_b=tuple(sorted(groups_b.keys() - groups_a.keys())),
      ranks=tuple(ranks), times=tuple(times), aeos=tuple(changes),
      runs=tuple(c for c in _run_changes(a, b) if c.group in shared))


def compare_reports(report_a: str | os.PathLike, report_b: str | os.PathLike
                    ) -> Comparison:
  """Compares two report directories (or their leaderboard.json files)."""
  return compare_leaderboards(load_report(report_a), load_report(report_b),
                              name_a=str(report_a), name_b=str(report_b))


def _num(value: Any, digits: int = 4) -> str:
  return '—' if value is None else f'{value:.{digits}g}'


def _rank_line(change: RankChange) -> str:
  if change.status != 'both':
    moved = f' ({change.status})'
  elif change.moved:
    steps = change.rank_b - change.rank_a
    moved = ('' if steps == 0 else
             f' ({"up" if steps < 0 else "down"} {abs(steps)})')
  else:
    moved = ('' if change.rank_a == change.rank_b else
             ' (tie broken differently; not a change)')
  delta = change.score_delta
  delta_text = '—' if delta is None else f'{delta:+.4f}'
  return (f'| {change.group} | {change.submission} | '
          f'{_num(change.rank_a)} → {_num(change.rank_b)}{moved} | '
          f'{_num(change.score_a)} → {_num(change.score_b)} | {delta_text} |')


def _time_verdict(change: TimeChange) -> str:
  if not change.in_a or not change.in_b:
    if change.in_a == change.in_b:
      return 'no runs in either'
    return 'new' if change.in_b else 'gone'
  if change.time_a is not None and change.time_b is not None:
    return '—' if change.ratio is None else f'×{change.ratio:.3g}'
  if change.time_a is None and change.time_b is None:
    return 'not reached in either'
  return 'newly reached' if change.time_a is None else 'no longer reached'


def _values(changes: Sequence[ValueChange]) -> str:
  return '; '.join(f'{c.name}: {_setting(c.value_a)} → {_setting(c.value_b)}'
                   for c in changes) or '—'


def _setting(value: Any) -> str:
  text = '(unset)' if value is None else json.dumps(value, default=str)
  return text.replace('|', '\\|')


def _run_lines(changes: Sequence[RunChange]) -> list[str]:
  if not changes:
    return ['(none)']
  lines = ['| group | workload | submission | study | trial | flags | '
           'hparams | host |', '|---|---|---|---|---|---|---|---|']
  lines += [f'| {c.group} | {c.workload} | {c.submission} | {c.study} | '
            f'{c.trial} | {_values(c.flags)} | {_values(c.hparams)} | '
            f'{_values([c.host] if c.host else [])} |' for c in changes]
  return lines


def format_comparison(comparison: Comparison) -> str:
  """The comparison as Markdown text."""
  lines = [f'# Changes from {comparison.report_a} to {comparison.report_b}',
           '']
  for label, groups in (('only in A', comparison.groups_only_a),
                        ('only in B', comparison.groups_only_b)):
    if groups:
      lines.append(f'Hardware groups {label}: {", ".join(groups)}')
  lines += ['', '## Ranks and scores', '',
            '| group | submission | rank A → B | score A → B | score delta |',
            '|---|---|---|---|---|']
  lines += [_rank_line(c) for c in comparison.ranks]
  lines += ['', '## Time to target (ratio B / A; below 1 is faster)', '',
            '| group | workload | submission | time A (s) | time B (s) | '
            'B / A |', '|---|---|---|---|---|---|']
  lines += [f'| {c.group} | {c.workload} | {c.submission} | '
            f'{_num(c.time_a)} | {_num(c.time_b)} | {_time_verdict(c)} |'
            for c in comparison.times]
  lines += ['', '## AEoS statistics that changed', '']
  if comparison.aeos:
    lines += ['| group | workload | submission | statistic | A | B |',
              '|---|---|---|---|---|---|']
    lines += [f'| {c.group} | {c.workload} | {c.submission} | {c.statistic} '
              f'| {_num(c.value_a)} | {_num(c.value_b)} |'
              for c in comparison.aeos]
  else:
    lines.append('(none)')
  lines += ['', '## Runs whose configuration or host changed', '',
            'Matched by group, workload, submission, study and trial; flags '
            'that do not change results (' +
            ', '.join(sorted(RESULT_NEUTRAL_FLAGS)) + ') are left out.', '']
  lines += _run_lines(comparison.runs)
  return '\n'.join(lines) + '\n'
