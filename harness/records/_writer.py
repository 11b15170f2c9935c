"""Writing a run directory's records (the reader is `_io.py`).

See `harness.records` for the layout of a run directory.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import threading
from typing import Any

from harness.records._schema import CHECKPOINT_DIR
from harness.records._schema import CURVATURE_FILE
from harness.records._schema import EvalRecord
from harness.records._schema import META_FILE
from harness.records._schema import Meta
from harness.records._schema import METRICS_FILE
from harness.records._schema import ProbeRecord
from harness.records._schema import SUMMARY_FILE
from harness.records._schema import Summary
from harness.records._typed import Record


def dumps(record: Record) -> str:
  """One record as a single line of strict JSON, keys sorted."""
  return json.dumps(record.to_json(), allow_nan=False, sort_keys=True)


def write_json_atomic(path: pathlib.Path, record: Record) -> None:
  tmp = path.with_name(f'.{path.name}.tmp')
  tmp.write_text(dumps(record) + '\n')
  os.replace(tmp, path)


class RunWriter:
  """Writes one run's records. Only the process with index 0 should own one.

  It appends to what the directory holds; deciding whether a directory may
  be written (a finished run, a run to resume, a live holder) is
  `harness.run_directory`'s. Writes are serialised by a lock, because a stop
  signal can make another thread write the summary.
  """

  def __init__(self, directory: pathlib.Path):
    self.directory = pathlib.Path(directory)
    self.directory.mkdir(parents=True, exist_ok=True)
    self._streams: dict[str, Any] = {}
    self._lock = threading.RLock()

  def clear(self) -> None:
    """Removes every record of an earlier run (the lock file stays)."""
    with self._lock:
      self.close()
      for name in (META_FILE, METRICS_FILE, CURVATURE_FILE, SUMMARY_FILE):
        (self.directory / name).unlink(missing_ok=True)
      for path in self.directory.glob('preconditioner_step_*.npz'):
        path.unlink()
      shutil.rmtree(self.directory / CHECKPOINT_DIR, ignore_errors=True)

  def truncate_from(self, step: int) -> None:
    """Drops records of steps >= `step` and the summary, for a resume.

    Lines that are not complete JSON records with an integer step (a line
    torn by a kill) are dropped too. Each file is replaced atomically.
    """
    with self._lock:
      self.close()
      (self.directory / SUMMARY_FILE).unlink(missing_ok=True)
      for name in (METRICS_FILE, CURVATURE_FILE):
        path = self.directory / name
        if path.is_file():
          lines = path.read_text(encoding='utf-8',
                                 errors='replace').splitlines()
          kept = [line for line in lines
                  if (at := _step_of(line)) is not None and at < step]
          tmp = path.with_name(f'.{path.name}.tmp')
          tmp.write_text(''.join(line + '\n' for line in kept),
                         encoding='utf-8')
          os.replace(tmp, path)

  def write_meta(self, meta: Meta) -> None:
    with self._lock:
      write_json_atomic(self.directory / META_FILE, meta)

  def _append(self, file_name: str, record: Record) -> None:
    with self._lock:
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
    with self._lock:
      self.close()
      write_json_atomic(self.directory / SUMMARY_FILE, summary)

  def close(self) -> None:
    with self._lock:
      for stream in self._streams.values():
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
      self._streams.clear()


def _step_of(line: str) -> int | None:
  try:
    value = json.loads(line)
  except ValueError:
    return None
  step = value.get('step') if isinstance(value, dict) else None
  return step if isinstance(step, int) and not isinstance(step, bool) else None
