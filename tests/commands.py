"""`python -m <module> ...` in a subprocess, as a user would run it."""

from __future__ import annotations

import os
import pathlib
import socket
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


def free_port() -> int:
  """A TCP port of this host that nothing listens on now."""
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def start_processes(module: str, *args: str, count: int,
                    env: dict[str, str],
                    logs: pathlib.Path) -> list[subprocess.Popen]:
  """`python -m module args` as the `count` processes of one run on this
  host (`--coordinator_address`, `--num_processes`, `--process_id`), each
  writing its output to `logs/process_<i>.log`."""
  logs.mkdir(parents=True, exist_ok=True)
  cluster = (f'--coordinator_address=127.0.0.1:{free_port()}',
             f'--num_processes={count}')
  processes = []
  for index in range(count):
    with open(logs / f'process_{index}.log', 'w') as log:
      processes.append(subprocess.Popen(
          [sys.executable, '-m', module, *args, *cluster,
           f'--process_id={index}'], cwd=ROOT, env=env, stdout=log,
          stderr=subprocess.STDOUT))
  return processes
