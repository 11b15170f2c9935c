"""JAX's persistent compilation cache, on by default at the entry points.

Every `python -m` entry point that trains or probes (the runner, suites,
studies, calibration, the demo, the paper's figures) stores what XLA
compiles in a directory and reads it back in later processes, so a second
run of the demo or of a suite compiles nothing it compiled before. Where:

1. `--compilation_cache=DIR`, or `--compilation_cache=off`;
2. else the environment variable `AEOSPERF_COMPILATION_CACHE` (a directory,
   or `off`);
3. else `$XDG_CACHE_HOME/aeosperf/jax` (`~/.cache/aeosperf/jax`).

Processes the entry point starts (a suite's trials) inherit the setting
through JAX's own environment variables. Scored times do not depend on the
cache: a compilation it serves is charged at the compile time it saved
(`seconds_saved`, read by `harness.clock.charged_now`). Library calls
(`runner.train`, `curvature.sharpness`) leave JAX's configuration as the
caller set it.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import threading
from typing import Any, Callable

from absl import flags
import jax
import jax.monitoring

from harness import cli

ENVIRONMENT_VARIABLE = 'AEOSPERF_COMPILATION_CACHE'
OFF = 'off'

_FLAG = flags.DEFINE_string(
    'compilation_cache', None,
    'Directory of JAX\'s persistent compilation cache, or "off". Unset: '
    f'${ENVIRONMENT_VARIABLE}, else $XDG_CACHE_HOME/aeosperf/jax. Scored '
    'times charge a cached compilation at the time it saved, so they do not '
    'depend on the cache.')

# JAX's settings for a cache that keeps every program, however fast it
# compiled or small it is (by default JAX skips those under a second), as
# configuration names and as the environment variables JAX reads at start.
_SETTINGS = {
    'jax_persistent_cache_min_compile_time_secs': 0.0,
    'jax_persistent_cache_min_entry_size_bytes': -1,
}


def default_directory() -> pathlib.Path:
  cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return pathlib.Path(cache_home) / 'aeosperf' / 'jax'


def resolve(value: str | None) -> pathlib.Path | None:
  """The cache directory a flag value asks for (None: off).

  Args:
    value: the flag's value; None defers to the environment variable, then
      to `default_directory()`.
  """
  if value is None:
    value = os.environ.get(ENVIRONMENT_VARIABLE) or None
  if value is None:
    return default_directory()
  if value.strip().lower() == OFF:
    return None
  return pathlib.Path(value).expanduser().absolute()


def enable(directory: pathlib.Path | None) -> None:
  """Turns the cache on in `directory` (off for None), in this process and
  in the processes it starts."""
  if directory is None:
    os.environ[ENVIRONMENT_VARIABLE] = OFF
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
    jax.config.update('jax_compilation_cache_dir', None)
    return
  directory.mkdir(parents=True, exist_ok=True)
  _SAVINGS.install()  # Before the first compilation it should time.
  os.environ[ENVIRONMENT_VARIABLE] = str(directory)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = str(directory)
  jax.config.update('jax_compilation_cache_dir', str(directory))
  for name, value in _SETTINGS.items():
    os.environ[name.upper()] = str(value)
    jax.config.update(name, value)


def enable_from_flags(program: str) -> pathlib.Path | None:
  """`enable(resolve(--compilation_cache))`, for an entry point's `main`;
  returns the directory (None: off). A directory that cannot be made is
  one line and exit 2."""
  directory = resolve(_FLAG.value)
  try:
    enable(directory)
  except OSError as e:
    cli.fail(program, f'--compilation_cache: cannot use {directory} ({e}); '
             f'give a writable directory, or --compilation_cache={OFF}')
  return directory


# A cache hit reports the compile time it saved, as JAX's event
# (jax._src.compiler): the entry's compile time less the time the read took.
_SAVED_EVENT = '/jax/compilation_cache/compile_time_saved_sec'
# JAX keeps an entry's compile time in whole seconds (`int(seconds)`), too
# coarse to charge: a program that compiled in 0.9 s would be charged
# nothing. Beside each entry JAX writes, this file keeps the time to the
# microsecond, and a hit adds back the fraction JAX dropped.
_SECONDS_SUFFIX = '-compile-seconds'


class _Savings:
  """The compile seconds the persistent cache saved in this process.

  Counts from the first call of `seconds` or `install` on. The exact times
  come through two of JAX's private functions (`_cache_write`,
  `log_persistent_cache_hit` in `jax._src.compiler`), wrapped; where a JAX
  release lacks them, or an entry has no file of ours, a hit counts at
  JAX's whole seconds.
  """

  def __init__(self):
    self._seconds = 0.0
    self._dropped = threading.local()  # For the hit this thread is reading.
    self._lock = threading.Lock()
    self._installed = False

  def seconds(self) -> float:
    if not self._installed:  # Read at every clock reading: no lock after.
      self.install()
    return self._seconds

  def install(self) -> None:
    with self._lock:
      if self._installed:
        return
      jax.monitoring.register_event_duration_secs_listener(self._on_event)
      compiler = importlib.import_module('jax._src.compiler')
      write = getattr(compiler, '_cache_write', None)
      hit = getattr(compiler, 'log_persistent_cache_hit', None)
      if callable(write) and callable(hit):
        compiler._cache_write = self._after_write(write)
        compiler.log_persistent_cache_hit = self._after_hit(hit)
      self._installed = True

  def _on_event(self, event: str, duration_s: float, **kwargs) -> None:
    del kwargs
    if event == _SAVED_EVENT:
      self._seconds += duration_s + getattr(self._dropped, 'seconds', 0.0)
      self._dropped.seconds = 0.0

  def _after_write(self, write: Callable[..., Any]) -> Callable[..., Any]:
    def cache_write(cache_key, compile_time_secs, *args, **kwargs):
      write(cache_key, compile_time_secs, *args, **kwargs)
      seconds_file = _seconds_file(cache_key)
      # JAX's LRU cache names an entry '<key>-cache'; none where it skipped.
      if seconds_file and seconds_file.with_name(f'{cache_key}-cache').exists():
        partial = seconds_file.with_name(
            f'{seconds_file.name}.{os.getpid()}.tmp')
        try:
          partial.write_text(repr(float(compile_time_secs)))
          partial.replace(seconds_file)  # Whole or absent for a reader.
        except OSError:
          pass  # As JAX's own write: a cache that fails costs no run.
    return cache_write

  def _after_hit(self, hit: Callable[..., Any]) -> Callable[..., Any]:
    def log_persistent_cache_hit(module_name, cache_key, *args, **kwargs):
      hit(module_name, cache_key, *args, **kwargs)
      seconds_file = _seconds_file(cache_key)
      try:
        exact = float(seconds_file.read_text()) if seconds_file else None
      except (OSError, ValueError):
        exact = None
      if exact is None:
        return  # No exact time: JAX's whole seconds.
      self._dropped.seconds = exact - int(exact)
    return log_persistent_cache_hit


def _seconds_file(cache_key: str) -> pathlib.Path | None:
  """Where an entry's exact compile time is kept; None for a cache that is
  off or not on a local disk."""
  value = jax.config.jax_compilation_cache_dir
  if not value or '://' in value:
    return None
  return pathlib.Path(value) / f'{cache_key}{_SECONDS_SUFFIX}'


_SAVINGS = _Savings()


def seconds_saved() -> float:
  """Compile seconds that cache hits have saved in this process so far, to
  the precision of the compile each hit replaced (see `_Savings`)."""
  return _SAVINGS.seconds()
