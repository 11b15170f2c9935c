"""Checkpoint, kill and resume: a resumed run's records equal an
uninterrupted run's, except for timings.

Each chain starts the runner in a subprocess, kills it with SIGKILL at
seeded random moments after it has made progress (mid-step, mid-evaluation,
mid-probe or mid-checkpoint), relaunches the same command until the run
finishes, and compares its records with a run that was never interrupted.
"""

from __future__ import annotations

import json
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from harness import compilation_cache
from harness import records
from tests import commands

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Fields that measure time; everything else must match exactly.
TIMING_FIELDS = frozenset({
    'submission_time_s', 'eval_seconds', 'probe_seconds', 'eval_time_s',
    'probe_time_s', 'first_step_s', 'wall_time_s', 'time_to_target_s',
    'compile_free_time_s', 'time_to_target_compile_free_s',
    'prepare_for_eval_s', 'resumed_at_steps'})
RUN_FLAGS = ('--workload=fmnist_fc', '--submission=adam', '--train_size=1000',
             '--chunk_size=500', '--max_steps=100', '--eval_every=10',
             '--log_every=2', '--curvature_every=10',
             '--lanczos_iterations=8', '--keep_training_past_target',
             '--quiet')


def _command(experiment_dir: pathlib.Path, *flags: str) -> list[str]:
  return [sys.executable, '-m', 'harness.submission_runner', *RUN_FLAGS,
          f'--experiment_dir={experiment_dir}', *flags]


def _env(devices: int, cache: pathlib.Path) -> dict[str, str]:
  # The runner's persistent compilation cache, shared by the launches of one
  # test: a relaunch loads the executables the reference run compiled (the
  # same code, so the same numbers) instead of compiling them again.
  return commands.forced_devices(
      devices, **{compilation_cache.ENVIRONMENT_VARIABLE: str(cache)})


def _run_dir(experiment_dir: pathlib.Path) -> pathlib.Path:
  return records.run_dir(experiment_dir, 'fmnist_fc', 'adam')


def _progress(run_dir: pathlib.Path) -> int:
  """Lines of records plus checkpoints on disk: grows as the run advances."""
  count = 0
  for name in (records.METRICS_FILE, records.CURVATURE_FILE):
    path = run_dir / name
    if path.exists():
      count += path.read_bytes().count(b'\n')
  checkpoints = run_dir / records.CHECKPOINT_DIR
  if checkpoints.is_dir():
    count += sum(p.name.isdigit() for p in checkpoints.iterdir())
  return count


def _untimed(path: pathlib.Path) -> list[dict]:
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  return [{k: v for k, v in row.items() if k not in TIMING_FIELDS}
          for row in rows]


def _kill_chain(experiment_dir: pathlib.Path, *, kills: int, devices: int,
                seed: int) -> list[int]:
  """Runs to the end, killed `kills` times; returns the progress at kills."""
  rng = random.Random(seed)
  command = _command(experiment_dir, '--checkpoint_every=4')
  env = _env(devices, experiment_dir.parent / 'jax_cache')
  run_dir = _run_dir(experiment_dir)
  killed_at = []
  for _ in range(kills):
    before = _progress(run_dir)
    proc = subprocess.Popen(command, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (proc.poll() is None and _progress(run_dir) <= before and
           time.monotonic() < deadline):
      time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if _finished(run_dir):
      return killed_at  # The run ended before this kill: it killed nothing.
    killed_at.append(_progress(run_dir))
  out = subprocess.run(command, cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return killed_at


def _finished(run_dir: pathlib.Path) -> bool:
  """Whether the run wrote the summary of a finished run."""
  try:
    summary = records.read_json(run_dir / records.SUMMARY_FILE,
                                records.Summary)
  except records.RecordError:
    return False
  return summary.status is not records.Status.INTERRUPTED


def _reference(experiment_dir: pathlib.Path, devices: int) -> pathlib.Path:
  env = _env(devices, experiment_dir.parent / 'jax_cache')
  out = subprocess.run(_command(experiment_dir), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return _run_dir(experiment_dir)


def _assert_same_records(resumed: pathlib.Path, reference: pathlib.Path):
  for name in (records.METRICS_FILE, records.CURVATURE_FILE):
    assert _untimed(resumed / name) == _untimed(reference / name), name
  summaries = [records.read_json(d / records.SUMMARY_FILE, records.Summary)
               for d in (resumed, reference)]
  assert [{k: v for k, v in s.to_json().items() if k not in TIMING_FIELDS}
          for s in summaries][0] == {
              k: v for k, v in summaries[1].to_json().items()
              if k not in TIMING_FIELDS}
  assert summaries[0].resumed_at_steps and not summaries[1].resumed_at_steps
  # Every launch compiled its step in its untimed first step.
  assert summaries[0].timed_compiles == summaries[1].timed_compiles == 0
  assert not records.read_run(resumed).warnings


# Ten kills on one device take as long as the rest of this file: selected with
# -m slow, beside fifty kills; three on two devices run by default.
@pytest.mark.parametrize('devices,kills', [
    pytest.param(1, 10, marks=pytest.mark.slow), (2, 3)])
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, devices,
                                                      kills):
  reference = _reference(tmp_path / 'reference', devices)
  killed_at = _kill_chain(tmp_path / 'resumed', kills=kills, devices=devices,
                          seed=devices)
  assert len(killed_at) == kills  # Every kill hit a live run.
  _assert_same_records(_run_dir(tmp_path / 'resumed'), reference)


@pytest.mark.slow
def test_fifty_kills_then_resume_matches_uninterrupted(tmp_path):
  reference = _reference(tmp_path / 'reference', 1)
  _kill_chain(tmp_path / 'resumed', kills=50, devices=1, seed=50)
  _assert_same_records(_run_dir(tmp_path / 'resumed'), reference)
