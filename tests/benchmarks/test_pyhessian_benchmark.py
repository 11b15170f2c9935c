"""Time to the top-k eigenvalues at 0.1%, side by side with PyHessian.

Run with
  .venv/bin/pip install -e '.[peer]'   # PyHessian on torch 2.13.0 (CPU)
  .venv/bin/pytest tests/benchmarks/test_pyhessian_benchmark.py \
      -m benchmark --benchmark-enable -s

Both sides get the same network, weights (copied into a torch
`nn.Sequential`) and data, from `fc_problem.py`; each PyHessian
configuration runs once (it takes seconds).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import time
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from harness import curvature
from tests.benchmarks import fc_problem
from tests.benchmarks.fc_problem import CAP, ROUNDS
from tests.test_curvature import tanh_mlp_loss

pytestmark = pytest.mark.benchmark

ACCURACY = 1e-3  # Relative accuracy asked of top-k eigenvalues (0.1%).


def _ours_to_accuracy(problem, k: int, want: np.ndarray) -> dict[str, Any]:
  """Loosest residual tol reaching ACCURACY on all top-k, and its time."""
  params, batch = problem['params'], problem['batch']

  def fn_for_tol(tol):
    fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                     tol=tol, check_every=1)
    return lambda: fn(params, batch)

  return dict(fc_problem.loosest_tol(fn_for_tol, want, ACCURACY),
              num_iterations_cap=CAP, check_every=1)


def _torch_model(torch, params):
  layers = []
  for i, layer in enumerate(params):
    linear = torch.nn.Linear(*np.shape(layer['w']))
    with torch.no_grad():
      linear.weight.copy_(torch.from_numpy(np.asarray(layer['w']).T.copy()))
      linear.bias.copy_(torch.from_numpy(np.asarray(layer['b']).copy()))
    layers.append(linear)
    if i < len(params) - 1:
      layers.append(torch.nn.Tanh())
  return torch.nn.Sequential(*layers)


def _torch_problem(torch, problem) -> tuple[Any, Any, Any]:
  """The FC network with the problem's weights, and its data, in torch."""
  model = _torch_model(torch, problem['params'])
  x = torch.from_numpy(problem['x'][0])
  y = torch.from_numpy(problem['y'][0].astype(np.int64))
  return model, x, y


def _pyhessian_seconds_per_hvp(pyhessian_module, torch, model, criterion, x,
                               y, rounds: int) -> float:
  """Median time of one PyHessian product on a random vector."""
  hess = pyhessian_module.hessian(model, criterion, data=(x, y), cuda=False)
  v = [torch.randn_like(p) for p in hess.params]
  return statistics.median(
      fc_problem.timed(lambda: pyhessian_module.hessian_vector_product(
          hess.gradsH, hess.params, v)) for _ in range(rounds))


def _pyhessian_to_accuracy(problem, k: int, want: np.ndarray) -> dict[str, Any]:
  """Loosest PyHessian tol whose top-k reach ACCURACY, with time and HVPs."""
  torch = pytest.importorskip('torch')
  pyhessian_module = pytest.importorskip('pyhessian.hessian')
  model, x, y = _torch_problem(torch, problem)
  criterion = torch.nn.CrossEntropyLoss()
  with torch.no_grad():
    torch_loss = float(criterion(model(x), y))
  jax_loss = float(tanh_mlp_loss(problem['params'], jax.tree.map(
      lambda a: a[0], problem['batch'])))
  assert abs(torch_loss - jax_loss) < 1e-5 * abs(jax_loss)

  # PyHessian's own cost per product and per gradient, for context.
  per_hvp = _pyhessian_seconds_per_hvp(pyhessian_module, torch, model,
                                       criterion, x, y, rounds=5)

  def torch_grad():
    model.zero_grad()
    criterion(model(x), y).backward()

  per_grad = statistics.median(fc_problem.timed(torch_grad) for _ in range(5))
  model.zero_grad()

  tried = []
  # The same half-decade steps as our own tolerance sweep.
  for tol in (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6):
    seconds, num_hvps, values = _run_pyhessian(pyhessian_module, torch, model,
                                               criterion, x, y, k, tol)
    err = float(np.max(np.abs(np.asarray(values) - want) / want))
    tried.append({'tol': tol, 'max_rel_error': err, 'num_hvps': num_hvps,
                  'seconds': seconds})
    if err <= ACCURACY:
      return {'seconds': seconds, 'tol': tol, 'num_hvps': num_hvps,
              'max_rel_error': err, 'eigenvalues': list(values),
              'tried': tried, 'torch': torch.__version__,
              'seconds_per_hvp': per_hvp, 'seconds_per_grad': per_grad,
              'torch_threads': torch.get_num_threads()}
  raise AssertionError(f'PyHessian did not reach {ACCURACY}: {tried}')


