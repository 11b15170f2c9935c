"""Curvature probe costs: HVPs and Lanczos against gradients, compile time,
iteration caps, warm starts.

Run with
  .venv/bin/pytest tests/benchmarks/test_curvature_benchmark.py -m benchmark \
      --benchmark-enable -s

The problem and the timing helpers are in `fc_problem.py`.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from harness import curvature
from tests.benchmarks import fc_problem
from tests.benchmarks.fc_problem import CAP, ROUNDS
from tests.test_curvature import tanh_mlp_loss

pytestmark = pytest.mark.benchmark


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
  loops = {mode: fc_problem.bare_hvp_loop(tanh_mlp_loss, m, mode)
           for mode in ('jvp', 'linearize')}
  t = fc_problem.interleaved({
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
  fc_problem.record('hvp_and_lanczos_cost', values)
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
  t = fc_problem.interleaved({
      'fixed': lambda: fixed(params, batch),
      'cap_32': lambda: early[32](params, batch),
      'cap_64': lambda: early[64](params, batch),
  })
  values = {'iterations_used': used, 'tol': tol, 'seconds': t,
            'cap_32_over_fixed': t['cap_32'] / t['fixed'],
            'cap_64_over_fixed': t['cap_64'] / t['fixed']}
  fc_problem.record('iteration_cap_cost', values)
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
  fc_problem.record('compile_time', values)
  assert values['ratio_m40_over_m10'] < 1.5


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
    t = fc_problem.interleaved({
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
  fc_problem.record(f'warm_start_top{k}', values)


@pytest.mark.parametrize('k', [1, 3])
def test_repeated_one_shot_calls_reuse_their_compilation(problem, k):
  """`curvature.sharpness` called again with the same loss and shapes (at
  other params) against its first call, which compiles; beside them the
  same probe through `make_sharpness_fn`, compiled beforehand. A first call
  is timed once per loss, so each round uses a loss function of its own."""
  params, batch = problem['params'], problem['batch']
  moved = jax.tree.map(lambda p: 1.01 * p, params)
  settings = dict(k=k, num_iterations=fc_problem.CAP, tol=1e-3)
  kept = curvature.make_sharpness_fn(tanh_mlp_loss, **settings)
  jax.block_until_ready(kept(params, batch))
  first, again, compiled = [], [], []
  for _ in range(3):
    def loss(p, chunk):  # A new function: its first call compiles.
      return tanh_mlp_loss(p, chunk)

    first.append(fc_problem.timed(lambda: curvature.sharpness(
        loss, params, batch=batch, **settings)))
    again.append(fc_problem.timed(lambda: curvature.sharpness(
        loss, moved, batch=batch, **settings)))
    compiled.append(fc_problem.timed(lambda: kept(moved, batch)))
  med = {name: statistics.median(ts) for name, ts in
         (('first', first), ('again', again), ('compiled', compiled))}
  values = {'first_call_seconds': med['first'],
            'repeated_call_seconds': med['again'],
            'make_sharpness_fn_seconds': med['compiled'],
            'first_over_repeated': med['first'] / med['again'],
            'repeated_over_make_sharpness_fn': med['again'] / med['compiled']}
  fc_problem.record(f'repeated_one_shot_top{k}', values)
  # A repeated call compiles nothing, so it costs what the kept probe does.
  assert values['repeated_over_make_sharpness_fn'] < 1.5
