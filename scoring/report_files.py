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
  runs/<page>.html  one page per scored run, linked from the tables, with
  runs/<page>.png   its figure (`scoring.run_pages`)

Every view carries the report's provenance (`Provenance`: package versions,
the project's git commit, date, host, experiment directories, command line);
leaderboard.json under `provenance`.

Runs on different device kinds are ranked separately (one ranking group per
kind) unless `--allow_mixed_hardware` is given; a mixed ranking carries a
visible warning in every view. Unusable records are skipped with a warning and
listed in the report's Skipped section.

The directory is replaced as a whole: the report is built in a sibling
temporary directory and renamed into place, the old one removed after, so
leaderboard.json and the pages always come from one build. Only an empty
directory or an earlier report is replaced.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import enum
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any, Mapping, Sequence

from absl import logging

from harness import records
from scoring import aeos
from scoring import figures as figures_lib
from scoring import leaderboard as leaderboard_lib
from scoring import report_html
from scoring import report_markdown
from scoring import run_pages
from scoring import scores

JSON_SCHEMA = 'aeosperf.leaderboard/1'
JSON_FILE = 'leaderboard.json'
MARKDOWN_FILE = 'report.md'
HTML_FILE = 'index.html'
RUNS_CSV = 'runs.csv'
SCORES_CSV = 'scores.csv'
TIMES_CSV = 'times.csv'


PROVENANCE_PACKAGES = ('aeosperf', 'jax', 'jaxlib', 'flax', 'optax', 'numpy',
                       'matplotlib')
_PROJECT = pathlib.Path(__file__).resolve().parents[1]
_GIT_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Provenance:
  """What a report was built from, so a reader can tell two reports apart.

  Attributes:
    built: UTC time of the build, ISO 8601.
    git_commit: the project's commit (`git rev-parse HEAD`), with
      ' (modified)' when tracked files differ from it; 'unknown' outside a
      git checkout or without git.
    host: host name of the machine that built the report.
    python: the Python version.
    versions: package -> version ('not installed' when absent).
    experiment_dirs: the experiment directories, as given.
    command_line: the command that built the report.
  """

  built: str
  git_commit: str
  host: str
  python: str
  versions: dict[str, str]
  experiment_dirs: tuple[str, ...]
  command_line: str

  def rows(self) -> tuple[tuple[str, str], ...]:
    """(label, text) pairs, in the order the reports show them."""
    return (('built', self.built), ('git commit', self.git_commit),
            ('host', self.host),
            ('experiment directories', ', '.join(self.experiment_dirs)),
            ('command line', self.command_line), ('python', self.python),
            *((f'version: {k}', v) for k, v in self.versions.items()))


def _git(*args: str) -> str | None:
  """A git command's output in the project's source tree; None on failure."""
  try:
    done = subprocess.run(['git', '-C', str(_PROJECT), *args],
                          capture_output=True, text=True, check=True,
                          timeout=_GIT_TIMEOUT_S)
  except (OSError, subprocess.SubprocessError):
    return None
  return done.stdout.strip()


def git_commit() -> str:
  """The project's commit, ' (modified)' when its tracked files differ;
  'unknown' when the source is not a git checkout. Never raises."""
  commit = _git('rev-parse', 'HEAD')
  if not commit:
    return 'unknown'
  changed = _git('status', '--porcelain', '--untracked-files=no')
  return commit + (' (modified)' if changed else '')


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def provenance(experiment_dirs: Sequence[str | os.PathLike],
               command_line: Sequence[str] | None = None) -> Provenance:
  """The provenance of a report built now from `experiment_dirs`.

  Args:
    experiment_dirs: the directories the report reads.
    command_line: the command that builds it; default `sys.argv`.
  """
  argv = sys.argv if command_line is None else command_line
  return Provenance(
      built=datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      git_commit=git_commit(), host=socket.gethostname(),
      python=platform.python_version(),
      versions={p: _version(p) for p in PROVENANCE_PACKAGES},
      experiment_dirs=tuple(str(d) for d in experiment_dirs),
      command_line=shlex.join(str(a) for a in argv))


