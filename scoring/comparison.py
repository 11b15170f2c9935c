"""What changed between two leaderboard reports.

Reads each report's leaderboard.json (REPORT may be the report directory or
the JSON file) and lists, per ranking group (matched by name, i.e. device
kind): rank and score changes, per-workload time ratios (B / A), and changes
of the AEoS statistics of each cell's representative run:
`compare_reports(report_a, report_b)` and `format_comparison(comparison)`.
The entry point is `python -m scoring.compare REPORT_A REPORT_B`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Mapping

from scoring import report_files

AEOS_STATISTICS = ('onset_step', 'ratio_median', 'ratio_iqr',
                   'fraction_in_band', 'sharpness_growth', 'solution_step',
                   'sharpness_at_solution',
                   'preconditioned_sharpness_at_solution')


@dataclasses.dataclass(frozen=True)
class RankChange:
  """A submission's standing in A and in B (None where absent)."""

  group: str
  submission: str
  rank_a: int | None
  rank_b: int | None
  score_a: float | None
  score_b: float | None

  @property
  def score_delta(self) -> float | None:
    if self.score_a is None or self.score_b is None:
      return None
    return self.score_b - self.score_a


@dataclasses.dataclass(frozen=True)
class TimeChange:
  """Per-workload time to target in A and B (None: not reached/absent)."""

  group: str
  workload: str
  submission: str
  time_a: float | None
  time_b: float | None

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
class Comparison:
  """Everything that changed from report A to report B."""

  report_a: str
  report_b: str
  groups_only_a: tuple[str, ...]
  groups_only_b: tuple[str, ...]
  ranks: tuple[RankChange, ...]
  times: tuple[TimeChange, ...]
  aeos: tuple[AeosChange, ...]


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
                'time_s': _number,
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


def _check_structure(data: dict[str, Any]) -> None:
  groups = data.get('groups')
  if not isinstance(groups, list):
    raise ReportError('groups is missing or not a list')
  _check_items(groups, _GROUP_FIELDS, 'groups')
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


def _changed(a: Any, b: Any) -> bool:
  if a is None or b is None:
    return a is not b
  return not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _group_ranks(name: str, a: Mapping[str, Any], b: Mapping[str, Any]
                 ) -> list[RankChange]:
  sa = {s['submission']: s for s in a['standings']}
  sb = {s['submission']: s for s in b['standings']}
  return [RankChange(
      group=name, submission=s,
      rank_a=sa.get(s, {}).get('rank'), rank_b=sb.get(s, {}).get('rank'),
      score_a=sa.get(s, {}).get('score'), score_b=sb.get(s, {}).get('score'))
          for s in sorted(sa.keys() | sb.keys())]


def _group_cells(name: str, a: Mapping[str, Any], b: Mapping[str, Any]
                 ) -> tuple[list[TimeChange], list[AeosChange]]:
  ca = {(c['workload'], c['submission']): c for c in a['cells']}
  cb = {(c['workload'], c['submission']): c for c in b['cells']}
  times, changes = [], []
  for key in sorted(ca.keys() | cb.keys()):
    cell_a, cell_b = ca.get(key, {}), cb.get(key, {})
    times.append(TimeChange(name, *key, cell_a.get('time_s'),
                            cell_b.get('time_s')))
    aeos_a, aeos_b = cell_a.get('aeos') or {}, cell_b.get('aeos') or {}
    changes += [AeosChange(name, *key, stat, aeos_a.get(stat),
                           aeos_b.get(stat)) for stat in AEOS_STATISTICS
                if _changed(aeos_a.get(stat), aeos_b.get(stat))]
  return times, changes


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
  return Comparison(
      report_a=name_a, report_b=name_b,
      groups_only_a=tuple(sorted(groups_a.keys() - groups_b.keys())),
      groups_only_b=tuple(sorted(groups_b.keys() - groups_a.keys())),
      ranks=tuple(ranks), times=tuple(times), aeos=tuple(changes))


def compare_reports(report_a: str | os.PathLike, report_b: str | os.PathLike
                    ) -> Comparison:
  """Compares two report directories (or their leaderboard.json files)."""
  return compare_leaderboards(load_report(report_a), load_report(report_b),
                              name_a=str(report_a), name_b=str(report_b))


def _num(value: Any, digits: int = 4) -> str:
  return '—' if value is None else f'{value:.{digits}g}'


def _rank_line(change: RankChange) -> str:
  moved = ('' if None in (change.rank_a, change.rank_b) or
           change.rank_a == change.rank_b else
           f' ({"up" if change.rank_b < change.rank_a else "down"} '
           f'{abs(change.rank_b - change.rank_a)})')
  delta = change.score_delta
  delta_text = '—' if delta is None else f'{delta:+.4f}'
  return (f'| {change.group} | {change.submission} | '
          f'{_num(change.rank_a)} → {_num(change.rank_b)}{moved} | '
          f'{_num(change.score_a)} → {_num(change.score_b)} | {delta_text} |')


def _time_verdict(change: TimeChange) -> str:
  if change.time_a is not None and change.time_b is not None:
    return '—' if change.ratio is None else f'×{change.ratio:.3g}'
  if change.time_a is None and change.time_b is None:
    return 'not reached in either'
  return 'newly reached' if change.time_a is None else 'no longer reached'



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
  return '\n'.join(lines) + '\n'
