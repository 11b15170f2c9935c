"""Curvature probe benchmarks: cost ratios, and PyHessian side by side.

Run with
  .venv/bin/pytest tests/benchmarks/test_curvature_benchmark.py -m benchmark \
      --benchmark-enable -s

The network is the paper's FC net (784 → 200×5 tanh → 10, cross-entropy,
weights of variance 1/fan_in, zero biases) on 2,000 synthetic inputs shaped
like Fashion-MNIST (synthetic data is fine for timing). Ratios compare
times measured side by side in one run (JAX timings interleaved, median of
several rounds; each PyHessian configuration once, it runs for seconds).
The figures are printed and written to `curvature_results.json` next to
this file, with the machine's load average: a loaded 2-core machine slows
torch's OpenMP threads far more than XLA's, so compare figures taken at a
low load.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from harness import curvature
from tests.test_curvature import tanh_mlp_loss

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('curvature_results.json')
SIZES = (784, 200, 200, 200, 200, 200, 10)
NUM_EXAMPLES = 2000
ROUNDS = 7
ACCURACY = 1e-3  # Relative accuracy asked of top-k eigenvalues (0.1%).
# Iteration cap of the early-stopped probes; they stop at 8–14 here.
CAP = 32


def _record(section: str, values: dict[str, Any]) -> None:
  """Merges `values` into the results file under `section` and prints them."""
  data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
  # Other processes on the machine skew timings (torch's OpenMP threads far
  # more than XLA's): keep the load next to the figures.
  values = dict(values, load_average_1min=os.getloadavg()[0])
  data[section] = values
  data['_setup'] = {
      'network': 'FC 784-200x5-10 tanh, cross-entropy',
      'num_examples': NUM_EXAMPLES, 'dtype': 'float32',
      'jax': jax.__version__, 'devices': str(jax.devices()),
      'rounds': ROUNDS, 'statistic': 'median',
  }
  RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
  print(f'\n[{section}]\n' + json.dumps(values, indent=2, sort_keys=True))


def _init_fc(key: jax.Array) -> list[dict[str, jax.Array]]:
  params = []
  for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
    key, sub = jax.random.split(key)
    params.append({
        'w': jax.random.normal(sub, (fan_in, fan_out)) / np.sqrt(fan_in),
        'b': jnp.zeros((fan_out,))})
  return params


def _make_problem() -> dict[str, Any]:
  rng = np.random.default_rng(0)
  x = rng.random((1, NUM_EXAMPLES, SIZES[0]), dtype=np.float32)
  y = rng.integers(0, SIZES[-1], (1, NUM_EXAMPLES)).astype(np.int32)
  params = _init_fc(jax.random.key(0))
  return {'params': params, 'x': x, 'y': y,
          'batch': {'x': jnp.asarray(x), 'y': jnp.asarray(y)}}


@pytest.fixture(scope='module')
def problem():
  return _make_problem()


def _timed(fn: Callable[[], Any]) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def _interleaved(fns: dict[str, Callable[[], Any]],
                 rounds: int = ROUNDS) -> dict[str, float]:
  """Median seconds of each function, timed in alternation after a warm-up."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      times[name].append(_timed(fn))
  return {name: statistics.median(ts) for name, ts in times.items()}


def _bare_hvp_loop(loss_fn, num_iterations: int, mode: str):
  """m products v ← Hv/‖Hv‖ in one fori_loop: Lanczos without Lanczos."""

  @jax.jit
  def run(params, batch):
    op = curvature.hessian_operator(loss_fn, params, batch=batch, mode=mode)
    v0 = jnp.ones((op.dim,), jnp.float32) / np.sqrt(op.dim)

    def body(_, v):
      w = op.matvec(v)
      return w / jnp.linalg.norm(w)

    return lax.fori_loop(0, num_iterations, body, v0)

  return run


