"""The submission clock: time spent on the submission's own work only.

Like big_vision's `Chrono`: the clock runs while the submission selects data
and updates parameters, and is paused, after `jax.block_until_ready`, for
evaluation, curvature probes and checkpoints. JAX dispatch is asynchronous,
so reading the clock without synchronising would leak training work into the
untimed pauses; `pause` therefore always blocks on the arrays it is given.
The first step (compilation and one execution) is timed apart by the runner.
"""

from __future__ import annotations

import time
from typing import Any

import jax


class SubmissionClock:
  """Accumulates the wall time between `resume` and `pause`."""

  def __init__(self, elapsed_s: float = 0.0):
    self._elapsed = elapsed_s
    self._started: float | None = None

  @property
  def running(self) -> bool:
    return self._started is not None

  def resume(self) -> None:
    if self._started is None:
      self._started = time.perf_counter()

  def pause(self, *pending: Any) -> float:
    """Waits for `pending` device work, then stops the clock.

    Returns:
      The total elapsed submission time in seconds.
    """
    jax.block_until_ready(pending)
    if self._started is not None:
      self._elapsed += time.perf_counter() - self._started
      self._started = None
    return self._elapsed

  @property
  def elapsed_s(self) -> float:
    """Total time so far; only exact while paused."""
    running = 0.0 if self._started is None else (
        time.perf_counter() - self._started)
    return self._elapsed + running


class Stopwatch:
  """Times a block: `with Stopwatch() as t: ...; t.seconds`."""

  def __enter__(self) -> Stopwatch:
    self._start = time.perf_counter()
    self.seconds = 0.0
    return self

  def __exit__(self, *exc) -> None:
    self.seconds = time.perf_counter() - self._start
