"""One writer per run directory: an advisory lock held for the run's life.

The lock is `fcntl.flock` on `<run_dir>/lock`, so the kernel releases it when
the holding process ends in any way (kill -9 included): a lock file without a
live holder is only a file. The file names the holder (host, pid, start
time) so that a refused second launch can say who has the directory. flock
works between processes of one host and on most network file systems that
support it (NFSv4, Lustre with `flock` mounted); on one without it, the lock
only guards launches from the same host.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import socket

from harness.records._schema import LOCK_FILE


class RunLocked(RuntimeError):
  """Another live process holds the run directory."""

  def __init__(self, directory: pathlib.Path, holder: str):
    super().__init__(f'{directory} is in use by {holder}; wait for it to end '
                     'or stop that process')
    self.holder = holder


class RunLock:
  """Held while a run writes its directory; `with RunLock(d): ...`."""

  def __init__(self, directory: str | os.PathLike):
    self.directory = pathlib.Path(directory)
    self._file = None

  def acquire(self, started: str) -> None:
    """Takes the lock or raises `RunLocked` naming the live holder.

    Args:
      started: when the holder started (ISO 8601), written into the file.
    """
    self.directory.mkdir(parents=True, exist_ok=True)
    handle = open(self.directory / LOCK_FILE, 'a+', encoding='utf-8')
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      handle.close()
      raise RunLocked(self.directory, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'host {socket.gethostname()} pid {os.getpid()} since '
                 f'{started}\n')
    handle.flush()
    self._file = handle

  def release(self) -> None:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None

  def __enter__(self) -> RunLock:
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def lock_holder(directory: str | os.PathLike) -> str | None:
  """Who holds the run directory's lock now, or None if no live process does."""
  path = pathlib.Path(directory) / LOCK_FILE
  try:
    handle = open(path, 'r', encoding='utf-8', errors='replace')
  except (FileNotFoundError, IsADirectoryError, NotADirectoryError,
          PermissionError):
    return None
  with handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      return handle.read().strip() or 'another process'
    fcntl.flock(handle, fcntl.LOCK_UN)
    return None
