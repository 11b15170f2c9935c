"""Run records: the only contract between running and scoring.

A run writes one directory::

  <experiment_dir>/<workload>/<submission>/study_<s>/trial_<t>/
    meta.json         written once at the start (and rewritten with end time)
    metrics.jsonl     one JSON object per evaluation, appended and flushed
    curvature.jsonl   one JSON object per curvature probe (when probing)
    summary.json      written at the end, atomically; absent while running

JSONL files are appended line by line and flushed after each line, so a
killed process leaves every complete line readable; a reader skips a
truncated last line with a warning. `summary.json` and `meta.json` are written
to a temporary file and renamed, so they are either whole or absent.

The field lists below are the schema; BUILD.md documents their meaning.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import pathlib
import re
from typing import Any, Iterator, Mapping

SCHEMA_VERSION = 1

META_FILE = 'meta.json'
METRICS_FILE = 'metrics.jsonl'
CURVATURE_FILE = 'curvature.jsonl'
SUMMARY_FILE = 'summary.json'

# Required keys of each record kind; writers may add more.
METRICS_FIELDS = ('step', 'submission_time_s', 'train_loss', 'target_reached')
CURVATURE_FIELDS = (
    'step', 'learning_rate', 'train_loss', 'sharpness', 'sharpness_topk',
    'preconditioned_sharpness', 'preconditioned_sharpness_topk',
    'stability_threshold', 'threshold_ratio', 'grad_norm',
    'preconditioner_norm', 'lanczos_residual', 'probe_seconds')
SUMMARY_FIELDS = ('status', 'time_to_target_s', 'steps_to_target')
META_FIELDS = ('workload', 'submission', 'hparams', 'seed', 'study', 'trial',
               'devices', 'versions', 'host')


class Status(str, enum.Enum):
  """How a run ended (or that it has not)."""

  REACHED_TARGET = 'reached_target'
  BUDGET_EXHAUSTED = 'budget_exhausted'
  DIVERGED = 'diverged'
  INTERRUPTED = 'interrupted'
  ERROR = 'error'
  RUNNING = 'running'  # Only ever inferred by readers: no summary yet.


class RecordError(ValueError):
  """A run directory or record file that cannot be used."""


def run_dir(experiment_dir: str | os.PathLike, workload: str, submission: str,
            study: int = 0, trial: int = 0) -> pathlib.Path:
  """Where a run's records live."""
  for label, part in (('workload', workload), ('submission', submission)):
    if not part or '/' in part or part in ('.', '..'):
      raise ValueError(f'{label} name {part!r} cannot be a directory name')
  return (pathlib.Path(experiment_dir) / workload / submission /
          f'study_{study}' / f'trial_{trial}')


def _json_default(value: Any) -> Any:
  # NumPy and JAX scalars and arrays arrive here.
  if hasattr(value, 'tolist'):
    return value.tolist()
  if isinstance(value, enum.Enum):
    return value.value
  if dataclasses.is_dataclass(value):
    return dataclasses.asdict(value)
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  raise TypeError(f'cannot write {type(value).__name__} to a run record')


def _sanitise(value: Any) -> Any:
  """Non-finite floats become strings: strict JSON has no NaN or Infinity."""
  if isinstance(value, float) and not math.isfinite(value):
    return repr(value)
  if isinstance(value, Mapping):
    return {k: _sanitise(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_sanitise(v) for v in value]
  return value


def dumps(record: Mapping[str, Any]) -> str:
  """One record as a single line of strict JSON."""
  plain = json.loads(json.dumps(record, default=_json_default))
  return json.dumps(_sanitise(plain), allow_nan=False, sort_keys=True)


def write_json_atomic(path: pathlib.Path, record: Mapping[str, Any]) -> None:
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(dumps(record) + '\n')
  os.replace(tmp, path)


class RunWriter:
  """Writes one run's records. Only the process with index 0 should own one."""

  def __init__(self, directory: pathlib.Path, *, overwrite: bool = False):
    self.directory = pathlib.Path(directory)
    if (self.directory / META_FILE).exists() and not overwrite:
      raise FileExistsError(
          f'{self.directory} already holds a run; choose another '
          '--experiment_dir, study or trial, or pass --overwrite')
    self.directory.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, CURVATURE_FILE, SUMMARY_FILE):
      (self.directory / name).unlink(missing_ok=True)
    self._streams: dict[str, Any] = {}

  def write_meta(self, meta: Mapping[str, Any]) -> None:
    _require(meta, META_FIELDS, META_FILE)
    write_json_atomic(self.directory / META_FILE,
                      {'schema_version': SCHEMA_VERSION, **meta})

  def append(self, file_name: str, record: Mapping[str, Any]) -> None:
    stream = self._streams.get(file_name)
    if stream is None:
      stream = open(self.directory / file_name, 'a', encoding='utf-8')
      self._streams[file_name] = stream
    stream.write(dumps(record) + '\n')
    stream.flush()

  def append_metrics(self, record: Mapping[str, Any]) -> None:
    _require(record, METRICS_FIELDS, METRICS_FILE)
    self.append(METRICS_FILE, record)

  def append_curvature(self, record: Mapping[str, Any]) -> None:
    _require(record, CURVATURE_FIELDS, CURVATURE_FILE)
    self.append(CURVATURE_FILE, record)

  def write_summary(self, summary: Mapping[str, Any]) -> None:
    _require(summary, SUMMARY_FIELDS, SUMMARY_FILE)
    Status(summary['status'])  # Raises on an unknown status.
    self.close()
    write_json_atomic(self.directory / SUMMARY_FILE, summary)

  def close(self) -> None:
    for stream in self._streams.values():
      stream.flush()
      os.fsync(stream.fileno())
      stream.close()
    self._streams.clear()