def _run_pyhessian(pyhessian_module, torch, model, criterion, x, y, k: int,
                   tol: float) -> tuple[float, int, list[float]]:
  """One timed PyHessian top-k call (graph set-up included), with its HVPs."""
  counter = [0]
  original = pyhessian_module.hessian_vector_product

  def counted(*args, **kwargs):
    counter[0] += 1
    return original(*args, **kwargs)

  pyhessian_module.hessian_vector_product = counted
  try:
    torch.manual_seed(0)
    start = time.perf_counter()
    hess = pyhessian_module.hessian(model, criterion, data=(x, y), cuda=False)
    values, _ = hess.eigenvalues(maxIter=1000, tol=tol, top_n=k)
    seconds = time.perf_counter() - start
  finally:
    pyhessian_module.hessian_vector_product = original
  return seconds, counter[0], list(values)


def single_thread_side(side: str, k: int, tol: float) -> dict[str, Any]:
  """Times one side with one thread (run in a subprocess; see below)."""
  problem = fc_problem.make_problem()
  if side == 'pyhessian':
    torch = pytest.importorskip('torch')  # Optional peers: imported here.
    pytest.importorskip('pyhessian.hessian')
    torch.set_num_threads(1)
    model, x, y = _torch_problem(torch, problem)
    runs = [_run_pyhessian(sys.modules['pyhessian.hessian'], torch, model,
                           torch.nn.CrossEntropyLoss(), x, y, k, tol)
            for _ in range(3)]
    return {'seconds': statistics.median(r[0] for r in runs),
            'num_hvps': runs[0][1], 'threads': torch.get_num_threads(),
            'cpus': sorted(os.sched_getaffinity(0))}
  fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                   tol=tol, check_every=1)
  run = lambda: fn(problem['params'], problem['batch'])
  seconds = fc_problem.interleaved({'probe': run}, rounds=5)['probe']
  return {'seconds': seconds, 'num_hvps': int(run().num_hvps),
          'xla_flags': os.environ.get('XLA_FLAGS'),
          'cpus': sorted(os.sched_getaffinity(0))}


