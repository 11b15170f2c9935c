"""Progress lines for long runs: step, loss, steps/s, ETA.

Steps/s is training speed (steps per second of submission time); the ETA is
by the wall clock since the first report, so it counts evaluation and
curvature probes too.
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import TextIO


class Progress:
  """Prints at most one line per `min_interval_s`, to stderr by default."""

  def __init__(self, total_steps: int, *, quiet: bool = False,
               min_interval_s: float = 2.0, stream: TextIO | None = None):
    self.total_steps = total_steps
    self.quiet = quiet
    self.min_interval_s = min_interval_s
    self.stream = stream or sys.stderr
    self._last_print = -float('inf')
    self._rate_mark: tuple[float, int] | None = None
    self._last_rate = 0.0
    self._wall_mark: tuple[float, int] | None = None

  def step(self, step: int, submission_time_s: float, loss: float,
           extra: str = '', force: bool = False) -> None:
    now = time.perf_counter()
    if self.quiet or (not force and now - self._last_print <
                      self.min_interval_s):
      return
    rate = self._rate(step, submission_time_s)
    eta = self._eta(step, now)
    line = (f'step {step:>{len(str(self.total_steps))}}/{self.total_steps} | '
            f'loss {loss:.4g} | {rate:.1f} steps/s | ETA {eta}')
    self.message(f'{line}{" | " + extra if extra else ""}')
    self._last_print = now

  def _rate(self, step: int, submission_time_s: float) -> float:
    # Steps per second of submission time since the previous report.
    mark = self._rate_mark
    if mark is not None and step == mark[1]:
      return self._last_rate
    self._rate_mark = (submission_time_s, step)
    if mark is None or submission_time_s <= mark[0]:
      self._last_rate = 0.0
    else:
      self._last_rate = (step - mark[1]) / (submission_time_s - mark[0])
    return self._last_rate

  def _eta(self, step: int, now: float) -> str:
    if self._wall_mark is None:
      self._wall_mark = (now, step)
    start, first_step = self._wall_mark
    if step <= first_step:
      return '?'
    seconds_per_step = (now - start) / (step - first_step)
    return str(datetime.timedelta(
        seconds=round((self.total_steps - step) * seconds_per_step)))

  def message(self, text: str) -> None:
    if not self.quiet:
      print(text, file=self.stream, flush=True)
