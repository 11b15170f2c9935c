"""A page per scored run: its figure and everything its records say.

The report directory holds `runs/<page>.html` and `runs/<page>.png` for
every scored run; the report's tables link each run's row to its page. A
page shows the run's figure (`run_figure.draw_run`), how it was scored, its
hyperparameters, its flags (meta.json `config`), batch regime, data source,
workload, host and devices, software versions, times (summary.json) and
AEoS statistics, with a link back to the report.

Page names are file-safe and stable: `page_name(run_path)` is
`<workload>__<submission>__s<S>_t<T>__<hash>`, the hash of the run's absolute
path keeping apart runs of equal names in different experiment directories.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import html
import json
import math
import os
import pathlib
import re
from typing import Any, Iterable, Mapping

from harness import records
from scoring import leaderboard as leaderboard_lib
from scoring import report_html
from scoring import run_figure

PAGE_DIR = 'runs'
_MISSING = '—'
_UNSAFE = re.compile(r'[^A-Za-z0-9._-]+')


def _safe(text: str) -> str:
  return _UNSAFE.sub('-', text).strip('-.') or 'x'


def _index(part: str, prefix: str) -> str:
  """`study_3` -> `3`; anything else made file-safe."""
  number = part[len(prefix):]
  return number if part.startswith(prefix) and number.isdigit() else \
      _safe(part)


def page_name(run_path: str | os.PathLike) -> str:
  """The file-safe, stable name (no suffix) of a run's page.

  Args:
    run_path: the run directory (`.../<workload>/<submission>/study_S/
      trial_T`).

  Returns:
    e.g. `w1__adam__s0_t1__3f2a9c01`; the last part hashes the absolute
    path, so equal names in different directories get different pages.
  """
  absolute = os.path.abspath(os.fspath(run_path))
  parts = pathlib.PurePath(absolute).parts
  workload, submission, study, trial = (('',) * 4 + parts)[-4:]
  digest = hashlib.sha256(os.fsencode(absolute)).hexdigest()[:8]
  return (f'{_safe(workload)}__{_safe(submission)}__'
          f's{_index(study, "study_")}_t{_index(trial, "trial_")}__{digest}')


def page_href(run_path: str | os.PathLike) -> str:
  """The page's path relative to the report directory."""
  return f'{PAGE_DIR}/{page_name(run_path)}.html'


def _text(value: Any) -> str:
  """A cell: numbers to 6 digits, containers as JSON, None as a dash."""
  if value is None:
    return _MISSING
  if isinstance(value, enum.Enum):
    return str(value.value)
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float):
    return f'{value:.6g}' if math.isfinite(value) else str(value)
  if isinstance(value, (dict, list, tuple)):
    return json.dumps(value, sort_keys=True, default=str) if value else \
        _MISSING
  return str(value)


def _flat(mapping: Mapping[str, Any], prefix: str = ''
          ) -> list[tuple[str, Any]]:
  """Nested flags as `a.b` keys, so each flag is one row."""
  items: list[tuple[str, Any]] = []
  for key in sorted(mapping):
    value = mapping[key]
    if isinstance(value, Mapping) and value:
      items += _flat(value, f'{prefix}{key}.')
    else:
      items.append((f'{prefix}{key}', value))
  return items


def _fields(record: Any) -> list[tuple[str, Any]]:
  return [(f.name, getattr(record, f.name))
          for f in dataclasses.fields(record) if f.name != 'schema_version']


def _seconds(value: float | None) -> str:
  return (f'{value:.4g} s' if value is not None and math.isfinite(value)
          else 'not reached')


def _scored(entry: leaderboard_lib.RunEntry,
            record: records.RunRecord) -> list[tuple[str, Any]]:
  workload, summary = record.meta.workload, record.summary
  return [
      ('ranked as', f'{entry.workload} / {entry.submission}'),
      ('status', entry.status),
      ('error kind', summary.error_kind if summary else None),
      ('error', entry.error),
      ('time to target (scored)', _seconds(entry.time_to_target_s)),
      ('steps to target', entry.steps_to_target),
      ('final step', entry.final_step),
      ('target', f'{workload.target_metric} '
                 f'{"≥" if workload.target_higher_is_better else "≤"} '
                 f'{workload.target_value:g}'),
      ('study', entry.study), ('trial', entry.trial), ('seed', entry.seed),
      ('run directory', entry.path)]


def _times(record: records.RunRecord) -> list[tuple[str, Any]]:
  summary = record.summary
  rows: list[tuple[str, Any]] = [('start time', record.meta.start_time)]
  if summary is not None:
    rows += [(name, getattr(summary, name)) for name in (
        'submission_time_s', 'eval_time_s', 'probe_time_s', 'first_step_s',
        'wall_time_s', 'timed_compiles', 'resumed_at_steps')]
  return rows


