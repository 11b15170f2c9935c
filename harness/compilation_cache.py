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
(`harness.clock.charged_now`). Library calls (`runner.train`,
`curvature.sharpness`) leave JAX's configuration as the caller set it.
"""

from __future__ import annotations

import os
import pathlib

from absl import flags
import jax

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