@dataclasses.dataclass(frozen=True)
class Report:
  """A written report.

  Attributes:
    leaderboard: the statistics every file shows.
    out_dir: the report directory.
    files: every file written, relative to out_dir.
    provenance: what the report was built from.
    run_pages: run directory -> its page, relative to out_dir.
  """

  leaderboard: leaderboard_lib.Leaderboard
  out_dir: pathlib.Path
  files: tuple[str, ...]
  provenance: Provenance | None = None
  run_pages: Mapping[str, str] = dataclasses.field(default_factory=dict)


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


def leaderboard_json(leaderboard: leaderboard_lib.Leaderboard,
                     provenance_: Provenance | None = None) -> dict[str, Any]:
  """The JSON view: the statistics, with null for infinite times.

  Runs carry their AEoS statistics but not their probe series; each cell
  carries its representative run's series. `provenance_`, when given, is
  written under `provenance`.
  """
  data = jsonable(leaderboard)
  for run in data['runs']:
    del run['series']
  extra = {} if provenance_ is None else {'provenance': jsonable(provenance_)}
  return {'schema': JSON_SCHEMA, **extra, **data}


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
  with open(path, 'w', newline='', encoding='utf-8',
            errors='backslashreplace') as f:
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


class ReportError(ValueError):
  """The report directory cannot be written or replaced; says which and why."""


# What a report directory holds; a directory with anything else is not
# replaced, so that a mistyped --out never deletes someone's files.
_REPORT_ENTRIES = frozenset({
    JSON_FILE, MARKDOWN_FILE, HTML_FILE, RUNS_CSV, SCORES_CSV, TIMES_CSV,
    report_markdown.FIGURE_DIR, run_pages.PAGE_DIR})


def _check_replaceable(out: pathlib.Path) -> None:
  if not out.exists():
    return
  if not out.is_dir():
    raise ReportError(f'{out} exists and is not a directory; choose another '
                      'report directory')
  foreign = sorted(p.name for p in out.iterdir()
                   if p.name not in _REPORT_ENTRIES)
  if foreign:
    raise ReportError(
        f'{out} holds {foreign[0]!r}, which is not part of a report; only an '
        'empty directory or an earlier report is replaced')


def _write_text(path: pathlib.Path, text: str) -> None:
  # Paths from the file system may hold undecodable bytes (surrogates).
  path.write_text(text, encoding='utf-8', errors='backslashreplace')


def write_run_pages(leaderboard: leaderboard_lib.Leaderboard,
                    out_dir: pathlib.Path, *, dpi: int = 100,
                    colours: Mapping[str, Any] | None = None
                    ) -> tuple[dict[str, str], tuple[str, ...]]:
  """A page per scored run, from its records read once; (links, files).

  A run whose records cannot be read again (changed since it was scored)
  gets no page, with a warning; its rows are not linked.
  """
  links: dict[str, str] = {}
  files: list[str] = []
  for entry in leaderboard.runs:
    try:
      record = records.read_run(entry.path)
    except records.RecordError as e:
      logging.warning('No page for %s: %s', entry.path, e)
      continue
    page = run_pages.render_page(
        entry, record, report_file=HTML_FILE, dpi=dpi,
        colour=(colours or {}).get(entry.submission))
    files += run_pages.write_page(page, out_dir)
    links[entry.path] = run_pages.page_href(entry.path)
  return links, tuple(files)