def test_hvp_and_lanczos_cost_relative_to_gradient(problem, benchmark):
  params, batch = problem['params'], problem['batch']
  m = 20
  grad = jax.jit(
      lambda p, b: curvature.loss_and_grad(tanh_mlp_loss, p, batch=b))
  tangent = jax.tree.map(jnp.ones_like, params)
  hvp = jax.jit(lambda p, b, t: curvature.hvp(tanh_mlp_loss, p, t, batch=b))
  probes = {mode: curvature.make_sharpness_fn(tanh_mlp_loss, k=3,
                                              num_iterations=m, hvp_mode=mode)
            for mode in ('jvp', 'linearize')}
  loops = {mode: _bare_hvp_loop(tanh_mlp_loss, m, mode)
           for mode in ('jvp', 'linearize')}
  t = _interleaved({
      'grad': lambda: grad(params, batch),
      'hvp': lambda: hvp(params, batch, tangent),
      'lanczos_jvp': lambda: probes['jvp'](params, batch),
      'lanczos_linearize': lambda: probes['linearize'](params, batch),
      'hvp_loop_jvp': lambda: loops['jvp'](params, batch),
      'hvp_loop_linearize': lambda: loops['linearize'](params, batch),
  })
  default = curvature.make_sharpness_fn(tanh_mlp_loss, k=3, num_iterations=m)
  benchmark.pedantic(lambda: jax.block_until_ready(default(params, batch)),
                     rounds=ROUNDS, iterations=1, warmup_rounds=1)
  values = {
      'num_iterations': m, 'k': 3,
      'seconds': t,
      'hvp_over_grad': t['hvp'] / t['grad'],
      'per_iteration_over_grad': {
          mode: t[f'lanczos_{mode}'] / m / t['grad']
          for mode in ('jvp', 'linearize')},
      'lanczos_over_m_standalone_hvps': {
          mode: t[f'lanczos_{mode}'] / (m * t['hvp'])
          for mode in ('jvp', 'linearize')},
      'lanczos_over_bare_hvp_loop': {
          mode: t[f'lanczos_{mode}'] / t[f'hvp_loop_{mode}']
          for mode in ('jvp', 'linearize')},
      'default_mode_for_one_chunk': 'linearize',
  }
  benchmark.extra_info.update(values)
  _record('hvp_and_lanczos_cost', values)
  # The bar: Lanczos ≤ 1.1 × (iterations × one HVP). `lanczos_over_bare_
  # hvp_loop` (the same products in a loop, no basis) is reported only: it
  # isolates the reorthogonalisation, memory-bound on a CPU.
  for mode in ('jvp', 'linearize'):
    assert values['lanczos_over_m_standalone_hvps'][mode] <= 1.1


def test_iteration_cap_far_above_the_iterations_used_costs_little(problem):
  """Early-stopped top-3 probes with caps 32 and 64 against a fixed count.

  All three run the same iterations (the early-stopped ones stop where the
  fixed one ends). The rest is what the cap costs: a bigger tridiagonal
  eigenproblem at each residual check, and nothing in the
  reorthogonalisation, which reads only the basis rows filled so far.
  """
  params, batch = problem['params'], problem['batch']
  tol = 3e-2
  early = {cap: curvature.make_sharpness_fn(
      tanh_mlp_loss, k=3, num_iterations=cap, tol=tol, check_every=1)
           for cap in (32, 64)}
  used = int(early[32](params, batch).num_hvps)
  assert int(early[64](params, batch).num_hvps) == used
  fixed = curvature.make_sharpness_fn(tanh_mlp_loss, k=3,
                                      num_iterations=used)
  t = _interleaved({
      'fixed': lambda: fixed(params, batch),
      'cap_32': lambda: early[32](params, batch),
      'cap_64': lambda: early[64](params, batch),
  })
  values = {'iterations_used': used, 'tol': tol, 'seconds': t,
            'cap_32_over_fixed': t['cap_32'] / t['fixed'],
            'cap_64_over_fixed': t['cap_64'] / t['fixed']}
  _record('iteration_cap_cost', values)
  assert values['cap_64_over_fixed'] < 1.15


def test_compile_time_does_not_grow_with_iterations(problem):
  params, batch = problem['params'], problem['batch']
  key = jax.random.key(0)

  def compile_seconds(m: int) -> float:
    fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=3, num_iterations=m)
    lowered = fn.jitted.lower(params, batch, None, None, key, ())
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start

  compile_seconds(10)  # Warm the compiler's own caches.
  times = {10: [], 40: []}
  for _ in range(3):
    for m in times:
      times[m].append(compile_seconds(m))
  med = {m: statistics.median(ts) for m, ts in times.items()}
  values = {'compile_seconds_m10': med[10], 'compile_seconds_m40': med[40],
            'ratio_m40_over_m10': med[40] / med[10]}
  _record('compile_time', values)
  assert values['ratio_m40_over_m10'] < 1.5


def _reference_eigenvalues(problem, k: int) -> np.ndarray:
  """float64 long Lanczos (k + 10 pairs, 120 iterations), residual-checked."""
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                          problem['params'])
    batch = {'x': jnp.asarray(problem['x'], jnp.float64),
             'y': jnp.asarray(problem['y'])}
    ref = curvature.sharpness(tanh_mlp_loss, params, batch=batch, k=k + 4,
                              num_iterations=120)
    values = np.asarray(ref.eigenvalues)
    assert np.all(np.asarray(ref.residuals) < 1e-8 * values[0])
  return values[:k]


