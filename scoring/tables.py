"""Tables of a leaderboard, as plain strings: Markdown and HTML render these.

Each table is built once from `leaderboard.Leaderboard`; the renderers only
lay the cells out.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any, Sequence

from scoring import leaderboard as leaderboard_lib

MISSING = '—'
NOT_REACHED = 'not reached'


@dataclasses.dataclass(frozen=True)
class Table:
  """A titled table of strings.

  Attributes:
    title: heading above the table.
    columns: column headers.
    rows: cell strings, one tuple per row.
    warning: a caveat the views must show prominently (e.g. mixed hardware).
    caption: a short explanation shown under the title.
    run_paths: per row, the run directory the row shows (its per-run page
      is linked from the row), or None; empty for tables of no one run.
  """

  title: str
  columns: tuple[str, ...]
  rows: tuple[tuple[str, ...], ...]
  warning: str | None = None
  caption: str | None = None
  run_paths: tuple[str | None, ...] = ()


def number(value: Any, digits: int = 3) -> str:
  """A number to `digits` significant digits; MISSING for None or NaN."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return MISSING
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float) and math.isinf(value):
    return 'inf'
  if isinstance(value, int):
    return str(value)
  return f'{value:.{digits}g}'


def percent(value: float | None) -> str:
  return MISSING if value is None else f'{100 * value:.0f}%'


def seconds(value: float) -> str:
  return f'{value:.4g} s' if math.isfinite(value) else NOT_REACHED


def steps(value: float) -> str:
  return str(int(round(value))) if math.isfinite(value) else MISSING


def mixed_warning(group: leaderboard_lib.RankingGroup) -> str | None:
  if not group.mixed:
    return None
  return ('MIXED HARDWARE: this ranking combines runs from different device '
          f'kinds ({", ".join(group.device_kinds)}); their times are not '
          'comparable (built with --allow_mixed_hardware).')


def ranking_table(group: leaderboard_lib.RankingGroup, tau_max: float) -> Table:
  """Rank, submission, benchmark score and workloads reached."""
  n = len(group.workloads)
  rows = tuple(
      (str(s.rank), s.submission, f'{s.score:.4f}',
       f'{s.workloads_reached}/{n}') for s in group.standings)
  return Table(
      title=f'Ranking — {group.name}',
      columns=('rank', 'submission', 'score', 'workloads reached'),
      rows=rows, warning=mixed_warning(group),
      caption=(f'Score: normalised area under the performance profile on '
               f'[1, {tau_max:g}] (AlgoPerf). Device kinds: '
               f'{", ".join(group.device_kinds)}.'))


def time_table(group: leaderboard_lib.RankingGroup) -> Table:
  """Per-workload time to target (median over studies of the fastest)."""
  rows = []
  for workload in group.workloads:
    for submission in group.submissions:
      cell = group.cell(workload.name, submission)
      ratio = number(cell.ratio) if math.isfinite(cell.ratio) else MISSING
      rows.append((
          workload.name, submission, seconds(cell.time_s), steps(cell.steps),
          ratio, ', '.join(seconds(t) for t in cell.study_times) or MISSING,
          str(cell.num_runs)))
  return Table(
      title=f'Time to target — {group.name}',
      columns=('workload', 'submission', 'time to target', 'steps',
               'ratio to best', 'fastest per study', 'runs'),
      rows=tuple(rows), warning=mixed_warning(group),
      caption=('Submission time to the validation target: the fastest trial '
               'of each study, median over studies; failed runs count as '
               'infinite.'))


def aeos_table(group: leaderboard_lib.RankingGroup) -> Table:
  """AEoS statistics of each cell's representative run."""
  rows = []
  for workload in group.workloads:
    for submission in group.submissions:
      cell = group.cell(workload.name, submission)
      a = cell.aeos
      if a is None:
        continue
      rows.append((
          workload.name, submission, str(a.num_probes),
          number(a.onset_step), number(a.ratio_median),
          number(a.ratio_iqr), percent(a.fraction_in_band),
          number(a.sharpness_growth), number(a.solution_step),
          number(a.sharpness_at_solution),
          number(a.preconditioned_sharpness_at_solution)))
  return Table(
      title=f'Adaptive edge of stability — {group.name}',
      columns=('workload', 'submission', 'probes', 'onset step',
               'median ratio', 'IQR', 'within ±15%', 'sharpness growth',
               'solution step', 'λ1(H) at solution', 'λ1(P⁻¹H) at solution'),
      rows=tuple(rows), warning=mixed_warning(group),
      caption=('Ratio = preconditioned sharpness / stability threshold '
               '(raw sharpness for methods without a preconditioner), from '
               'the onset (first ratio ≥ 0.9) on. Sharpness growth = λ1(H) at '
               'the last probe / λ1(H) at onset. Representative run: the one '
               'that sets the median time.'))


