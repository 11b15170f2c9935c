"""Stop signals are honoured within seconds, even inside native code."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

from harness import config as config_lib
from harness import records
from harness import runner
from tests import submission_sources

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


# SIGTERM arrives during the evaluation at step 0, before any step.
_STOPS_AT_FIRST_EVALUATION = '''
    import functools, pathlib, signal
    import jax
    import optax
    from algoperf import spec

    DEFAULT_HPARAMS = {'learning_rate': 0.05}
    MARK = pathlib.Path(__file__).with_suffix('.stopped')
    _OPTIMIZER = optax.sgd(0.05)

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      return _OPTIMIZER.init(model_params)

    ''' + submission_sources.OPTAX_UPDATE + '''

    def prepare_for_eval(workload, current_param_container,
                         current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step,
                         rng):
      if not MARK.exists():  # Only the first launch is stopped.
        MARK.touch()
        signal.raise_signal(signal.SIGTERM)
      return optimizer_state, current_param_container, model_state
    ''' + submission_sources.NEXT_BATCH


def test_a_stop_before_the_first_step_resumes_from_step_zero(tmp_path):
  path = tmp_path / 'stops.py'
  path.write_text(textwrap.dedent(_STOPS_AT_FIRST_EVALUATION))
  config = config_lib.RunConfig(
      workload='fmnist_fc', submission=str(path),
      experiment_dir=str(tmp_path / 'runs'), train_size=500,
      chunk_size=500, max_steps=6, eval_every=3, quiet=True,
      stop_at_target=False)
  first = runner.train(config)
  assert first.stopped_by == signal.SIGTERM
  assert first.summary.status is records.Status.INTERRUPTED
  assert first.summary.final_step == 0
  assert (first.run_dir / records.CHECKPOINT_DIR / '0').is_dir()
  second = runner.train(config)
  assert second.summary.resumed_at_steps == (0,)
  run = records.read_run(second.run_dir)
  assert second.summary.final_step == 6
  assert [m.step for m in run.metrics] == [0, 3, 6]
