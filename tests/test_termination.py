"""Stop signals are honoured within seconds, even inside native code."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The main thread compiles a large jitted function (minutes of XLA work on
# one core) while a thread sends SIGTERM; Python's own handler could only
# run after the compilation.
_STUCK_IN_COMPILE = '''
import os, signal, sys, threading, time
import jax, jax.numpy as jnp
from harness import termination

def emergency(signum):
  print(f'emergency {signum} {time.monotonic() - sent[0]:.2f}', flush=True)
  termination.hard_exit(signum)

def big(x):
  for i in range(20000):
    x = jnp.sin(x) * (i % 7) + x[::-1]
  return x

sent = [0.0]
def send():
  time.sleep(float(sys.argv[1]))
  sent[0] = time.monotonic()
  os.kill(os.getpid(), signal.SIGTERM)

with termination.StopSignals(emergency, grace_s=1.0) as signals:
  threading.Thread(target=send, daemon=True).start()
  jax.jit(big).lower(jnp.ones(8)).compile()
print('compiled before the stop', flush=True)
'''


def test_sigterm_during_a_compilation_stops_within_the_grace(tmp_path):
  start = time.monotonic()
  out = subprocess.run([sys.executable, '-c', _STUCK_IN_COMPILE, '3'],
                       cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)},
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 143, out.stdout + out.stderr[-2000:]
  word, signum, after = out.stdout.split()
  assert (word, signum) == ('emergency', '15')
  assert 1.0 <= float(after) < 3.0  # The grace, and little more.


_ACKNOWLEDGED = '''
import os, signal, time
from harness import termination

def emergency(signum):
  print('emergency', flush=True)

with termination.StopSignals(emergency, grace_s=0.5) as signals:
  os.kill(os.getpid(), signal.SIGINT)
  while not signals.received:
    time.sleep(0.01)
  signals.acknowledge()
  time.sleep(1.0)  # Longer than the grace: the loop has it in hand.
print('stopped by', signals.signum, flush=True)
'''


def test_an_acknowledged_stop_is_left_to_the_loop():
  out = subprocess.run([sys.executable, '-c', _ACKNOWLEDGED], cwd=ROOT,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)},
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ['stopped', 'by', '2']


# A run whose first probe is stuck in a long compilation when SIGTERM comes:
# the watcher writes the summary, saves the state at the step boundary and
# ends the process; a plain relaunch resumes from that step.
_STUCK_IN_PROBE = '''
import os, signal, sys, threading, time
import jax, jax.numpy as jnp
from harness import config, probe, runner

def big(x):
  for i in range(20000):
    x = jnp.sin(x) * (i % 7) + x[::-1]
  return x

def stuck_measure(self, *args, **kwargs):
  def send():
    time.sleep(0.5)
    print(f'sent {time.monotonic()}', flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
  threading.Thread(target=send, daemon=True).start()
  jax.jit(big).lower(jnp.ones(8)).compile()
  raise AssertionError('the compilation ended before the stop')

if sys.argv[2] == 'stuck':
  probe.CurvatureProbe.measure = stuck_measure
result = runner.train(config.RunConfig(
    workload='fmnist_fc', submission='adam', experiment_dir=sys.argv[1],
    train_size=500, chunk_size=500, max_steps=30, eval_every=10,
    curvature=config.CurvatureConfig(every=20, at_events=False),
    quiet=True))
print('finished', result.summary.resumed_at_steps, flush=True)
'''


def test_sigterm_in_a_stuck_probe_saves_the_boundary_and_resumes(tmp_path):
  from harness import records  # pylint: disable=g-import-not-at-top
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  out = subprocess.run(
      [sys.executable, '-c', _STUCK_IN_PROBE, str(tmp_path), 'stuck'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  ended = time.monotonic()
  assert out.returncode == 143, out.stdout + out.stderr[-2000:]
  sent = float(out.stdout.split()[1])
  assert ended - sent < 20  # Grace (5 s) plus the save and the exit.
  run_dir = records.run_dir(tmp_path, 'fmnist_fc', 'adam')
  run = records.read_run(run_dir)
  assert run.summary.status is records.Status.INTERRUPTED
  assert run.summary.final_step == 20
  assert (run_dir / records.CHECKPOINT_DIR / '20').is_dir()
  out = subprocess.run(
      [sys.executable, '-c', _STUCK_IN_PROBE, str(tmp_path), 'plain'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split('\n')[-2] == 'finished (20,)'
  run = records.read_run(run_dir)
  assert [m.step for m in run.metrics] == [0, 10, 20, 30]
  assert [p.step for p in run.curvature] == [20]
