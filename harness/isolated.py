"""A call in a fresh Python process, with the stop signals passed on.

A suite runs each trial this way, as a scheduler's task would run: in one
process a later trial's first step would reuse what an earlier trial had
compiled, and the scored time, which counts that compilation, would depend
on the order of the jobs. SIGTERM and SIGINT sent to the caller go to the
call's process, whose run checkpoints and ends as it does when it is
stopped alone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from typing import Any, Callable


class Stopped(Exception):
  """A stop signal came while the call ran: the call has ended (a run
  checkpoints and stops), and `result` is what it returned."""

  def __init__(self, signum: int, result: Any):
    super().__init__(f'stopped by signal {signum}')
    self.signum = signum
    self.result = result


def _in_child(connection, function: Callable[..., Any], args: tuple) -> None:
  # The caller's process group: a kill of the group ends the call too. A
  # terminal's Ctrl-C then reaches it twice, directly and passed on, and a
  # run takes the first stop signal and ignores the second.
  try:
    connection.send((True, function(*args)))
  except BaseException as e:  # pylint: disable=broad-except
    connection.send((False, f'{type(e).__name__}: {e}'))


def call(function: Callable[..., Any], *args: Any) -> Any:
  """`function(*args)` in a new (spawned) Python process; its result.

  `function`, its arguments and its result travel by pickle. SIGTERM and
  SIGINT that reach this process meanwhile are passed on to the call's;
  once it has ended, `Stopped` is raised.

  Raises:
    RuntimeError: the function raised, or its process died (the message
      says which).
    Stopped: a stop signal came while it ran.
  """
  context = multiprocessing.get_context('spawn')
  receive, send = context.Pipe(duplex=False)
  child = context.Process(target=_in_child, args=(send, function, args))
  child.start()
  send.close()
  stops: list[int] = []

  def forward(signum, frame):
    del frame
    stops.append(signum)
    os.kill(child.pid, signum)

  main = threading.current_thread() is threading.main_thread()
  previous = {signum: signal.signal(signum, forward)
              for signum in (signal.SIGTERM, signal.SIGINT) if main}
  try:
    try:
      ok, value = receive.recv()
    except EOFError:
      ok, value = False, 'its process died'
    child.join()
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  if not ok:
    value = RuntimeError(f'{value} (exit code {child.exitcode})')
  if stops:
    raise Stopped(stops[0], value)
  if isinstance(value, Exception):
    raise value
  return value