def _data_source(record: records.RunRecord) -> list[tuple[str, Any]]:
  data = record.meta.config.get('data')
  if not isinstance(data, Mapping):
    return [('data', 'not recorded in meta.json config')] + _flat(
        record.meta.workload.details, 'workload.')
  # None is the workload's default: its bundled subset, or TFDS_DATA_DIR.
  defaults = {'source': "the workload's default source",
              'data_dir': 'default (TFDS_DATA_DIR, or bundled data)'}
  rows = [(key, defaults.get(key.removeprefix('data.'), value)
           if value is None else value) for key, value in _flat(data)]
  return rows + _flat(record.meta.workload.details, 'workload.')


def _workload(record: records.RunRecord) -> list[tuple[str, Any]]:
  return [(k, v) for k, v in _fields(record.meta.workload)
          if k not in ('details', 'default_regime')]


def _host(record: records.RunRecord) -> list[tuple[str, Any]]:
  return (_flat(record.meta.host, 'host.') +
          [(f'devices.{k}', v) for k, v in _fields(record.meta.devices)])


def sections(entry: leaderboard_lib.RunEntry, record: records.RunRecord
             ) -> tuple[tuple[str, list[tuple[str, Any]]], ...]:
  """(title, rows) of each section of a run's page, in reading order."""
  summary = record.summary
  return (
      ('Scoring', _scored(entry, record)),
      ('Hyperparameters', sorted(record.meta.hparams.items())),
      ('Batch regime', _fields(record.meta.regime)),
      ('Data source', _data_source(record)),
      ('Host and devices', _host(record)),
      ('Versions', sorted(record.meta.versions.items())),
      ('Times', _times(record)),
      ('Final metrics',
       sorted(summary.final_metrics.items()) if summary else []),
      ('Adaptive edge of stability', _fields(entry.aeos)),
      ('Submission', _fields(record.meta.submission)),
      ('Workload', _workload(record)),
      ('Flags (meta.json config)', _flat(record.meta.config)),
      ('Record warnings', [(str(i + 1), w)
                           for i, w in enumerate(record.warnings)]),
  )


def _section_html(title: str, rows: Iterable[tuple[str, Any]]) -> str:
  body = ''.join(f'<tr><th>{html.escape(k)}</th>'
                 f'<td>{html.escape(_text(v))}</td></tr>' for k, v in rows)
  table = f'<table><tbody>{body}</tbody></table>' if body else '<p>(none)</p>'
  return f'<section><h2>{html.escape(title)}</h2>\n{table}</section>'


@dataclasses.dataclass(frozen=True)
class RunPage:
  """One run's page: `name.html` and its figure `name.png`."""

  name: str
  html: str
  png: bytes


def render_page(entry: leaderboard_lib.RunEntry, record: records.RunRecord, *,
                report_file: str = 'index.html', colour: Any = None,
                dpi: int = 100) -> RunPage:
  """A run's page and figure.

  Args:
    entry: the run as the leaderboard scored it.
    record: its records (`harness.records.read_run(entry.path)`).
    report_file: the report's page, linked from the run's page (which sits
      one directory below it).
    colour: the submission's colour in the report's figures.
    dpi: resolution of the figure.

  Returns:
    The page; its image is `<name>.png` beside it.
  """
  name = page_name(entry.path)
  title = (f'{entry.workload} / {entry.submission} — study {entry.study}, '
           f'trial {entry.trial}')
  parts = [
      f'<p><a href="../{html.escape(report_file)}">← leaderboard report</a>'
      '</p>',
      f'<h1>{html.escape(title)}</h1>',
      f'<p class="caption">{html.escape(entry.path)}</p>',
      f'<figure><img src="{name}.png" alt="{html.escape(title)}">'
      '<figcaption>Train loss; the threshold ratio\'s numerator against the '
      'stability threshold (dashed); raw sharpness λ1(H) for preconditioned '
      'methods. Dotted vertical line: AEoS onset.</figcaption></figure>']
  parts += [_section_html(t, rows) for t, rows in sections(entry, record)]
  text = report_html.page(title, '\n'.join(parts))
  return RunPage(name=name, html=text,
                 png=run_figure.plot_run(record, dpi=dpi, colour=colour))


def write_page(page: RunPage, out_dir: pathlib.Path) -> tuple[str, str]:
  """Writes a page and its figure under `out_dir/runs/`; their names."""
  directory = out_dir / PAGE_DIR
  directory.mkdir(parents=True, exist_ok=True)
  (directory / f'{page.name}.html').write_text(
      page.html, encoding='utf-8', errors='backslashreplace')
  (directory / f'{page.name}.png').write_bytes(page.png)
  return (f'{PAGE_DIR}/{page.name}.html', f'{PAGE_DIR}/{page.name}.png')