def _ours_to_accuracy(problem, k: int, want: np.ndarray) -> dict[str, Any]:
  """Loosest residual tol reaching ACCURACY on all top-k, and its time."""
  params, batch = problem['params'], problem['batch']
  for tol in (3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4):
    fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                     tol=tol, check_every=1)
    out = fn(params, batch)
    err = float(np.max(np.abs(np.asarray(out.eigenvalues) - want) / want))
    if err <= ACCURACY:
      seconds = _interleaved({'probe': lambda: fn(params, batch)})['probe']
      return {'seconds': seconds, 'tol': tol, 'num_hvps': int(out.num_hvps),
              'num_iterations_cap': CAP, 'check_every': 1,
              'max_rel_error': err,
              'eigenvalues': np.asarray(out.eigenvalues).tolist()}
  raise AssertionError(f'no tol reached {ACCURACY} for k={k}')


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


def _pyhessian_to_accuracy(problem, k: int, want: np.ndarray) -> dict[str, Any]:
  """Loosest PyHessian tol whose top-k reach ACCURACY, with time and HVPs."""
  torch = pytest.importorskip('torch')
  pyhessian_module = pytest.importorskip('pyhessian.hessian')
  model = _torch_model(torch, problem['params'])
  criterion = torch.nn.CrossEntropyLoss()
  x = torch.from_numpy(problem['x'][0])
  y = torch.from_numpy(problem['y'][0].astype(np.int64))
  with torch.no_grad():
    torch_loss = float(criterion(model(x), y))
  jax_loss = float(tanh_mlp_loss(problem['params'], jax.tree.map(
      lambda a: a[0], problem['batch'])))
  assert abs(torch_loss - jax_loss) < 1e-5 * abs(jax_loss)

  # PyHessian's own cost per product and per gradient, for context.
  hess = pyhessian_module.hessian(model, criterion, data=(x, y), cuda=False)
  v = [torch.randn_like(p) for p in hess.params]
  per_hvp = statistics.median(
      _timed(lambda: pyhessian_module.hessian_vector_product(
          hess.gradsH, hess.params, v)) for _ in range(5))

  def torch_grad():
    model.zero_grad()
    criterion(model(x), y).backward()

  per_grad = statistics.median(_timed(torch_grad) for _ in range(5))
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
  problem = _make_problem()
  if side == 'pyhessian':
    torch = pytest.importorskip('torch')  # Optional peers: imported here.
    pytest.importorskip('pyhessian.hessian')
    torch.set_num_threads(1)
    model = _torch_model(torch, problem['params'])
    x = torch.from_numpy(problem['x'][0])
    y = torch.from_numpy(problem['y'][0].astype(np.int64))
    runs = [_run_pyhessian(sys.modules['pyhessian.hessian'], torch, model,
                           torch.nn.CrossEntropyLoss(), x, y, k, tol)
            for _ in range(3)]
    return {'seconds': statistics.median(r[0] for r in runs),
            'num_hvps': runs[0][1], 'threads': torch.get_num_threads(),
            'cpus': sorted(os.sched_getaffinity(0))}
  fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                   tol=tol, check_every=1)
  run = lambda: fn(problem['params'], problem['batch'])
  seconds = _interleaved({'probe': run}, rounds=5)['probe']
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
    env = dict(os.environ, **_SINGLE_THREAD_ENV[side], JAX_PLATFORMS='cpu')
    env['PYTHONPATH'] = os.pathsep.join(
        [str(repo)] + [p for p in [env.get('PYTHONPATH')] if p])
    script = ('import json\n'
              'from tests.benchmarks import test_curvature_benchmark as b\n'
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

  loops = {m: _bare_hvp_loop(tanh_mlp_loss, m, 'auto') for m in (10, 30)}
  x = jnp.asarray(problem['x'][0])
  w = params[0]['w']
  matmul = jax.jit(lambda a, b: a @ b)
  t = _interleaved({
      'loop_10': lambda: loops[10](params, batch),
      'loop_30': lambda: loops[30](params, batch),
      'matmul': lambda: matmul(x, w),
  })
  ours_per_hvp = (t['loop_30'] - t['loop_10']) / 20  # Setup cancels out.

  model = _torch_model(torch, params)
  tx = torch.from_numpy(problem['x'][0])
  ty = torch.from_numpy(problem['y'][0].astype(np.int64))
  hess = pyhessian_module.hessian(model, torch.nn.CrossEntropyLoss(),
                                  data=(tx, ty), cuda=False)
  v = [torch.randn_like(q) for q in hess.params]
  tw = torch.from_numpy(np.asarray(w))
  theirs = {name: statistics.median(_timed(fn) for _ in range(ROUNDS))
            for name, fn in {
                'hvp': lambda: pyhessian_module.hessian_vector_product(
                    hess.gradsH, hess.params, v),
                'matmul': lambda: torch.mm(tx, tw)}.items()}
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
  _record('hvp_arithmetic_rate', values)
  assert values['ours']['gflops_per_second_hvp'] > 0


@pytest.mark.parametrize('k, goal', [(1, 5.0), (3, 10.0)])
def test_time_to_accuracy_vs_pyhessian(problem, benchmark, k, goal):
  pytest.importorskip('torch')
  pytest.importorskip('pyhessian')
  want = _reference_eigenvalues(problem, k)
  ours = _ours_to_accuracy(problem, k, want)
  theirs = _pyhessian_to_accuracy(problem, k, want)
  fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                   tol=ours['tol'], check_every=1)
  benchmark.pedantic(
      lambda: jax.block_until_ready(fn(problem['params'], problem['batch'])),
      rounds=3, iterations=1, warmup_rounds=1)
  values = {
      'k': k, 'accuracy': ACCURACY,
      'reference_float64': want.tolist(),
      'ours': ours, 'pyhessian': theirs,
      'speedup': theirs['seconds'] / ours['seconds'],
      'hvp_ratio': theirs['num_hvps'] / ours['num_hvps'],
      # Speed-up = HVP-count ratio × PyHessian's time per HVP / ours.
      'per_hvp_time_ratio': (theirs['seconds'] / theirs['num_hvps']) /
                            (ours['seconds'] / ours['num_hvps']),
      'goal_speedup': goal,
      'single_thread': _single_thread_comparison(k, ours['tol'],
                                                 theirs['tol']),
  }
  values['goal_met'] = values['speedup'] >= goal
  benchmark.extra_info.update(values)
  _record(f'pyhessian_top{k}', values)
  # The speed-up goal is reported, not asserted: on a CPU it hinges on the
  # per-HVP cost of XLA vs. torch and on the machine's load. Asserted: both
  # reached the accuracy, and Lanczos needed fewer products.
  assert ours['max_rel_error'] <= ACCURACY >= theirs['max_rel_error']
  assert ours['num_hvps'] < theirs['num_hvps']


