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

from scoring import aeos
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
    column_notes: one line per column that needs it, `column: what it
      means`, shown under the caption.
  """

  title: str
  columns: tuple[str, ...]
  rows: tuple[tuple[str, ...], ...]
  warning: str | None = None
  caption: str | None = None
  run_paths: tuple[str | None, ...] = ()
  column_notes: tuple[str, ...] = ()


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


def _ratio(value: float) -> str:
  return number(value) if math.isfinite(value) else MISSING


def span(values: Sequence[float], unit: str = '', digits: int = 4) -> str:
  """`lo–hi unit` of the finite values (one number when they agree).

  Args:
    values: the values; inf stands for a run that did not reach the target.
    unit: appended after the numbers, e.g. ' s'.
    digits: significant digits.

  Returns:
    The span, with `(k/n reached)` when some did not; MISSING when none did.
  """
  reached = sorted(v for v in values if math.isfinite(v))
  if not reached:
    return MISSING if not values else NOT_REACHED
  lo, hi = (f'{v:.{digits}g}' for v in (reached[0], reached[-1]))
  text = (lo if lo == hi else f'{lo}–{hi}') + unit
  if len(reached) < len(values):
    text += f' ({len(reached)}/{len(values)} reached)'
  return text


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


def _cells(group: leaderboard_lib.RankingGroup
           ) -> list[leaderboard_lib.Cell]:
  return [group.cell(w.name, s) for w in group.workloads
          for s in group.submissions]


NO_RUN = 'no run'


def _time_row(cell: leaderboard_lib.Cell) -> tuple[str, ...]:
  if not cell.num_runs:
    return (cell.workload, cell.submission, NO_RUN, MISSING, MISSING,
            MISSING, MISSING)
  reached = sum(math.isfinite(t) for t in cell.trial_times)
  return (cell.workload, cell.submission, seconds(cell.time_s),
          _ratio(cell.ratio), span(cell.study_times, ' s'),
          f'{reached}/{len(cell.trial_times)}',
          span([t for t in cell.trial_times if math.isfinite(t)], ' s'))


def time_table(group: leaderboard_lib.RankingGroup) -> Table:
  """Per-workload time to target (median over studies of the fastest), with
  its spread over studies and trials."""
  cells = _cells(group)
  return Table(
      title=f'Time to target — {group.name}',
      columns=('workload', 'submission', 'time to target', 'ratio to best',
               'studies: fastest, min–max', 'trials reached',
               'trials: min–max'),
      rows=tuple(_time_row(c) for c in cells), warning=mixed_warning(group),
      caption=('Submission time to the validation target, as AlgoPerf '
               'counts it (compilation and prepare_for_eval included, '
               'evaluation and curvature probes not): the fastest trial '
               'of each study, median over studies; failed runs count as '
               'infinite. Times on a shared machine are noisy: read them '
               'with their spread.'),
      run_paths=tuple(c.representative for c in cells),
      column_notes=(
          f'time to target: median over studies of each study\'s fastest '
          f'trial ("{NO_RUN}": the submission has no run on the workload).',
          'ratio to best: time / the fastest submission\'s time on the '
          'workload.',
          'studies: fastest, min–max: the spread of the studies\' fastest '
          'times, with how many studies reached the target when not all.',
          'trials reached: trials that reached the target / trials, over '
          'all studies.',
          'trials: min–max: the spread of those trials\' times.'))


def _steps_row(cell: leaderboard_lib.Cell) -> tuple[str, ...]:
  if not cell.num_runs:
    return (cell.workload, cell.submission, NO_RUN, MISSING, MISSING)
  return (cell.workload, cell.submission,
          steps(cell.steps) if math.isfinite(cell.steps) else NOT_REACHED,
          _ratio(cell.steps_ratio), span(cell.study_steps, digits=6))


def steps_table(group: leaderboard_lib.RankingGroup) -> Table:
  """Per-workload steps to target: the view that machine noise leaves be."""
  cells = _cells(group)
  return Table(
      title=f'Steps to target — {group.name}',
      columns=('workload', 'submission', 'steps to target',
               'ratio to fewest', 'studies: steps, min–max'),
      rows=tuple(_steps_row(c) for c in cells), warning=mixed_warning(group),
      caption=('Steps to the validation target, aggregated like the time '
               '(median over studies of the fastest trial\'s steps). Steps '
               'do not depend on the machine\'s load; the score uses time.'),
      run_paths=tuple(c.representative for c in cells),
      column_notes=(
          'ratio to fewest: steps / the fewest steps of any submission on '
          'the workload.',
          'studies: steps, min–max: the spread of the steps of the studies\' '
          'fastest trials.'))


THRESHOLD_UNKNOWN = 'threshold unknown'
ONSET_NOT_REACHED = 'not reached'


def _ratio_cell(stats: aeos.AeosStats, value: str) -> str:
  """A ratio statistic's text; says when the threshold was unknown."""
  if value == MISSING and stats.threshold_unknown:
    return THRESHOLD_UNKNOWN
  return value


