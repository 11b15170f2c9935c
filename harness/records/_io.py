"""Writing and reading a run directory's records.

See `harness.records` for the layout of a run directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Iterator, TypeVar

from harness.records._schema import CURVATURE_FILE
from harness.records._schema import EvalRecord
from harness.records._schema import META_FILE
from harness.records._schema import Meta
from harness.records._schema import METRICS_FILE
from harness.records._schema import ProbeRecord
from harness.records._schema import Status
from harness.records._schema import SUMMARY_FILE
from harness.records._schema import Summary
from harness.records._typed import Record
from harness.records._typed import RecordError


# ---- Writing ----


def dumps(record: Record) -> str:
  """One record as a single line of strict JSON, keys sorted."""
  return json.dumps(record.to_json(), allow_nan=False, sort_keys=True)


def write_json_atomic(path: pathlib.Path, record: Record) -> None:
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

  def write_meta(self, meta: Meta) -> None:
    write_json_atomic(self.directory / META_FILE, meta)

  def _append(self, file_name: str, record: Record) -> None:
    stream = self._streams.get(file_name)
    if stream is None:
      stream = open(self.directory / file_name, 'a', encoding='utf-8')
      self._streams[file_name] = stream
    stream.write(dumps(record) + '\n')
    stream.flush()

  def append_eval(self, record: EvalRecord) -> None:
    self._append(METRICS_FILE, record)

  def append_probe(self, record: ProbeRecord) -> None:
    self._append(CURVATURE_FILE, record)

  def write_summary(self, summary: Summary) -> None:
    self.close()
    write_json_atomic(self.directory / SUMMARY_FILE, summary)

  def close(self) -> None:
    for stream in self._streams.values():
      stream.flush()
      os.fsync(stream.fileno())
      stream.close()
    self._streams.clear()


# ---- Reading ----


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """Everything one run directory holds, as read back.

  Attributes:
    path: the run directory.
    workload, submission, study, trial: from the directory's path.
    meta: meta.json.
    metrics: metrics.jsonl, in file order.
    curvature: curvature.jsonl, in file order.
    summary: summary.json; None while running or when it is unusable.
    warnings: what was skipped (`file:line: why`).
  """

  path: pathlib.Path
  workload: str
  submission: str
  study: int
  trial: int
  meta: Meta
  metrics: tuple[EvalRecord, ...]
  curvature: tuple[ProbeRecord, ...]
  summary: Summary | None
  warnings: tuple[str, ...] = ()

  @property
  def status(self) -> Status:
    if self.summary is None:
      return Status.RUNNING
    return self.summary.status

  @property
  def device_kind(self) -> str:
    return self.meta.devices.kind


_RUN_PATH = re.compile(r'study_(\d+)/trial_(\d+)$')
_R = TypeVar('_R', bound=Record)


def read_json(path: pathlib.Path, cls: type[_R]) -> _R:
  """A whole-file record; RecordError when missing or unusable."""
  try:
    value = json.loads(path.read_text(encoding='utf-8'))
  except FileNotFoundError:
    raise RecordError(f'{path}: missing') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RecordError(f'{path}: not valid JSON ({e})') from None
  return cls.from_json(value, source=str(path))


def read_jsonl(path: pathlib.Path, cls: type[_R]
               ) -> tuple[list[_R], list[str]]:
  """Records of a JSONL file and warnings for lines that were skipped.

  A missing file is an empty list. A bad line (truncated, corrupt, or not a
  valid record) is skipped and named in a warning as `path:line: why`.
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
      value = json.loads(line)
    except json.JSONDecodeError as e:
      last = number == len(lines) and not text.endswith('\n')
      why = 'truncated last line' if last else f'corrupt line ({e.msg})'
      warnings.append(f'{path}:{number}: {why}; skipped')
      continue
    try:
      records.append(cls.from_json(value, source=f'{path}:{number}'))
    except RecordError as e:
      warnings.append(f'{e}; skipped')
  return records, warnings


def read_run(path: str | os.PathLike) -> RunRecord:
  """Reads a run directory; raises RecordError when meta.json is unusable."""
  path = pathlib.Path(path)
  match = _RUN_PATH.search(path.as_posix())
  if match is None:
    raise RecordError(f'{path}: not a run directory (.../study_S/trial_T)')
  meta = read_json(path / META_FILE, Meta)
  metrics, w1 = read_jsonl(path / METRICS_FILE, EvalRecord)
  curvature, w2 = read_jsonl(path / CURVATURE_FILE, ProbeRecord)
  warnings = w1 + w2
  summary = None
  if (path / SUMMARY_FILE).exists():
    try:
      summary = read_json(path / SUMMARY_FILE, Summary)
    except RecordError as e:
      warnings.append(f'{e}; run treated as unfinished')
  return RunRecord(
      path=path, workload=path.parents[2].name, submission=path.parents[1].name,
      study=int(match.group(1)), trial=int(match.group(2)), meta=meta,
      metrics=tuple(metrics), curvature=tuple(curvature), summary=summary,
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