# Thread settings alone do not confine XLA: with Eigen's threads off it
# still runs independent operations on a second core. Each side's process is
# therefore also pinned to one CPU.
_SINGLE_THREAD_ENV = {
    'ours': {'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false'},
    'pyhessian': {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'},
}


def _single_thread_comparison(k: int, ours_tol: float,
                              pyhessian_tol: float) -> dict[str, Any]:
  """Both sides on one core each, in fresh processes, one after the other.

  One busy core per side gets a fair share of a loaded machine, where
  torch's two OpenMP threads otherwise stall at every barrier.
  """
  repo = pathlib.Path(__file__).resolve().parents[2]
  cpu = min(os.sched_getaffinity(0))
  out = {}
  for side, tol in (('ours', ours_tol), ('pyhessian', pyhessian_tol)):
    env = fc_problem.subprocess_environment(
        repo, **_SINGLE_THREAD_ENV[side], JAX_PLATFORMS='cpu')
    script = ('import json\n'
              'from tests.benchmarks import test_pyhessian_benchmark as b\n'
              f'print(json.dumps(b.single_thread_side({side!r}, {k}, {tol})))')
    proc = subprocess.run([sys.executable, '-c', script], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600,
                          check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[side] = json.loads(proc.stdout.strip().splitlines()[-1])
  out['speedup'] = out['pyhessian']['seconds'] / out['ours']['seconds']
  out['hvp_ratio'] = out['pyhessian']['num_hvps'] / out['ours']['num_hvps']
  return out


def test_hvp_arithmetic_rate_vs_torch(problem):
  """Per-HVP time of each side, against the arithmetic an HVP needs.

  The time-to-accuracy speed-up over PyHessian is the HVP-count ratio times
  the ratio of per-HVP times. This puts the second factor next to the
  machine: the floating-point work of one product (XLA's cost analysis of
  the linearised gradient's tangent map, the part that repeats), and the
  rate each side reaches on it, beside each framework's rate on a plain
  matrix product of the first layer's shape.
  """
  torch = pytest.importorskip('torch')
  pyhessian_module = pytest.importorskip('pyhessian.hessian')
  params, batch = problem['params'], problem['batch']
  chunk = jax.tree.map(lambda a: a[0], batch)
  _, tangent_map = jax.linearize(
      jax.grad(lambda p: tanh_mlp_loss(p, chunk)), params)
  cost = jax.jit(tangent_map).lower(params).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = float(cost['flops'])

  loops = {m: fc_problem.bare_hvp_loop(tanh_mlp_loss, m, 'auto')
           for m in (10, 30)}
  x = jnp.asarray(problem['x'][0])
  w = params[0]['w']
  matmul = jax.jit(lambda a, b: a @ b)
  t = fc_problem.interleaved({
      'loop_10': lambda: loops[10](params, batch),
      'loop_30': lambda: loops[30](params, batch),
      'matmul': lambda: matmul(x, w),
  })
  ours_per_hvp = (t['loop_30'] - t['loop_10']) / 20  # Setup cancels out.

  model, tx, ty = _torch_problem(torch, problem)
  tw = torch.from_numpy(np.asarray(w))
  theirs = {
      'hvp': _pyhessian_seconds_per_hvp(
          pyhessian_module, torch, model, torch.nn.CrossEntropyLoss(), tx, ty,
          rounds=ROUNDS),
      'matmul': statistics.median(
          fc_problem.timed(lambda: torch.mm(tx, tw)) for _ in range(ROUNDS)),
  }
  matmul_flops = 2.0 * x.shape[0] * x.shape[1] * w.shape[1]
  values = {
      'flops_per_hvp': flops,
      'ours': {'seconds_per_hvp': ours_per_hvp,
               'gflops_per_second_hvp': flops / ours_per_hvp / 1e9,
               'gflops_per_second_matmul': matmul_flops / t['matmul'] / 1e9},
      'pyhessian': {
          'seconds_per_hvp': theirs['hvp'],
          'gflops_per_second_hvp': flops / theirs['hvp'] / 1e9,
          'gflops_per_second_matmul': matmul_flops / theirs['matmul'] / 1e9,
          'torch_threads': torch.get_num_threads()},
      'per_hvp_time_ratio': theirs['hvp'] / ours_per_hvp,
  }
  fc_problem.record('hvp_arithmetic_rate', values)
  assert values['ours']['gflops_per_second_hvp'] > 0


@pytest.mark.parametrize('k, goal', [(1, 5.0), (3, 10.0)])
@pytest.mark.parametrize('name', ['problem', 'trained_problem'])
def test_time_to_accuracy_vs_pyhessian(request, benchmark, name, k, goal):
  """Warm (compiled) against PyHessian at matched accuracy, on the FC net
  at initialisation on synthetic inputs (`problem`) and after 300 Adam
  steps on 5,000 Fashion-MNIST images (`trained_problem`); the first also
  with each side confined to one core."""
  pytest.importorskip('torch')
  pytest.importorskip('pyhessian')
  problem = request.getfixturevalue(name)
  want = fc_problem.reference_eigenvalues(tanh_mlp_loss, problem, k)
  ours = _ours_to_accuracy(problem, k, want)
  theirs = _pyhessian_to_accuracy(problem, k, want)
  fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                   tol=ours['tol'], check_every=1)
  benchmark.pedantic(
      lambda: jax.block_until_ready(fn(problem['params'], problem['batch'])),
      rounds=3, iterations=1, warmup_rounds=1)
  values = {
      'k': k, 'accuracy': ACCURACY, 'num_examples': problem['x'].shape[1],
      'reference_float64': want.tolist(),
      'ours': ours, 'pyhessian': theirs,
      'speedup': theirs['seconds'] / ours['seconds'],
      'hvp_ratio': theirs['num_hvps'] / ours['num_hvps'],
      # Speed-up = HVP-count ratio × PyHessian's time per HVP / ours.
      'per_hvp_time_ratio': (theirs['seconds'] / theirs['num_hvps']) /
                            (ours['seconds'] / ours['num_hvps']),
      'goal_speedup': goal,
  }
  if name == 'problem':  # Its subprocesses rebuild it in a moment.
    values['single_thread'] = _single_thread_comparison(k, ours['tol'],
                                                        theirs['tol'])
  values['goal_met'] = values['speedup'] >= goal
  benchmark.extra_info.update(values)
  suffix = '' if name == 'problem' else '_trained'
  fc_problem.record(f'pyhessian_top{k}{suffix}', values)
  # The speed-up goal is reported, not asserted: on a CPU it hinges on the
  # per-HVP cost of XLA vs. torch and on the machine's load. Asserted: both
  # reached the accuracy, and Lanczos needed fewer products.
  assert ours['max_rel_error'] <= ACCURACY >= theirs['max_rel_error']
  assert ours['num_hvps'] < theirs['num_hvps']