def _onset(stats: aeos.AeosStats) -> str:
  if stats.onset_step is not None:
    return str(stats.onset_step)
  return ONSET_NOT_REACHED if stats.num_probes else _ratio_cell(stats,
                                                                 MISSING)


def _probes(stats: aeos.AeosStats) -> str:
  if stats.onset_step is None:
    return str(stats.num_probes)
  return f'{stats.num_probes} ({stats.num_probes_from_onset})'


def _at_solution(value: float | None, stats: aeos.AeosStats) -> str:
  if value is not None:
    return number(value)
  return stats.solution_missing or MISSING


def _aeos_row(cell: leaderboard_lib.Cell) -> tuple[str, ...]:
  a = cell.aeos
  ratio = functools.partial(_ratio_cell, a)
  return (
      cell.workload, cell.submission, _probes(a), _onset(a),
      ratio(number(a.ratio_median)), ratio(number(a.ratio_iqr)),
      ratio(percent(a.fraction_in_band)), ratio(number(a.ratio_peak)),
      ratio(number(a.sharpness_growth)), number(a.solution_step),
      _at_solution(a.sharpness_at_solution, a),
      number(a.preconditioned_sharpness_at_solution))


AEOS_COLUMN_NOTES = (
    'probes (from onset): usable probes (a finite threshold ratio), and in '
    'parentheses those from the onset on, behind the median, IQR and band.',
    f'onset step: the first probe with ratio ≥ {aeos.ONSET_RATIO:g} '
    f'("{ONSET_NOT_REACHED}": no probe came that close).',
    'median ratio, IQR: the median and interquartile range of the ratio '
    'from the onset on.',
    f'within ±{100 * aeos.BAND:.0f}%: the fraction of those probes with '
    f'|ratio − 1| ≤ {aeos.BAND:g}.',
    'peak ratio: the largest ratio over all usable probes, also for runs '
    'that never reached the onset (how close they came).',
    'sharpness growth: λ1(H) at the last probe / λ1(H) at the onset.',
    'solution step: the first step whose train loss fell below the '
    'workload\'s train-loss threshold.',
    'λ1(H) at solution: the sharpness there; when missing, the cell says '
    'why.',
    'λ1(P⁻¹H) at solution: the preconditioned sharpness there (— without a '
    'preconditioner or when λ1(H) at solution is missing).',
    f'"{THRESHOLD_UNKNOWN}": the probes could not give a stability '
    'threshold for the method, so there is no ratio.')


def aeos_table(group: leaderboard_lib.RankingGroup) -> Table:
  """AEoS statistics of each cell's representative run."""
  cells = [c for c in _cells(group) if c.aeos is not None]
  return Table(
      title=f'Adaptive edge of stability — {group.name}',
      columns=('workload', 'submission', 'probes (from onset)', 'onset step',
               'median ratio', 'IQR', f'within ±{100 * aeos.BAND:.0f}%',
               'peak ratio', 'sharpness growth', 'solution step',
               'λ1(H) at solution', 'λ1(P⁻¹H) at solution'),
      rows=tuple(_aeos_row(c) for c in cells), warning=mixed_warning(group),
      caption=('Ratio = preconditioned sharpness / stability threshold '
               '(raw sharpness for methods without a preconditioner). '
               'Representative run of each cell: the one that sets the '
               'median time (else the one with the most probes).'),
      run_paths=tuple(c.representative for c in cells),
      column_notes=AEOS_COLUMN_NOTES)


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
       number(r.aeos.ratio_median), number(r.aeos.ratio_peak),
       number(r.aeos.sharpness_at_solution),
       r.error or '') for r in leaderboard.runs)
  return Table(
      title='Runs',
      columns=('workload', 'submission', 'study', 'trial', 'device', 'status',
               'time to target', 'steps', 'onset step', 'median ratio',
               'peak ratio', 'λ1(H) at solution', 'error'), rows=rows,
      caption=('Every scored run. A time to target, once recorded, counts '
               'whatever the status the run ended with.'),
      run_paths=tuple(r.path for r in leaderboard.runs))


