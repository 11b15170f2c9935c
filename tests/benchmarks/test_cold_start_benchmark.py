"""One call from a fresh process, compilation included, against PyHessian.

Run with
  .venv/bin/pip install -e '.[peer]'
  .venv/bin/pytest tests/benchmarks/test_cold_start_benchmark.py \
      -m benchmark --benchmark-enable -s

A researcher who calls `curvature.sharpness` once waits for its tracing and
compilation too. Each side is timed from a fresh Python process, after its
imports and once its data and weights are in memory: ours with an empty
persistent compilation cache (cold), ours again once an earlier process has
filled the cache (`harness.compilation_cache`), and PyHessian (its graph
set-up included). Tolerances are the loosest reaching 0.1% on each side,
found in this process first. Three processes per side, medians.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import pytest

from tests.benchmarks import fc_problem
from tests.benchmarks import test_pyhessian_benchmark as peer
from tests.test_curvature import tanh_mlp_loss

pytestmark = pytest.mark.benchmark

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROCESSES = 3

_OURS = '''
import json, pathlib, sys, time
import numpy as np
import jax, jax.numpy as jnp
from harness import compilation_cache, curvature
from tests.test_curvature import tanh_mlp_loss
path, cache, k, tol, cap = sys.argv[1:6]
compilation_cache.enable(None if cache == 'off' else pathlib.Path(cache))
with np.load(path) as data:
  layers = (len(data.files) - 2) // 2
  params = [{'w': jnp.asarray(data[f'w{i}']), 'b': jnp.asarray(data[f'b{i}'])}
            for i in range(layers)]
  batch = {'x': jnp.asarray(data['x']), 'y': jnp.asarray(data['y'])}
jax.block_until_ready((params, batch))
start = time.perf_counter()
out = jax.block_until_ready(curvature.sharpness(
    tanh_mlp_loss, params, batch=batch, k=int(k), tol=float(tol),
    num_iterations=int(cap), check_every=1))
print(json.dumps({'seconds': time.perf_counter() - start,
                  'num_hvps': int(out.num_hvps),
                  'eigenvalues': np.asarray(out.eigenvalues).tolist()}))
'''

_THEIRS = '''
import json, sys, time
import numpy as np
import torch
from pyhessian import hessian
path, k, tol = sys.argv[1:4]
with np.load(path) as data:
  layers = (len(data.files) - 2) // 2
  modules = []
  for i in range(layers):
    w = data[f'w{i}']
    linear = torch.nn.Linear(*w.shape)
    with torch.no_grad():
      linear.weight.copy_(torch.from_numpy(w.T.copy()))
      linear.bias.copy_(torch.from_numpy(data[f'b{i}'].copy()))
    modules += [linear] + ([torch.nn.Tanh()] if i < layers - 1 else [])
  x = torch.from_numpy(data['x'][0].copy())
  y = torch.from_numpy(data['y'][0].astype(np.int64))
model = torch.nn.Sequential(*modules)
torch.manual_seed(0)
start = time.perf_counter()
hess = hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
values, _ = hess.eigenvalues(maxIter=1000, tol=float(tol), top_n=int(k))
print(json.dumps({'seconds': time.perf_counter() - start,
                  'eigenvalues': [float(v) for v in values]}))
'''


def _save(problem, path: pathlib.Path) -> pathlib.Path:
  arrays = {'x': problem['x'], 'y': problem['y']}
  for i, layer in enumerate(problem['params']):
    arrays[f'w{i}'] = np.asarray(layer['w'])
    arrays[f'b{i}'] = np.asarray(layer['b'])
  np.savez(path, **arrays)
  return path


def _fresh_process(script: str, *args: object) -> dict:
  out = subprocess.run(
      [sys.executable, '-c', script, *map(str, args)], cwd=ROOT,
      env=fc_problem.subprocess_environment(ROOT), capture_output=True,
      text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
  return dict(runs[0], seconds=statistics.median(r['seconds'] for r in runs),
              all_seconds=[r['seconds'] for r in runs])


@pytest.mark.parametrize('name', ['problem', 'trained_problem'])
def test_one_call_from_a_fresh_process(request, tmp_path, name):
  pytest.importorskip('torch')
  pytest.importorskip('pyhessian')
  problem = request.getfixturevalue(name)
  k = 1
  want = fc_problem.reference_eigenvalues(tanh_mlp_loss, problem, k)
  ours_tol = peer._ours_to_accuracy(problem, k, want)['tol']
  theirs_tol = peer._pyhessian_to_accuracy(problem, k, want)['tol']
  data = _save(problem, tmp_path / 'problem.npz')
  cache = tmp_path / 'cache'
  ours = lambda cache: _fresh_process(  # noqa: E731
      _OURS, data, cache, k, ours_tol, fc_problem.CAP)
  cold, warm, theirs = [], [], []
  for _ in range(PROCESSES):  # Interleaved, so drift hits every side.
    cold.append(ours('off'))
    theirs.append(_fresh_process(_THEIRS, data, k, theirs_tol))
  ours(cache)  # Fills the cache.
  for _ in range(PROCESSES):
    warm.append(ours(cache))
  values = {
      'k': k, 'num_examples': problem['x'].shape[1],
      'ours_tol': ours_tol, 'pyhessian_tol': theirs_tol,
      'ours_cold': _median(cold), 'ours_cache_warm': _median(warm),
      'pyhessian': _median(theirs), 'reference_float64': want.tolist(),
  }
  for side in ('ours_cold', 'ours_cache_warm', 'pyhessian'):
    got = np.asarray(values[side]['eigenvalues'])
    values[side]['max_rel_error'] = float(np.max(np.abs(got - want) / want))
  values['pyhessian_over_ours_cold'] = (values['pyhessian']['seconds'] /
                                        values['ours_cold']['seconds'])
  values['pyhessian_over_ours_cache_warm'] = (
      values['pyhessian']['seconds'] / values['ours_cache_warm']['seconds'])
  values['goals'] = {'cold_not_slower': values['pyhessian_over_ours_cold']
                                        >= 1.0,
                     'cache_warm_3x': values['pyhessian_over_ours_cache_warm']
                                      >= 3.0}
  suffix = '' if name == 'problem' else '_trained'
  fc_problem.record(f'cold_start_top{k}{suffix}', values)
  for side in ('ours_cold', 'ours_cache_warm', 'pyhessian'):
    assert values[side]['max_rel_error'] <= peer.ACCURACY
  # The cache only skips compilation: the same products, the same values.
  assert values['ours_cache_warm']['eigenvalues'] == (
      values['ours_cold']['eigenvalues'])
