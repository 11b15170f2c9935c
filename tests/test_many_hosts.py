"""One run over two processes on this machine, through `jax.distributed`.

The same short run (fmnist_fc, Adam, a probe every five steps) as one
process with one CPU device, one process with two, and two processes with
one each (JAX's CPU collectives over localhost). The run of two processes
is stopped twice on its way, and each time the same command resumes it on
both: SIGTERM to process 1 alone stops both at one step, checkpointed;
kill -9 of process 1 makes process 0 record the failure and end at once
with one line. Its records must still be those of the others.

Both stops come before the first probe, whose compilation takes most of a
launch, so that only the last launch compiles it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import signal
import subprocess
import sys
import time

from absl import flags
from absl.testing import flagsaver
import pytest

from harness import records
from harness import run_directory
from harness import submission_runner
from tests import commands

ARGS = ('--workload=fmnist_fc', '--submission=adam', '--train_size=400',
        '--chunk_size=200', '--max_steps=10', '--eval_every=5',
        '--log_every=2', '--curvature_every=5', '--lanczos_iterations=5',
        '--keep_training_past_target', '--max_runtime_s=600', '--quiet')
# JAX's heartbeat timeout in the run of two processes: the bound on how
# long a survivor may wait for a dead process.
TIMEOUT_S = 30
TIMING_FIELDS = frozenset({'submission_time_s', 'compile_free_time_s',
                           'eval_seconds', 'probe_seconds'})
MODULE = 'harness.submission_runner'


@dataclasses.dataclass(frozen=True)
class Ending:
  """How the processes of one launch ended."""

  statuses: tuple[int, ...]
  seconds: float  # From the signal to the last process's end.
  # Each process's last lines of output (native logs may follow its own).
  last_lines: tuple[tuple[str, ...], ...]
  summary: records.Summary
  checkpoints: tuple[int, ...]  # The steps it can resume from.


@dataclasses.dataclass(frozen=True)
class Runs:
  one_device: pathlib.Path
  two_devices: pathlib.Path
  two_processes: pathlib.Path
  terminated: Ending
  refusal: str
  killed: Ending


def _run_dir(experiment_dir: pathlib.Path) -> pathlib.Path:
  return records.run_dir(experiment_dir, 'fmnist_fc', 'adam')


@dataclasses.dataclass(frozen=True)
class _Started:
  """A run of one process, started; `result` waits for its directory."""

  process: subprocess.Popen
  experiment_dir: pathlib.Path

  @property
  def log(self) -> pathlib.Path:
    return self.experiment_dir.with_suffix('.log')

  def result(self) -> pathlib.Path:
    status = self.process.wait(timeout=600)
    assert status == 0, self.log.read_text()[-3000:]
    return _run_dir(self.experiment_dir)


def _one_process(experiment_dir: pathlib.Path, devices: int) -> _Started:
  with open(experiment_dir.with_suffix('.log'), 'w') as log:
    process = subprocess.Popen(
        [sys.executable, '-m', MODULE, *ARGS,
         f'--experiment_dir={experiment_dir}'], cwd=commands.ROOT,
        env=commands.forced_devices(devices), stdout=log,
        stderr=subprocess.STDOUT)
  return _Started(process, experiment_dir)


def _checkpoints(run_dir: pathlib.Path) -> list[int]:
  """Complete checkpoints (orbax renames a step's directory when done)."""
  directory = run_dir / records.CHECKPOINT_DIR
  names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
  return sorted(int(name) for name in names if name.isdigit())


def _after_checkpoint(processes, run_dir: pathlib.Path, past: int) -> None:
  """Waits for a checkpoint of a step after `past`, the run still going."""
  deadline = time.monotonic() + 600
  while not [s for s in _checkpoints(run_dir) if s > past]:
    assert all(p.poll() is None for p in processes), 'a process ended'
    assert time.monotonic() < deadline, 'no checkpoint in 10 minutes'
    time.sleep(0.05)


def _ending(processes, logs: pathlib.Path, run_dir: pathlib.Path,
            since: float) -> Ending:
  statuses = tuple(p.wait(timeout=600) for p in processes)
  seconds = time.monotonic() - since
  lines = tuple(
      tuple((logs / f'process_{i}.log').read_text().splitlines()[-5:])
      for i in range(len(processes)))
  summary = records.read_json(run_dir / records.SUMMARY_FILE,
                              records.Summary)
  return Ending(statuses, seconds, lines, summary,
                tuple(_checkpoints(run_dir)))


def _refusal(experiment_dir: pathlib.Path) -> str:
  """Why one process may not resume the run of two (what the runner would
  print), decided on the run directory as the runner decides."""
  run_dir = _run_dir(experiment_dir)
  meta = records.read_json(run_dir / records.META_FILE, records.Meta)
  with flagsaver.flagsaver():
    flags.FLAGS([MODULE, *ARGS, f'--experiment_dir={experiment_dir}'])
    config = submission_runner.config_from_flags()
  try:
    run_directory.decide(run_dir, config, meta.submission.source_sha256,
                         processes=1)
  except run_directory.RunDirectoryError as refused:
    return str(refused)
  raise AssertionError('one process may resume the run of two')


def _stopped_twice(experiment_dir: pathlib.Path) -> tuple[Ending, str,
                                                          Ending]:
  """The run of two processes: SIGTERM to process 1, then kill -9 of
  process 1, each after a new checkpoint, and a last launch to the end."""
  env = commands.forced_devices(1)
  args = (*ARGS, f'--experiment_dir={experiment_dir}',
          f'--distributed_timeout_s={TIMEOUT_S}')
  run_dir = _run_dir(experiment_dir)
  endings = []
  for launch, stop in (('terminated', signal.SIGTERM),
                       ('killed', signal.SIGKILL)):
    logs = experiment_dir.parent / launch
    processes = commands.start_processes(
        MODULE, *args, '--checkpoint_every=1', count=2, env=env, logs=logs)
    _after_checkpoint(processes, run_dir, max(_checkpoints(run_dir) or [0]))
    processes[1].send_signal(stop)
    endings.append(_ending(processes, logs, run_dir, time.monotonic()))
    if launch == 'terminated':
      refusal = _refusal(experiment_dir)
  logs = experiment_dir.parent / 'finished'
  processes = commands.start_processes(MODULE, *args, count=2, env=env,
                                       logs=logs)
  finished = _ending(processes, logs, run_dir, time.monotonic())
  assert finished.statuses == (0, 0), (logs / 'process_0.log').read_text()[
      -3000:]
  return endings[0], refusal, endings[1]


@pytest.fixture(name='runs', scope='module')
def _runs(tmp_path_factory) -> Runs:
  base = tmp_path_factory.mktemp('many_hosts')
  # One device beside the two processes: no collective of its own to
  # starve, unlike two devices in one process (run alone, after them).
  one_device = _one_process(base / 'one_device', 1)
  terminated, refusal, killed = _stopped_twice(base / 'two_processes' / 'runs')
  return Runs(one_device=one_device.result(),
              two_devices=_one_process(base / 'two_devices', 2).result(),
              two_processes=_run_dir(base / 'two_processes' / 'runs'),
              terminated=terminated, refusal=refusal, killed=killed)


def _untimed(run_dir: pathlib.Path, name: str) -> list[dict]:
  rows = [json.loads(line) for line in
          (run_dir / name).read_text().splitlines()]
  return [{k: v for k, v in row.items() if k not in TIMING_FIELDS}
          for row in rows]


def _assert_close(got, want, path: str = '') -> None:
  """Equal, floats up to rounding; `path` names the field that is not."""
  if isinstance(want, float) and isinstance(got, float):
    assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6), (path, got,
                                                                  want)
  elif isinstance(want, dict):
    assert got.keys() == want.keys(), path
    for key in want:
      _assert_close(got[key], want[key], f'{path}.{key}')
  elif isinstance(want, list):
    assert len(got) == len(want), path
    for i, (g, w) in enumerate(zip(got, want)):
      _assert_close(g, w, f'{path}[{i}]')
  else:
    assert got == want, (path, got, want)