def found_table(leaderboard: leaderboard_lib.Leaderboard) -> Table:
  """Where the run directories were found, per experiment directory."""
  return Table(
      title='Run directories found',
      columns=('experiment directory', 'folder', 'run directories'),
      rows=tuple((f.experiment_dir, f.folder, str(f.runs))
                 for f in leaderboard.found),
      caption=('Run directories (.../<workload>/<submission>/study_S/'
               'trial_T) are found at any depth; folder: where each set of '
               '<workload>/ directories sits, relative to the experiment '
               'directory. Scored and skipped runs are counted alike.'))


_SKIPPED = {
    leaderboard_lib.SkipKind.PART: 'part (run still used)',
    leaderboard_lib.SkipKind.MISSING: 'experiment directory',
}


def skipped_table(leaderboard: leaderboard_lib.Leaderboard) -> Table:
  """What was left out: runs by why (running, killed, set-up error,
  duplicate, ...), and parts of runs that were still used."""
  rows = tuple(
      (s.path, _SKIPPED.get(s.kind, f'whole run: {s.kind.value}'), s.reason)
      for s in leaderboard.skipped)
  whole = sum(s.whole_run for s in leaderboard.skipped)
  caption = (f'{whole} left out whole, {len(rows) - whole} parts of runs '
             'left out (those runs still used); the report was built from '
             'the rest. Set-up and harness errors are not the optimizer\'s '
             'failures: they are listed here, not counted as failed.'
             if rows else 'Nothing was skipped.')
  return Table(title='Skipped', columns=('path', 'skipped', 'reason'),
               rows=rows, caption=caption)


def group_tables(group: leaderboard_lib.RankingGroup, tau_max: float
                 ) -> tuple[Table, ...]:
  """The tables of one ranking group, in reading order."""
  return (ranking_table(group, tau_max), time_table(group),
          steps_table(group), aeos_table(group), workload_table(group))


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


_MISSING_POLICY = {
    leaderboard_lib.MissingRuns.FAIL: lambda group: (
        "counted as failed there (--missing_runs=fail, AlgoPerf's rule; "
        '--missing_runs=common ranks over the workloads every submission '
        'has).'),
    leaderboard_lib.MissingRuns.COMMON: lambda group: (
        f'ranked over the {len(group.workloads)} workloads every submission '
        f'has (--missing_runs=common); left out: '
        f'{", ".join(group.left_out)}.'),
}


def missing_paragraph(group: leaderboard_lib.RankingGroup,
                      policy: leaderboard_lib.MissingRuns) -> Paragraph | None:
  """Names each submission without runs on a workload others ran."""
  if not group.missing:
    return None
  cells = '; '.join(f'submission {s!r} has no run on workload {w!r}'
                    for s, w in group.missing)
  return Paragraph(f'Missing runs: {cells}; {_MISSING_POLICY[policy](group)}',
                   warning=True)


def _group_blocks(leaderboard: leaderboard_lib.Leaderboard,
                  group: leaderboard_lib.RankingGroup,
                  figures: Sequence[Any]) -> list[Any]:
  """A group's section: its caveats, tables and figures."""
  ranking, times, steps_view, aeos_view, workloads = group_tables(
      group, leaderboard.tau_max)
  shown = functools.partial(_figures_of, figures, group.name)
  missing = missing_paragraph(group, leaderboard.missing_runs)
  return [Heading(f'Hardware: {group.name}'),
          *[Paragraph(w, warning=True) for w in group.warnings],
          *([missing] if missing else []),
          ranking, *shown('profile'), times, *shown('time'), steps_view,
          *shown('curves'), aeos_view, *shown('aeos_ratio'),
          *shown('sharpness'), *shown('solution'), workloads]


def document(leaderboard: leaderboard_lib.Leaderboard, figures: Sequence[Any]
             ) -> tuple[Heading | Paragraph | Table | Any, ...]:
  """The report's blocks in reading order; Markdown and HTML lay them out.

  Figures are placed by kind: profiles after the ranking, time bars after
  the time table, training curves after the steps table, threshold ratios
  and sharpness after the AEoS table.

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
  if leaderboard.found:
    blocks.append(found_table(leaderboard))
  if not leaderboard.groups:
    blocks.append(Paragraph('No finished runs were found.', warning=True))
  if leaderboard.notes:
    blocks.append(Heading('Notes'))
    blocks += [Paragraph(note) for note in leaderboard.notes]
  for group in leaderboard.groups:
    blocks += _group_blocks(leaderboard, group, figures)
  blocks += [runs_table(leaderboard), skipped_table(leaderboard)]
  return tuple(blocks)