def _require(record: Mapping[str, Any], fields: tuple[str, ...],
             file_name: str) -> None:
  missing = [f for f in fields if f not in record]
  if missing:
    raise RecordError(f'{file_name} record lacks required fields {missing}')


# ---- Reading ----


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """Everything one run directory holds, as read back."""

  path: pathlib.Path
  workload: str
  submission: str
  study: int
  trial: int
  meta: dict[str, Any]
  metrics: list[dict[str, Any]]
  curvature: list[dict[str, Any]]
  summary: dict[str, Any] | None
  warnings: tuple[str, ...] = ()

  @property
  def status(self) -> Status:
    if self.summary is None:
      return Status.RUNNING
    return Status(self.summary['status'])

  @property
  def device_kind(self) -> str:
    return str(self.meta.get('devices', {}).get('kind', 'unknown'))


_RUN_PATH = re.compile(r'study_(\d+)/trial_(\d+)$')


def _decode_float(value: Any) -> Any:
  if isinstance(value, str) and value in ('nan', 'inf', '-inf'):
    return float(value)
  if isinstance(value, dict):
    return {k: _decode_float(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_decode_float(v) for v in value]
  return value


def read_json(path: pathlib.Path) -> dict[str, Any]:
  try:
    value = json.loads(path.read_text(encoding='utf-8'))
  except FileNotFoundError:
    raise RecordError(f'{path}: missing') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RecordError(f'{path}: not valid JSON ({e})') from None
  if not isinstance(value, dict):
    raise RecordError(f'{path}: expected a JSON object')
  return _decode_float(value)


def read_jsonl(path: pathlib.Path, fields: tuple[str, ...]
               ) -> tuple[list[dict[str, Any]], list[str]]:
  """Records of a JSONL file and warnings for lines that were skipped.

  A missing file is an empty list. A bad line (truncated, corrupt, or lacking
  a required field) is skipped and named in a warning as `path:line`.
  """
  if not path.exists():
    return [], []
  records, warnings = [], []
  text = path.read_text(encoding='utf-8', errors='replace')
  lines = text.split('\n')
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      last = number == len(lines) and not text.endswith('\n')
      why = 'truncated last line' if last else f'corrupt line ({e.msg})'
      warnings.append(f'{path}:{number}: {why}; skipped')
      continue
    if not isinstance(record, dict) or any(f not in record for f in fields):
      warnings.append(f'{path}:{number}: missing required fields; skipped')
      continue
    records.append(_decode_float(record))
  return records, warnings


def read_run(path: str | os.PathLike) -> RunRecord:
  """Reads a run directory; raises RecordError when meta.json is unusable."""
  path = pathlib.Path(path)
  match = _RUN_PATH.search(path.as_posix())
  if match is None:
    raise RecordError(f'{path}: not a run directory (.../study_S/trial_T)')
  meta = read_json(path / META_FILE)
  metrics, w1 = read_jsonl(path / METRICS_FILE, METRICS_FIELDS)
  curvature, w2 = read_jsonl(path / CURVATURE_FILE, CURVATURE_FIELDS)
  warnings = w1 + w2
  summary = None
  if (path / SUMMARY_FILE).exists():
    try:
      summary = read_json(path / SUMMARY_FILE)
      _require(summary, SUMMARY_FIELDS, str(path / SUMMARY_FILE))
      Status(summary['status'])
    except (RecordError, ValueError) as e:
      warnings.append(f'{e}; run treated as unfinished')
      summary = None
  return RunRecord(
      path=path, workload=path.parents[2].name, submission=path.parents[1].name,
      study=int(match.group(1)), trial=int(match.group(2)), meta=meta,
      metrics=metrics, curvature=curvature, summary=summary,
      warnings=tuple(warnings))


def find_run_dirs(experiment_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Run directories under an experiment directory, in sorted order.

  Directories without a usable meta.json are yielded too: `read_run` says
  what is wrong with them.
  """
  root = pathlib.Path(experiment_dir)
  for path in sorted(root.glob('*/*/study_*/trial_*')):
    if path.is_dir():
      yield path