def workload_table(group: leaderboard_lib.RankingGroup) -> Table:
  rows = tuple(
      (w.name, str(w.target_metric or MISSING), number(w.target_value, 6),
       {True: 'higher', False: 'lower'}.get(w.target_higher_is_better,
                                            MISSING),
       number(w.train_loss_threshold)) for w in group.workloads)
  return Table(
      title=f'Workloads — {group.name}',
      columns=('workload', 'target metric', 'target', 'better',
               'train-loss threshold'), rows=rows)


def runs_table(leaderboard: leaderboard_lib.Leaderboard) -> Table:
  rows = tuple(
      (r.workload, r.submission, str(r.study), str(r.trial), r.device_kind,
       r.status.value, seconds(r.time_to_target_s),
       number(r.steps_to_target), number(r.aeos.onset_step),
       number(r.aeos.ratio_median), number(r.aeos.sharpness_at_solution),
       r.error or '') for r in leaderboard.runs)
  return Table(
      title='Runs',
      columns=('workload', 'submission', 'study', 'trial', 'device', 'status',
               'time to target', 'steps', 'onset step', 'median ratio',
               'λ1(H) at solution', 'error'), rows=rows)


_SKIPPED = {
    leaderboard_lib.SkipKind.PART: 'part (run still used)',
    leaderboard_lib.SkipKind.MISSING: 'experiment directory',
}


def skipped_table(leaderboard: leaderboard_lib.Leaderboard) -> Table:
  """What was left out: runs by why (running, killed, duplicate, ...), and
  parts of runs that were still used."""
  rows = tuple(
      (s.path, _SKIPPED.get(s.kind, f'whole run: {s.kind.value}'), s.reason)
      for s in leaderboard.skipped)
  return Table(
      title='Skipped', columns=('path', 'skipped', 'reason'), rows=rows,
      caption=('Records that could not be used; the report was built from '
               'the rest.' if rows else 'Nothing was skipped.'))


def group_tables(group: leaderboard_lib.RankingGroup, tau_max: float
                 ) -> tuple[Table, ...]:
  """The tables of one ranking group, in reading order."""
  return (ranking_table(group, tau_max), time_table(group), aeos_table(group),
          workload_table(group))


_HARDWARE_POLICY = {
    False: 'Runs on different device kinds are never ranked together: one '
           'ranking per device kind.',
    True: 'Built with --allow_mixed_hardware: runs on different device kinds '
          'are ranked together, and such rankings are marked.',
}


@dataclasses.dataclass(frozen=True)
class Heading:
  """A section heading of the report."""

  text: str
  level: int = 2


@dataclasses.dataclass(frozen=True)
class Paragraph:
  """A line of prose (or a warning when `warning`)."""

  text: str
  warning: bool = False


def _skipped_counts(leaderboard: leaderboard_lib.Leaderboard) -> str:
  """`N runs skipped (2 killed, 1 running, ...)`."""
  counts = collections.Counter(
      s.kind.value for s in leaderboard.skipped
      if s.whole_run and s.kind is not leaderboard_lib.SkipKind.MISSING)
  detail = ', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))
  return f'{sum(counts.values())} runs skipped' + (f' ({detail})' if detail
                                                   else '')


def _figures_of(figures: Sequence[Any], group: str, kind: str) -> list[Any]:
  return [f for f in figures if (f.group, f.kind) == (group, kind)]


def document(leaderboard: leaderboard_lib.Leaderboard, figures: Sequence[Any]
             ) -> tuple[Heading | Paragraph | Table | Any, ...]:
  """The report's blocks in reading order; Markdown and HTML lay them out.

  Args:
    leaderboard: the computed statistics.
    figures: `figures.Figure`s rendered from the same statistics.

  Returns:
    Headings, paragraphs, tables and figures.
  """
  blocks: list[Any] = [
      Heading('aeosperf leaderboard', 1),
      Paragraph('Experiment directories: ' +
                ', '.join(leaderboard.experiment_dirs)),
      Paragraph(f'{len(leaderboard.runs)} runs scored, '
                f'{_skipped_counts(leaderboard)}; '
                f'{len(leaderboard.groups)} ranking group(s). '
                + _HARDWARE_POLICY[leaderboard.allow_mixed_hardware])]
  if not leaderboard.groups:
    blocks.append(Paragraph('No finished runs were found.', warning=True))
  if leaderboard.notes:
    blocks.append(Heading('Notes'))
    blocks += [Paragraph(note) for note in leaderboard.notes]
  for group in leaderboard.groups:
    ranking, times, aeos, workloads = group_tables(group, leaderboard.tau_max)
    shown = functools.partial(_figures_of, figures, group.name)
    blocks += [Heading(f'Hardware: {group.name}'),
               ranking, *shown('profile'), times, *shown('time'),
               aeos, *shown('sharpness'), *shown('solution'), workloads]
  blocks += [runs_table(leaderboard), skipped_table(leaderboard)]
  return tuple(blocks)
