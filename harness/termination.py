"""Stopping a run on SIGTERM or Ctrl-C within seconds, even mid-compilation.

Python runs a signal handler only when the main thread returns to bytecode,
so a run inside an XLA compilation or a long compiled probe would not hear a
scheduler's SIGTERM until it finished (tens of seconds for a first probe).
The C-level handler does run at once, and writes the signal's number to the
wakeup file descriptor (`signal.set_wakeup_fd`); a watcher thread blocked on
that descriptor therefore wakes at once. It raises the flag the training
loop checks between steps, and if the loop has not taken the stop in hand
within `grace_s` (it is stuck in native code), it calls the run's emergency
stop, which records what it can and ends the process with 128 + signal.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Callable

# How long the loop may take to notice a stop before the watcher ends the
# process itself. A scheduler should allow this plus one checkpoint's time.
GRACE_S = 5.0

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
  """Turns SIGTERM and SIGINT into a flag; ends a stuck process after grace.

  Use as a context manager around a run, from the main thread (elsewhere it
  does nothing and the signals keep their handlers). `emergency_stop` is
  called from the watcher thread with the signal number when the loop does
  not call `acknowledge` within `grace_s`.
  """

  def __init__(self, emergency_stop: Callable[[int], None] | None = None, *,
               grace_s: float = GRACE_S):
    self.emergency_stop = emergency_stop
    self.grace_s = grace_s
    self.signum: int | None = None
    self._acknowledged = threading.Event()
    self._closed = threading.Event()
    self._previous: dict[int, object] = {}
    self._previous_fd = -1
    self._sockets: tuple[socket.socket, socket.socket] | None = None
    self._watcher: threading.Thread | None = None

  @property
  def received(self) -> bool:
    return self.signum is not None

  def acknowledge(self) -> None:
    """The loop has seen the stop and is checkpointing; no emergency stop."""
    self._acknowledged.set()

  def __enter__(self) -> StopSignals:
    if threading.current_thread() is not threading.main_thread():
      return self
    reader, writer = socket.socketpair()
    reader.setblocking(True)
    writer.setblocking(False)
    self._sockets = (reader, writer)
    for signum in _SIGNALS:
      self._previous[signum] = signal.signal(signum, self._on_signal)
    self._previous_fd = signal.set_wakeup_fd(writer.fileno(),
                                             warn_on_full_buffer=False)
    self._watcher = threading.Thread(target=self._watch, daemon=True,
                                     name='aeosperf-stop-watcher')
    self._watcher.start()
    return self

  def _on_signal(self, signum, frame) -> None:
    del frame
    if self.signum is None:
      self.signum = signum

  def _watch(self) -> None:
    reader = self._sockets[0]
    while not self._closed.is_set():
      try:
        data = reader.recv(16)
      except OSError:
        return
      if not data or self._closed.is_set():
        return
      signums = [b for b in data if b in _SIGNALS]
      if not signums:
        continue
      if self.signum is None:
        self.signum = signums[0]
      if (not self._acknowledged.wait(self.grace_s) and
          not self._closed.is_set() and self.emergency_stop is not None):
        self.emergency_stop(self.signum)
      return

  def __exit__(self, *exc) -> None:
    if self._sockets is None:
      return
    self._closed.set()
    signal.set_wakeup_fd(self._previous_fd)
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    reader, writer = self._sockets
    writer.close()  # Wakes the watcher, which then sees `_closed`.
    self._watcher.join(timeout=1.0)
    reader.close()
    self._sockets = None


def exit_status(signum: int) -> int:
  """The status a shell gives a process ended by `signum` (143, 130)."""
  return 128 + signum


def hard_exit(signum: int) -> None:
  """Ends the process now with 128 + signum, skipping Python's shutdown."""
  os._exit(exit_status(signum))
