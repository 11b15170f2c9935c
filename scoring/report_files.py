"""Writes a leaderboard report: every view of one `leaderboard.Leaderboard`.

`build_report(experiment_dirs, out_dir)` computes the leaderboard once and
writes into the report directory (the entry point is `python -m
scoring.report`):
  report.md         Markdown, linking figures/*.png
  index.html        one self-contained page (figures as base64 data URIs)
  leaderboard.json  the statistics, machine-readable (scoring.comparison
                    reads it)
  runs.csv          one row per scored run, with its AEoS statistics
  scores.csv        one row per submission and ranking group
  times.csv         one row per workload, submission and ranking group
  figures/*.png     the figures

Runs on different device kinds are ranked separately (one ranking group per
kind) unless `--allow_mixed_hardware` is given; a mixed ranking carries a
visible warning in every view. Unusable records are skipped with a warning and
listed in the report's Skipped section.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import json
import math
import os
import pathlib
from typing import Any, Mapping, Sequence

from absl import logging

from scoring import aeos
from scoring import figures as figures_lib
from scoring import report_html
from scoring import report_markdown
from scoring import scores
from scoring import leaderboard as leaderboard_lib

JSON_SCHEMA = 'aeosperf.leaderboard/1'
JSON_FILE = 'leaderboard.json'
MARKDOWN_FILE = 'report.md'
HTML_FILE = 'index.html'
RUNS_CSV = 'runs.csv'
SCORES_CSV = 'scores.csv'
TIMES_CSV = 'times.csv'


@dataclasses.dataclass(frozen=True)
class Report:
  """A written report.

  Attributes:
    leaderboard: the statistics every file shows.
    out_dir: the report directory.
    files: every file written, relative to out_dir.
  """

  leaderboard: leaderboard_lib.Leaderboard
  out_dir: pathlib.Path
  files: tuple[str, ...]


def jsonable(value: Any) -> Any:
  """Plain JSON data; non-finite floats become None (not reached / unknown)."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {f.name: jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)}
  if isinstance(value, enum.Enum):
    return value.value
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  return value


def leaderboard_json(leaderboard: leaderboard_lib.Leaderboard
                     ) -> dict[str, Any]:
  """The JSON view: the statistics, with null for infinite times.

  Runs carry their AEoS statistics but not their probe series; each cell
  carries its representative run's series.
  """
  data = jsonable(leaderboard)
  for run in data['runs']:
    del run['series']
  return {'schema': JSON_SCHEMA, **data}


_RUN_COLUMNS = ('path', 'workload', 'submission', 'study', 'trial',
                'device_kind', 'status', 'time_to_target_s', 'steps_to_target',
                'final_step', 'seed', 'hparams', 'error')
_AEOS_COLUMNS = tuple(f.name for f in dataclasses.fields(aeos.AeosStats))


def _csv_value(value: Any) -> Any:
  if isinstance(value, enum.Enum):
    return value.value
  if isinstance(value, dict):
    return json.dumps(value, sort_keys=True)
  return '' if value is None else value


def _write_csv(path: pathlib.Path, columns: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> None:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    writer.writerows([_csv_value(v) for v in row] for row in rows)


def write_csvs(leaderboard: leaderboard_lib.Leaderboard, out_dir: pathlib.Path
               ) -> tuple[str, ...]:
  """Writes runs.csv, scores.csv and times.csv; returns their names."""
  _write_csv(out_dir / RUNS_CSV, _RUN_COLUMNS + _AEOS_COLUMNS, [
      [getattr(r, c) for c in _RUN_COLUMNS] +
      [getattr(r.aeos, c) for c in _AEOS_COLUMNS] for r in leaderboard.runs])
  _write_csv(out_dir / SCORES_CSV, (
      'group', 'device_kinds', 'mixed_hardware', 'rank', 'submission',
      'score', 'workloads_reached', 'num_workloads'), [
          (g.name, ';'.join(g.device_kinds), g.mixed, s.rank, s.submission,
           s.score, s.workloads_reached, len(g.workloads))
          for g in leaderboard.groups for s in g.standings])
  _write_csv(out_dir / TIMES_CSV, (
      'group', 'workload', 'submission', 'time_to_target_s', 'steps',
      'ratio', 'num_runs', 'representative_run'), [
          (g.name, c.workload, c.submission, c.time_s, c.steps, c.ratio,
           c.num_runs, c.representative)
          for g in leaderboard.groups for c in g.cells])
  return (RUNS_CSV, SCORES_CSV, TIMES_CSV)


def write_figures(figures: Sequence[figures_lib.Figure],
                  out_dir: pathlib.Path) -> tuple[str, ...]:
  directory = out_dir / report_markdown.FIGURE_DIR
  directory.mkdir(parents=True, exist_ok=True)
  names = []
  for figure in figures:
    (directory / figure.name).write_bytes(figure.png)
    names.append(f'{report_markdown.FIGURE_DIR}/{figure.name}')
  return tuple(names)


def build_report(experiment_dirs: Sequence[str | os.PathLike],
                 out_dir: str | os.PathLike, *,
                 allow_mixed_hardware: bool = False,
                 tau_max: float = scores.DEFAULT_TAU_MAX,
                 dpi: int = 100) -> Report:
  """Computes the leaderboard once and writes every view of it.

  Args:
    experiment_dirs: directories of run records
      (`<workload>/<submission>/study_S/trial_T/`).
    out_dir: the report directory (created; existing files are replaced).
    allow_mixed_hardware: rank runs from different device kinds together,
      marked as such; by default each device kind is ranked on its own.
    tau_max: upper limit of the performance profile and score integral.
    dpi: resolution of the figures.

  Returns:
    The statistics and the files written.

  Raises:
    FileNotFoundError: an experiment directory does not exist.
  """
  leaderboard = leaderboard_lib.compute_leaderboard(
      experiment_dirs, allow_mixed_hardware=allow_mixed_hardware,
      tau_max=tau_max)
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  figures = figures_lib.render_figures(leaderboard, dpi=dpi)
  files = list(write_figures(figures, out))
  (out / JSON_FILE).write_text(
      json.dumps(leaderboard_json(leaderboard), indent=1, allow_nan=False),
      encoding='utf-8')
  (out / MARKDOWN_FILE).write_text(
      report_markdown.render_markdown(leaderboard, figures), encoding='utf-8')
  (out / HTML_FILE).write_text(
      report_html.render_html(leaderboard, figures), encoding='utf-8')
  files += [JSON_FILE, MARKDOWN_FILE, HTML_FILE]
  files += write_csvs(leaderboard, out)
  logging.info('Wrote report to %s (%d runs, %d skipped)', out,
               len(leaderboard.runs), len(leaderboard.skipped))
  return Report(leaderboard=leaderboard, out_dir=out, files=tuple(files))
