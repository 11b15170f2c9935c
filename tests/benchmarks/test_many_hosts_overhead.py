"""What two processes cost against one process with as many devices.

Run with
  .venv/bin/pytest tests/benchmarks/test_many_hosts_overhead.py \
      -m benchmark --benchmark-enable -s

The same run (fmnist_fc, Adam, 40 full-batch steps of 1,000 examples in
chunks of 500, a probe every 20 steps) as one process with two CPU
devices, and as two processes with one device each, joined by JAX's CPU
collectives over localhost (`harness.distributed`); and, to see what the
two processes' threads contending for the cores cost, as two processes
whose XLA runs one thread each. Each round runs the three in a rotating
order, one after another; the figures are medians over rounds of the
per-round ratios to the one-process run: the steady loop's time a step
(`compile_free_time_s`), the first step (compilation), the later probe
(the first compiles) and the launch's wall time. Results go to
`many_hosts_results.json`, with the load average before and after.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import pytest

from harness import records
from tests import commands

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('many_hosts_results.json')
ROUNDS = 3
STEPS = 40
ARGS = ('--workload=fmnist_fc', '--submission=adam', '--train_size=1000',
        '--chunk_size=500', f'--max_steps={STEPS}', f'--eval_every={STEPS}',
        '--log_every=20', '--curvature_every=20', '--lanczos_iterations=10',
        '--keep_training_past_target', '--max_runtime_s=3600', '--quiet')
MODULE = 'harness.submission_runner'
ONE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def _one_process(experiment_dir: pathlib.Path) -> None:
  out = subprocess.run([sys.executable, '-m', MODULE, *ARGS,
                        f'--experiment_dir={experiment_dir}'],
                       cwd=commands.ROOT, env=commands.forced_devices(2),
                       capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]


def _two_processes(experiment_dir: pathlib.Path, xla_flags: str = '') -> None:
  env = commands.forced_devices(1)
  env['XLA_FLAGS'] = f'{env["XLA_FLAGS"]} {xla_flags}'.strip()
  processes = commands.start_processes(
      MODULE, *ARGS, f'--experiment_dir={experiment_dir}', count=2, env=env,
      logs=experiment_dir.with_suffix('.logs'))
  statuses = [p.wait(timeout=1200) for p in processes]
  assert statuses == [0, 0], (experiment_dir.with_suffix('.logs') /
                              'process_0.log').read_text()[-3000:]


SIDES = {
    'one_process_two_devices': _one_process,
    'two_processes': _two_processes,
    'two_processes_one_thread_each': lambda d: _two_processes(d, ONE_THREAD),
}


def _measure(name: str, directory: pathlib.Path) -> dict[str, float]:
  start = time.perf_counter()
  SIDES[name](directory)
  wall = time.perf_counter() - start
  run = records.read_run(records.run_dir(directory, 'fmnist_fc', 'adam'))
  probes = {p.step: p.probe_seconds for p in run.curvature}
  return {'ms_per_step': 1e3 * run.summary.compile_free_time_s / (STEPS - 1),
          'first_step_s': run.summary.first_step_s,
          'later_probe_s': probes[STEPS], 'wall_s': wall}


def test_two_processes_against_one(tmp_path, benchmark):
  load_before = os.getloadavg()
  names = list(SIDES)
  rows = {name: [] for name in names}
  for round_ in range(ROUNDS):
    order = names[round_ % len(names):] + names[:round_ % len(names)]
    for name in order:
      rows[name].append(_measure(name, tmp_path / f'{name}_{round_}'))
  benchmark.pedantic(lambda: None, rounds=1)
  baseline = rows['one_process_two_devices']
  values = {'rounds': ROUNDS, 'steps': STEPS, 'jax': jax.__version__,
            'load_average_before': load_before,
            'load_average_after': os.getloadavg(),
            'command': ' '.join(('python -m', MODULE, *ARGS))}
  for name in names:
    for field in baseline[0]:
      values[f'{name}/{field}'] = statistics.median(
          row[field] for row in rows[name])
      if name != 'one_process_two_devices':
        values[f'{name}/{field}_ratio'] = statistics.median(
            row[field] / base[field]
            for row, base in zip(rows[name], baseline))
  RESULTS.write_text(json.dumps(values, indent=2, sort_keys=True) + '\n')
  print('\n[many_hosts_overhead] ' + json.dumps(values, sort_keys=True))