@pytest.mark.parametrize('k', [1, 3])
def test_warm_start_savings(problem, k):
  """HVPs to tol 1e-3 from a random start vs. the previous probe's vectors.

  Full-batch GD at η = 0.05 (threshold 40, above the sharpness here) for 20
  steps, then probes 1 and 10 steps apart.
  """
  batch = problem['batch']
  lr, tol = 0.05, 1e-3
  fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, num_iterations=CAP,
                                   tol=tol, check_every=1,
                                   return_vectors=True)

  @jax.jit
  def gd_step(p):
    _, g = curvature.loss_and_grad(tanh_mlp_loss, p, batch=batch)
    return jax.tree.map(lambda a, b: a - lr * b, p, g)

  params = problem['params']
  for _ in range(20):
    params = gd_step(params)
  previous = fn(params, batch, None, fn.initial_vectors(params))
  values = {'k': k, 'tol': tol, 'check_every': 1, 'learning_rate': lr,
            'num_iterations_cap': CAP}
  for gap in (1, 10):
    moved = params
    for _ in range(gap):
      moved = gd_step(moved)
    zeros = fn.initial_vectors(moved)
    cold = fn(moved, batch, None, zeros)
    warm = fn(moved, batch, None, previous.eigenvectors)
    t = _interleaved({
        'cold': lambda: fn(moved, batch, None, zeros),
        'warm': lambda: fn(moved, batch, None, previous.eigenvectors)},
                     rounds=3)
    values[f'{gap}_steps_apart'] = {
        'cold_hvps': int(cold.num_hvps), 'warm_hvps': int(warm.num_hvps),
        'hvps_saved_fraction': 1 - int(warm.num_hvps) / int(cold.num_hvps),
        'cold_seconds': t['cold'], 'warm_seconds': t['warm'],
        'eigenvalues_cold': np.asarray(cold.eigenvalues).tolist(),
        'eigenvalues_warm': np.asarray(warm.eigenvalues).tolist(),
    }
    np.testing.assert_allclose(warm.eigenvalues, cold.eigenvalues, rtol=2e-3)
    assert bool(warm.converged) and bool(cold.converged)
    assert int(warm.num_hvps) < int(cold.num_hvps)
  _record(f'warm_start_top{k}', values)
