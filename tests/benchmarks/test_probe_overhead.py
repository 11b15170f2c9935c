"""Curvature-probe overhead of the main job, and the levers that cut it.

Run with
  .venv/bin/pytest tests/benchmarks/test_probe_overhead.py -m benchmark \
      --benchmark-enable -s

Runs the main job (`scoring.demo`: full-batch Adam, FC net, 2,000 bundled
Fashion-MNIST images, 400 steps, a probe every 20 steps) three ways in one
process: a fixed 20 Lanczos iterations per eigenproblem; stopping on the
residual (tol 1e-3); and residual stopping with warm starts from the previous
probe's eigenvectors (the default). For each: probe time over training
(submission) time, Hessian-vector products, and the median threshold ratio
(the lever must not change the science). Then the main job's whole wall time
as a newcomer runs it (`python -m scoring.demo`, figure included).
Results go to `probe_results.json` beside this file.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys
import time

import pytest

from scoring import main_job

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('probe_results.json')
ROOT = pathlib.Path(__file__).resolve().parents[2]
LEVERS = {
    'fixed_20_iterations': dict(tol=None, warm_start=False),
    'residual_stop': dict(tol=1e-3, warm_start=False),
    'residual_stop_and_warm_start': dict(tol=1e-3, warm_start=True),
}


def _measure(tmp_path, name: str) -> dict:
  config = main_job.MainJob(experiment_dir=str(tmp_path / name),
                            quiet=True).run_config()
  curvature = dataclasses.replace(config.curvature, **LEVERS[name])
  result = main_job.run_demo(dataclasses.replace(config, curvature=curvature))
  summary, probes = result.run.summary, result.run.curvature
  # The first probe compiles the Lanczos loop; report it apart.
  steady = sum(p.probe_seconds for p in probes[1:])
  # Training without its compile, as the figures in BENCHMARKS.md were
  # measured.
  training = summary.compile_free_time_s
  return {
      'probes': len(probes),
      'probe_seconds': summary.probe_time_s,
      'first_probe_seconds': probes[0].probe_seconds,
      'submission_seconds': training,
      'probe_over_training': summary.probe_time_s / training,
      'steady_probe_over_training': steady / training,
      'hvps': sum(p.lanczos_hvps for p in probes),
      'median_threshold_ratio': result.stats.ratio_median,
  }


def test_probe_overhead_of_the_main_job(tmp_path, benchmark):
  values = {name: _measure(tmp_path, name) for name in LEVERS}
  start = time.perf_counter()
  out = subprocess.run(
      [sys.executable, '-m', 'scoring.demo', f'--experiment_dir={tmp_path}/cli',
       '--quiet'], cwd=ROOT, capture_output=True, text=True, timeout=600)
  values['main_job_wall_seconds'] = time.perf_counter() - start
  assert out.returncode == 0, out.stderr
  benchmark.pedantic(lambda: None, rounds=1)
  benchmark.extra_info.update(values)
  RESULTS.write_text(json.dumps(values, indent=2, sort_keys=True) + '\n')
  print('\n' + json.dumps(values, indent=2, sort_keys=True))
  default = values['residual_stop_and_warm_start']
  assert default['hvps'] < values['fixed_20_iterations']['hvps']
  for name in LEVERS:
    assert 0.85 <= values[name]['median_threshold_ratio'] <= 1.15
