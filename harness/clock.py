"""The submission clock: time spent on the submission's own work only.

Like big_vision's `Chrono`: the clock runs while the submission selects data
and updates parameters, and is paused, after `jax.block_until_ready`, for
evaluation, curvature probes and checkpoints. JAX dispatch is asynchronous,
so reading the clock without synchronising would leak training work into the
untimed pauses; `pause` therefore always blocks on the arrays it is given.

This clock measures the steady loop, the compile-free time. The runner times
the run's first step (compilation and one execution) and each call of
`prepare_for_eval` apart and adds them to it: that sum is the submission time
AlgoPerf scores, whose rules count just-in-time compilation and
`prepare_for_eval` in the training time. The first step after a resume
compiles again but is not added: the run's compilation is counted once, as
in a run never interrupted.

The clock also counts the XLA compilations that happen while it runs: a fair
run compiles every step function in its first step, so any count above zero
is a compilation inside the steady loop (an input whose sharding or dtype
changes after step 0, a retrace on a Python value), charged to the
submission in both times.

A compilation that JAX's persistent compilation cache serves
(`harness.compilation_cache`) is charged as if it had run: the cache keeps
each program's compile time, and every submission-time reading adds the
seconds the hits saved (`charged_now`). A run's scored time is then the same
whether its programs were compiled before or not, and no trial's score
depends on which ran first.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.monitoring

from harness import compilation_cache

# jax's event for one XLA backend compilation (jax._src.dispatch), whether
# compiled or read from the persistent cache.
_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'


class _CompileCounter:
  """Counts XLA compilations in this process from the first reading on."""

  def __init__(self):
    self._count = 0
    self._listening = False

  def _on_event(self, event: str, duration_s: float, **kwargs) -> None:
    del duration_s, kwargs
    if event == _COMPILE_EVENT:
      self._count += 1

  def count(self) -> int:
    if not self._listening:
      jax.monitoring.register_event_duration_secs_listener(self._on_event)
      self._listening = True
    return self._count


_COMPILES = _CompileCounter()


def charged_now() -> float:
  """A reading for submission time: `time.perf_counter()` plus the compile
  seconds the persistent cache has saved so far. The difference of two
  readings is the wall time between them with every compilation charged
  as if it had run."""
  return time.perf_counter() + compilation_cache.seconds_saved()


class SubmissionClock:
  """Accumulates the wall time between `resume` and `pause`."""

  def __init__(self, elapsed_s: float = 0.0, compiles: int = 0):
    self._elapsed = elapsed_s
    self._started: float | None = None
    self._compiles = compiles
    self._compiles_at_start = 0

  @property
  def running(self) -> bool:
    return self._started is not None

  def resume(self) -> None:
    if self._started is None:
      self._compiles_at_start = _COMPILES.count()
      self._started = charged_now()

  def pause(self, *pending: Any) -> float:
    """Waits for `pending` device work, then stops the clock.

    Returns:
      The total elapsed submission time in seconds.
    """
    jax.block_until_ready(pending)
    if self._started is not None:
      self._elapsed += charged_now() - self._started
      self._started = None
      self._compiles += _COMPILES.count() - self._compiles_at_start
    return self._elapsed

  def adopt(self, elapsed_s: float) -> None:
    """Takes `elapsed_s` as the total, while paused: over several
    processes, the slowest one's (`harness.distributed.Agreement`)."""
    if self._started is not None:
      raise RuntimeError('the clock adopts a total only while paused')
    self._elapsed = elapsed_s

  @property
  def compiles(self) -> int:
    """Compilations while the clock ran; only exact while paused."""
    return self._compiles

  @property
  def elapsed_s(self) -> float:
    """Total time so far; only exact while paused."""
    running = 0.0 if self._started is None else (
        charged_now() - self._started)
    return self._elapsed + running


class Stopwatch:
  """Times a block: `with Stopwatch() as t: ...; t.seconds`.

  With `scored=True` it reads `charged_now`, for time that is scored
  (`prepare_for_eval`); otherwise plain wall time.
  """

  def __init__(self, *, scored: bool = False):
    self._read = charged_now if scored else time.perf_counter

  def __enter__(self) -> Stopwatch:
    self._start = self._read()
    self.seconds = 0.0
    return self

  def __exit__(self, *exc) -> None:
    self.seconds = self._read() - self._start
