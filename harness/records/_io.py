"""Reading a run directory's records.

See `harness.records` for the layout of a run directory.

Every failure to read a record, however exotic (a directory where a file
should be, UTF-16 text, JSON nested past the stack, an integer of thousands
of digits), becomes a `RecordError` naming the file at this boundary, so a
reader of many runs can skip one and go on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Callable, Iterator, TypeVar

from harness.records._lock import lock_holder
from harness.records._schema import CURVATURE_FILE
from harness.records._schema import EvalRecord
from harness.records._schema import LOCK_FILE
from harness.records._schema import META_FILE
from harness.records._schema import Meta
from harness.records._schema import METRICS_FILE
from harness.records._schema import ProbeRecord
from harness.records._schema import Status
from harness.records._schema import SUMMARY_FILE
from harness.records._schema import Summary
from harness.records._typed import Record
from harness.records._typed import RecordError

# Statuses a reader infers; a summary.json that claims one is not a record
# the runner wrote.
_INFERRED = (Status.RUNNING, Status.KILLED)
# Bad lines named one by one in a JSONL file's warnings; the rest are
# counted, so that one garbled file does not flood a report.
MAX_LINE_WARNINGS = 10
_BYTE_ORDER_MARKS = {
    b'\xff\xfe\x00\x00': 'UTF-32', b'\x00\x00\xfe\xff': 'UTF-32',
    b'\xff\xfe': 'UTF-16', b'\xfe\xff': 'UTF-16', b'\xef\xbb\xbf': 'UTF-8',
}


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """Everything one run directory holds, as read back.

  Attributes:
    path: the run directory.
    workload, submission, study, trial: from the directory's path.
    meta: meta.json.
    metrics: metrics.jsonl, in file order.
    curvature: curvature.jsonl, in file order.
    summary: summary.json; None while running, after a kill, or when it is
      unusable.
    warnings: what was skipped (`file:line: why`).
    lock_holder: who held the run's lock when it was read (see
      `lock_holder`); None when no live process did. Read only for a run
      without a usable summary.
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
  lock_holder: str | None = None

  @property
  def status(self) -> Status:
    """The summary's status; without one, RUNNING or KILLED by the lock."""
    if self.summary is not None:
      return self.summary.status
    return Status.RUNNING if self.lock_holder else Status.KILLED

  @property
  def last_step(self) -> int | None:
    """The last step any record of the run names; None before the first."""
    steps = [r.step for r in self.metrics] + [r.step for r in self.curvature]
    return max(steps, default=None)

  @property
  def device_kind(self) -> str:
    return self.meta.devices.kind


_RUN_PATH = re.compile(r'study_(\d+)/trial_(\d+)$')
_R = TypeVar('_R', bound=Record)


def _read_bytes(path: pathlib.Path) -> bytes:
  """A record file's bytes; RecordError when it is not a readable file."""
  try:
    if not path.is_file():
      what = ('is a directory, not a file' if path.is_dir() else
              'is not a regular file' if path.exists() else 'missing')
      raise RecordError(f'{path}: {what}')
    return path.read_bytes()
  except OSError as e:
    raise RecordError(f'{path}: cannot be read ({e.strerror or e})') from None


def _not_utf8(data: bytes) -> str | None:
  """Why bytes are not records' UTF-8 text (no byte-order mark), or None."""
  for mark, encoding in _BYTE_ORDER_MARKS.items():
    if data.startswith(mark):
      return f'{encoding} text with a byte-order mark; records are UTF-8'
  return None


def _decode_text(data: bytes, where: str) -> str:
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as e:
    raise RecordError(f'{where}: not UTF-8 text (byte {e.start})') from None


def _parse(text: str, where: str,
           invalid: Callable[[json.JSONDecodeError], str] = lambda e:
           f'not valid JSON ({e})') -> Any:
  """JSON text as Python data; RecordError, saying `invalid(e)` for a
  syntax error, for anything unusable."""
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise RecordError(f'{where}: {invalid(e)}') from None
  except RecursionError:
    raise RecordError(f'{where}: JSON nested too deeply to read') from None
  except ValueError as e:  # An integer past Python's int-from-str limit.
    raise RecordError(f'{where}: unreadable JSON value ({e})') from None


def _typed(value: Any, cls: type[_R], where: str) -> _R:
  try:
    return cls.from_json(value, source=where)
  except RecursionError:
    raise RecordError(f'{where}: nested too deeply to read') from None


def read_json(path: pathlib.Path, cls: type[_R]) -> _R:
  """A whole-file record; RecordError when missing or unusable."""
  path = pathlib.Path(path)
  data = _read_bytes(path)
  why = _not_utf8(data)
  if why:
    raise RecordError(f'{path}: {why}')
  return _typed(_parse(_decode_text(data, str(path)), str(path)), cls,
                str(path))