def _write_views(leaderboard: leaderboard_lib.Leaderboard,
                 out: pathlib.Path, dpi: int, made: Provenance
                 ) -> tuple[list[str], dict[str, str]]:
  """Every file of the report, written into `out`; names and run links."""
  figures = figures_lib.render_figures(leaderboard, dpi=dpi)
  files = list(write_figures(figures, out))
  links, pages = write_run_pages(leaderboard, out, dpi=dpi,
                                 colours=figures_lib.colours(leaderboard))
  files += pages
  rows = made.rows()
  _write_text(out / JSON_FILE, json.dumps(leaderboard_json(leaderboard, made),
                                          indent=1, allow_nan=False))
  _write_text(out / MARKDOWN_FILE, report_markdown.render_markdown(
      leaderboard, figures, run_links=links, provenance=rows))
  _write_text(out / HTML_FILE, report_html.render_html(
      leaderboard, figures, run_links=links, provenance=rows))
  files += [JSON_FILE, MARKDOWN_FILE, HTML_FILE]
  files += write_csvs(leaderboard, out)
  return files, links


def _replace_directory(built: pathlib.Path, out: pathlib.Path) -> None:
  """Moves `built` to `out`; an earlier `out` is moved aside, then removed.

  Each move is a rename within one directory, so `out` is always either the
  old report or the new one, never a mixture.
  """
  aside = None
  if out.exists():
    aside = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-',
                                          dir=out.parent))
    try:
      os.replace(out, aside)  # Onto the empty placeholder directory.
    except OSError:
      aside.rmdir()
      raise
  try:
    os.replace(built, out)
  except OSError:
    if aside is not None:
      os.replace(aside, out)
    raise
  if aside is not None:
    shutil.rmtree(aside, ignore_errors=True)


def build_report(experiment_dirs: Sequence[str | os.PathLike],
                 out_dir: str | os.PathLike, *,
                 allow_mixed_hardware: bool = False,
                 tau_max: float = scores.DEFAULT_TAU_MAX,
                 dpi: int = 100,
                 missing_runs: leaderboard_lib.MissingRuns | str = (
                     leaderboard_lib.MissingRuns.FAIL),
                 command_line: Sequence[str] | None = None) -> Report:
  """Computes the leaderboard once and writes every view of it.

  The report is built in a temporary directory beside `out_dir` and renamed
  into place, so a failed build leaves the earlier report as it was.

  Args:
    experiment_dirs: directories of run records
      (`<workload>/<submission>/study_S/trial_T/`).
    out_dir: the report directory: created, or replaced when it is empty or
      holds an earlier report.
    allow_mixed_hardware: rank runs from different device kinds together,
      marked as such; by default each device kind is ranked on its own.
    tau_max: upper limit of the performance profile and score integral.
    dpi: resolution of the figures.
    missing_runs: how a submission without runs on a workload of its group
      is ranked (`leaderboard.MissingRuns`).
    command_line: the command building the report, for its provenance;
      default `sys.argv`.

  Returns:
    The statistics and the files written.

  Raises:
    FileNotFoundError: none of the experiment directories exists.
    ReportError: `out_dir` is not a report directory, or cannot be written.
    leaderboard.MissingRunsError: `missing_runs` is refuse and a run is
      missing.
  """
  out = pathlib.Path(out_dir).absolute()
  _check_replaceable(out)
  leaderboard = leaderboard_lib.compute_leaderboard(
      experiment_dirs, allow_mixed_hardware=allow_mixed_hardware,
      tau_max=tau_max, missing_runs=missing_runs)
  try:
    out.parent.mkdir(parents=True, exist_ok=True)
    built = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.new-',
                                          dir=out.parent))
  except OSError as e:
    raise ReportError(f'{out}: cannot be written ({e})') from None
  made = provenance(experiment_dirs, command_line)
  try:
    files, links = _write_views(leaderboard, built, dpi, made)
    _replace_directory(built, out)
  except OSError as e:
    raise ReportError(f'{out}: cannot be written ({e})') from None
  finally:
    shutil.rmtree(built, ignore_errors=True)
  logging.info('Wrote report to %s (%d runs, %d skipped)', out,
               len(leaderboard.runs), len(leaderboard.skipped))
  return Report(leaderboard=leaderboard, out_dir=pathlib.Path(out_dir),
                files=tuple(files), provenance=made, run_pages=links)
