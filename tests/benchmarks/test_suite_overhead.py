"""A suite's own overhead: its wall time against its trials run one by one.

Run with
  .venv/bin/pytest tests/benchmarks/test_suite_overhead.py -m benchmark \
      --benchmark-enable -s

The same four trials (adam and heavy_ball on fmnist_fc, two trials each)
run through `harness.suite_runs.run_local`, and one by one, each `runner.train`
in a fresh process as the suite's trials are (`harness.isolated.call`), so
that both sides pay the same process start and compile the same programs;
what differs is the suite's own work: its job list, status checks, lines.
Rounds alternate which side goes first; the figure is the median over
rounds of suite wall time ÷ the sum of the trials' wall times. Results go
to `suite_results.json`.
"""

from __future__ import annotations

import io
import json
import pathlib
import statistics
import time

import jax
import pytest

from harness import jobs as jobs_lib
from harness import config as config_lib
from harness import isolated
from harness import runner
from harness import suite_runs

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('suite_results.json')
ROUNDS = 5
SPEC = jobs_lib.SuiteSpec(submissions=('adam', 'heavy_ball'),
                          workloads=('fmnist_fc',), num_trials=2)
RUN = dict(max_steps=100, eval_every=50, train_size=1000, chunk_size=1000,
           quiet=True, stop_at_target=False)


def _base(directory: pathlib.Path) -> config_lib.RunConfig:
  return config_lib.RunConfig(workload='', submission='',
                              experiment_dir=str(directory), **RUN)


def _suite_seconds(directory: pathlib.Path) -> float:
  start = time.perf_counter()
  results = suite_runs.run_local(_base(directory), jobs_lib.expand(SPEC),
                            out=io.StringIO())
  seconds = time.perf_counter() - start
  assert all(r.ran and not r.failed for r in results)
  return seconds


def _one_by_one_seconds(directory: pathlib.Path) -> float:
  total = 0.0
  for job in jobs_lib.expand(SPEC):
    start = time.perf_counter()
    isolated.call(runner.train, suite_runs.job_config(_base(directory), job))
    total += time.perf_counter() - start
  return total


def test_suite_overhead(tmp_path, benchmark):
  ratios, suites, alone = [], [], []
  for round_ in range(ROUNDS):
    sides = [('suite', _suite_seconds), ('alone', _one_by_one_seconds)]
    if round_ % 2:
      sides.reverse()
    seconds = {name: measure(tmp_path / f'{name}_{round_}')
               for name, measure in sides}
    suites.append(seconds['suite'])
    alone.append(seconds['alone'])
    ratios.append(seconds['suite'] / seconds['alone'])
  benchmark.pedantic(lambda: None, rounds=1)
  values = {'suite_seconds': statistics.median(suites),
            'one_by_one_seconds': statistics.median(alone),
            'suite_over_one_by_one': statistics.median(ratios),
            'jobs': len(jobs_lib.expand(SPEC)), 'rounds': ROUNDS,
            'steps_per_job': RUN['max_steps'], 'jax': jax.__version__,
            'devices': str(jax.devices())}
  RESULTS.write_text(json.dumps(values, indent=2, sort_keys=True) + '\n')
  values['goal_met'] = values['suite_over_one_by_one'] <= 1.05
  print('\n[suite_overhead] ' + json.dumps(values, sort_keys=True))
  assert 0.5 < values['suite_over_one_by_one'] < 2.0