def read_jsonl(path: pathlib.Path, cls: type[_R]
               ) -> tuple[list[_R], list[str]]:
  """Records of a JSONL file and warnings for lines that were skipped.

  A missing file is an empty list. A bad line (truncated, corrupt, or not a
  valid record) is skipped and named in a warning as `path:line: why`; past
  `MAX_LINE_WARNINGS` of them one warning counts the rest. A file that
  cannot be read at all gives one warning and no records. Never raises.
  """
  path = pathlib.Path(path)
  if not path.exists() and not path.is_symlink():
    return [], []
  try:
    data = _read_bytes(path)
  except RecordError as e:
    return [], [f'{e}; skipped']
  why = _not_utf8(data)
  if why:
    return [], [f'{path}: {why}; skipped']
  records, warnings = [], []
  lines = data.split(b'\n')
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    last = number == len(lines)
    try:
      records.append(_line_record(line, cls, f'{path}:{number}', last))
    except RecordError as e:
      warnings.append(f'{e}; skipped')
  if len(warnings) > MAX_LINE_WARNINGS:
    more = len(warnings) - MAX_LINE_WARNINGS
    warnings[MAX_LINE_WARNINGS:] = [f'{path}: {more} more bad lines; skipped']
  return records, warnings


def _line_record(line: bytes, cls: type[_R], where: str, last: bool) -> _R:
  """One JSONL line as a record; `last`: the file's last, unterminated line."""
  value = _parse(_decode_text(line, where), where, lambda e: (
      'truncated last line' if last else f'corrupt line ({e.msg})'))
  return _typed(value, cls, where)


def _summary(path: pathlib.Path) -> tuple[Summary | None, list[str]]:
  """summary.json, or None and why it is not used."""
  file = path / SUMMARY_FILE
  if not file.exists() and not file.is_symlink():
    return None, []
  try:
    summary = read_json(file, Summary)
  except RecordError as e:
    return None, [f'{e}; run treated as unfinished']
  if summary.status in _INFERRED:
    return None, [f'{file}: status {summary.status.value!r} is only inferred '
                  'by readers, never written; run treated as unfinished']
  return summary, []


def _holder(path: pathlib.Path) -> str | None:
  """Who holds the run's lock; None also when the lock is not a plain file
  (opening a FIFO would block)."""
  try:
    if not (path / LOCK_FILE).is_file():
      return None
    return lock_holder(path)
  except OSError:
    return None


def read_run(path: str | os.PathLike) -> RunRecord:
  """Reads a run directory; raises RecordError when meta.json is unusable.

  Unusable JSONL lines and an unusable summary.json are warnings of the
  returned record; it raises nothing but RecordError.
  """
  path = pathlib.Path(path)
  match = _RUN_PATH.search(path.as_posix())
  if match is None or len(path.parents) < 3:
    raise RecordError(f'{path}: not a run directory (.../study_S/trial_T)')
  meta = read_json(path / META_FILE, Meta)
  metrics, w1 = read_jsonl(path / METRICS_FILE, EvalRecord)
  curvature, w2 = read_jsonl(path / CURVATURE_FILE, ProbeRecord)
  summary, w3 = _summary(path)
  return RunRecord(
      path=path, workload=path.parents[2].name, submission=path.parents[1].name,
      study=int(match.group(1)), trial=int(match.group(2)), meta=meta,
      metrics=tuple(metrics), curvature=tuple(curvature), summary=summary,
      warnings=tuple(w1 + w2 + w3),
      lock_holder=None if summary is not None else _holder(path))


def _is_run_dir(path: pathlib.Path) -> bool:
  """A run directory holds meta.json, or is named trial_* under study_*.

  The name alone counts, so a run whose meta.json is missing or unreadable
  is still found (and `read_run` says what is wrong with it).
  """
  if path.name.startswith('trial_') and path.parent.name.startswith('study_'):
    return True
  meta = path / META_FILE
  return meta.exists() or meta.is_symlink()


def _subdirectories(directory: pathlib.Path) -> list[pathlib.Path]:
  """Directories inside `directory`, sorted; symlinked ones only when they
  are run directories (descending through links could loop)."""
  try:
    entries = sorted(directory.iterdir())
  except OSError:
    return []
  found = []
  for entry in entries:
    if entry.name.startswith('.'):  # Kept aside (a suite's .aside/).
      continue
    try:
      if entry.is_dir() and (not entry.is_symlink() or _is_run_dir(entry)):
        found.append(entry)
    except OSError:
      continue
  return found


def find_run_dirs(experiment_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Run directories at any depth under an experiment directory, sorted.

  A run directory (one holding meta.json, or named trial_* under study_*)
  is never descended into, so nothing in it, its checkpoints/ included, is
  taken for another run; nor is a hidden directory (a name starting with
  '.', such as the `.aside/` where a suite keeps the old directories of
  trials it starts again). Run directories without a usable meta.json are
  yielded too: `read_run` says what is wrong with them. An unreadable or
  missing experiment directory yields nothing; so does an experiment
  directory that is itself a run directory (pass the directory above its
  `<workload>/`).

  Args:
    experiment_dir: where to look, e.g. `runs` holding `runs/study/<workload>/
      <submission>/study_S/trial_T/` or `runs/<workload>/...`.

  Yields:
    Run directories, in sorted order (by path components).
  """
  pending = [pathlib.Path(experiment_dir)]
  found = []
  while pending:
    directory = pending.pop()
    for child in _subdirectories(directory):
      if _is_run_dir(child):
        found.append(child)
      else:
        pending.append(child)
  yield from sorted(found)
