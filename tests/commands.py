"""`python -m <module> ...` in a subprocess, as a user would run it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def environment(**extra: str) -> dict[str, str]:
  """This process's environment, with the project importable."""
  return {**os.environ, 'PYTHONPATH': str(ROOT), **extra}


def forced_devices(count: int, **extra: str) -> dict[str, str]:
  """`environment()` for a fresh process that sees `count` CPU devices."""
  flags = f'--xla_force_host_platform_device_count={count}'
  return environment(
      JAX_PLATFORMS='cpu',
      XLA_FLAGS=f'{os.environ.get("XLA_FLAGS", "")} {flags}'.strip(),
      **extra)


def run_module(module: str, *args: str,
               timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the project root; text output."""
  return subprocess.run(
      [sys.executable, '-m', module, *args], cwd=ROOT, env=environment(),
      capture_output=True, text=True, timeout=timeout)