@pytest.mark.parametrize('name', [records.METRICS_FILE,
                                  records.CURVATURE_FILE])
def test_two_processes_give_the_records_of_one(runs, name):
  two_processes = _untimed(runs.two_processes, name)
  # The same two devices run the same programs, split over processes or
  # not, and a sum of two operands does not depend on their order.
  assert two_processes == _untimed(runs.two_devices, name)
  # One device sums the examples in another order.
  _assert_close(two_processes, _untimed(runs.one_device, name))
  steps = [row['step'] for row in two_processes]
  assert steps == ([0, 5, 10] if name == records.METRICS_FILE else [5, 10])
  meta = records.read_json(runs.two_processes / records.META_FILE,
                           records.Meta)
  assert (meta.devices.process_count, meta.devices.count,
          meta.devices.local_count) == (2, 2, 1)
  summary = records.read_json(runs.two_processes / records.SUMMARY_FILE,
                              records.Summary)
  assert summary.status is records.Status.BUDGET_EXHAUSTED
  assert len(summary.resumed_at_steps) == 2 and summary.timed_compiles == 0


def test_sigterm_to_one_process_stops_both_at_one_step(runs):
  ending = runs.terminated
  assert ending.statuses == (143, 143), ending.last_lines
  assert ending.seconds < TIMEOUT_S
  assert ending.summary.status is records.Status.INTERRUPTED
  # Both stopped at the step of their last checkpoint, taken together.
  assert ending.summary.final_step == ending.checkpoints[-1] > 0
  assert 'cannot resume' in runs.refusal and (
      'it ran on 2 processes and this launch has 1' in runs.refusal)


def test_a_killed_process_ends_the_other_with_one_line(runs):
  ending = runs.killed
  assert ending.statuses[1] == -signal.SIGKILL
  # Process 0 saw its collective fail and left at once, records written.
  assert ending.statuses[0] == 1 and ending.seconds < TIMEOUT_S
  said = (f'{MODULE}: error: the run failed: ProcessLost: process 0 of 2 '
          'stopped: another process of the run is gone')
  assert any(line.startswith(said) for line in ending.last_lines[0]), (
      ending.last_lines[0])
  assert ending.summary.status is records.Status.ERROR
  assert ending.summary.error_kind is records.ErrorKind.HARNESS
