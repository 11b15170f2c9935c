"""What each lever of the curvature probe buys, on and off, in one run.

Run with
  .venv/bin/pytest tests/benchmarks/test_curvature_levers.py -m benchmark \
      --benchmark-enable -s

- the cost of one Hessian-vector product: `linearize` against `jvp`, the
  curvature batch in 1, 2 or 4 chunks, the matmul precision (float32
  throughout against bfloat16 inputs with float32 accumulation), and
  products batched 1, 2 or 3 to a call;
- the joint probe against two calls (compile time, run time, products);
- block against single-vector Lanczos for the top 2 and 3, at matched
  accuracy, on both benchmark problems, and JAX's LOBPCG
  (`jax.experimental.sparse.linalg.lobpcg_standard`) for the top 3;
- an XLA compile option against the default, for the one-shot call.

Results go to `curvature_results.json` beside this file.
"""

from __future__ import annotations

import statistics
import time

import jax
from jax import lax
from jax.experimental.sparse import linalg as sparse_linalg
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

from harness import curvature
from tests.benchmarks import fc_problem
from tests.benchmarks.fc_problem import CAP
from tests.test_curvature import tanh_mlp_loss

pytestmark = pytest.mark.benchmark

ACCURACY = 1e-3


def _rechunked(batch, num_chunks: int):
  return jax.tree.map(
      lambda x: x.reshape((num_chunks, -1) + x.shape[2:]), batch)


def _products_loop(mode: str, vectors: int, num_products: int):
  """`num_products` batched products of `vectors` rows, renormalised."""

  @jax.jit
  def run(params, batch):
    op = curvature.hessian_operators(tanh_mlp_loss, params, [None] * vectors,
                                     batch=batch, mode=mode)
    v0 = jnp.ones((vectors, op.dim), jnp.float32) / np.sqrt(op.dim)

    def body(_, v):
      w = op.batched(v)
      return w / jnp.linalg.norm(w, axis=1, keepdims=True)

    return lax.fori_loop(0, num_products, body, v0)

  return run


def _per_product_seconds(params, variants: dict) -> dict[str, float]:
  """Seconds per product of each variant, from loops of 10 and 30 batched
  products (what a loop costs besides its products cancels out)."""
  calls = {}
  for name, (mode, vectors, batch, precision) in variants.items():
    for m in (10, 30):
      loop = _products_loop(mode, vectors, m)

      def call(loop=loop, batch=batch, precision=precision):
        with jax.default_matmul_precision(precision):
          return loop(params, batch)

      calls[f'{name}/{m}'] = call
  t = fc_problem.interleaved(calls, rounds=5)
  return {name: (t[f'{name}/30'] - t[f'{name}/10']) / 20 / variants[name][1]
          for name in variants}


def test_cost_of_one_product(problem):
  params, batch = problem['params'], problem['batch']
  variants = {
      'linearize, 1 chunk': ('linearize', 1, batch, 'float32'),
      'jvp, 1 chunk': ('jvp', 1, batch, 'float32'),
      'jvp, 2 chunks': ('jvp', 1, _rechunked(batch, 2), 'float32'),
      'jvp, 4 chunks': ('jvp', 1, _rechunked(batch, 4), 'float32'),
      'linearize, 2 chunks': ('linearize', 1, _rechunked(batch, 2),
                              'float32'),
      'linearize, 4 chunks': ('linearize', 1, _rechunked(batch, 4),
                              'float32'),
      'bfloat16 inputs, float32 accumulation': ('linearize', 1, batch,
                                                'bfloat16'),
      'batched 2 to a call': ('linearize', 2, batch, 'float32'),
      'batched 3 to a call': ('linearize', 3, batch, 'float32'),
  }
  seconds = _per_product_seconds(params, variants)
  grad = jax.jit(lambda p, b: curvature.loss_and_grad(tanh_mlp_loss, p,
                                                      batch=b))
  gradient = fc_problem.interleaved({'grad': lambda: grad(params, batch)})
  want = fc_problem.reference_eigenvalues(tanh_mlp_loss, problem, 1)
  errors = {}
  for precision in ('float32', 'bfloat16'):
    with jax.default_matmul_precision(precision):
      out = curvature.sharpness(tanh_mlp_loss, params, batch=batch,
                                num_iterations=30)
    errors[precision] = float(abs(out.eigenvalues[0] - want[0]) / want[0])
  base = seconds['linearize, 1 chunk']
  values = {
      'seconds_per_product': seconds,
      'relative_to_linearize_1_chunk': {n: s / base
                                        for n, s in seconds.items()},
      'gradient_seconds': gradient['grad'],
      'product_over_gradient': base / gradient['grad'],
      'top1_relative_error_30_products': errors,
  }
  fc_problem.record('product_levers', values)
  assert all(s > 0 for s in seconds.values())


def test_joint_probe_against_two_calls(problem):
  """λ(H) and λ(P^-1/2 H P^-1/2) at one point: `joint` against the two
  calls the probe made before, with a diagonal P spread over [0.5, 2]."""
  params, batch = problem['params'], problem['batch']
  rng = np.random.default_rng(0)
  diag = curvature.as_preconditioner(jax.tree.map(
      lambda p: jnp.asarray(rng.uniform(0.5, 2.0, p.shape), jnp.float32),
      params))
  settings = dict(num_iterations=CAP, tol=1e-3, check_every=1)
  args = (params, batch)

  def compile_seconds():
    # A new probe each time: a program compiled once is not compiled again.
    probe = curvature.make_sharpness_fn(tanh_mlp_loss, **settings)
    start = time.perf_counter()
    probe.jitted_joint.lower(*args, diag, (None, None), None, ()).compile()
    joint = time.perf_counter() - start
    start = time.perf_counter()
    probe.jitted.lower(*args, None, None, None, ()).compile()
    probe.jitted.lower(*args, diag, None, None, ()).compile()
    return joint, time.perf_counter() - start

  compiles = [compile_seconds() for _ in range(3)]
  probe = curvature.make_sharpness_fn(tanh_mlp_loss, **settings)
  two = lambda: (probe(*args), probe(*args, diag))  # noqa: E731
  joint = lambda: probe.joint(*args, diag)  # noqa: E731
  t = fc_problem.interleaved({'two_calls': two, 'joint': joint})
  separate, together = two(), joint()
  for a, b in zip(separate, together):
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-3)
  values = {
      'compile_seconds_joint': statistics.median(c[0] for c in compiles),
      'compile_seconds_two_calls': statistics.median(c[1] for c in compiles),
      'run_seconds': t,
      'joint_over_two_calls': t['joint'] / t['two_calls'],
      'products': {'two_calls': [int(r.num_hvps) for r in separate],
                   'joint': [int(r.num_hvps) for r in together]},
  }
  values['compile_joint_over_two_calls'] = (
      values['compile_seconds_joint'] / values['compile_seconds_two_calls'])
  fc_problem.record('joint_probe', values)


@pytest.mark.parametrize('k', [2, 3])
@pytest.mark.parametrize('name', ['problem', 'trained_problem'])
def test_block_against_single_vector_lanczos(request, name, k):
  """Top k at 0.1%: each method at the loosest residual tolerance that
  reaches it, products and time."""
  problem = request.getfixturevalue(name)
  params, batch = problem['params'], problem['batch']
  want = fc_problem.reference_eigenvalues(tanh_mlp_loss, problem, k)
  results = {}
  for method in ('single', 'block'):
    def fn_for_tol(tol, method=method):
      fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, tol=tol,
                                       num_iterations=3 * CAP,
                                       check_every=1, method=method)
      return lambda: fn(params, batch)

    results[method] = fc_problem.loosest_tol(fn_for_tol, want, ACCURACY)
  values = dict(results, k=k, num_examples=problem['x'].shape[1],
                block_over_single_seconds=(results['block']['seconds'] /
                                           results['single']['seconds']),
                block_over_single_products=(results['block']['num_hvps'] /
                                            results['single']['num_hvps']))
  suffix = '' if name == 'problem' else '_trained'
  fc_problem.record(f'block_vs_single_top{k}{suffix}', values)


def _lobpcg(k: int, num_iterations: int):
  """JAX's LOBPCG for the top k at a fixed iteration count, on H applied
  column by column through `jvp` of the gradient. Its own tolerance is 0,
  so it runs every iteration: the default (float epsilon) is scaled by 10n,
  so loose at this n (319,810) that it stops after two."""

  @jax.jit
  def run(params, batch):
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda w: tanh_mlp_loss(unravel(w), batch))

    def hessian_columns(vectors):
      product = lambda v: jax.jvp(grad, (flat,), (v,))[1]
      return jax.vmap(product, in_axes=1, out_axes=1)(vectors)

    start = jax.random.normal(jax.random.key(0), (flat.size, k), flat.dtype)
    eigenvalues, _, iterations = sparse_linalg.lobpcg_standard(
        hessian_columns, start, m=num_iterations, tol=0.0)
    return eigenvalues, iterations

  return run


@pytest.mark.parametrize('name', ['problem', 'trained_problem'])
def test_lobpcg_against_single_vector_lanczos(request, name):
  """Top 3 at 0.1%: LOBPCG at the fewest iterations that reach it against
  single-vector Lanczos at its loosest tolerance that does."""
  k = 3
  problem = request.getfixturevalue(name)
  params, batch = problem['params'], problem['batch']
  want = fc_problem.reference_eigenvalues(tanh_mlp_loss, problem, k)

  def single_for_tol(tol):
    fn = curvature.make_sharpness_fn(tanh_mlp_loss, k=k, tol=tol,
                                     num_iterations=3 * CAP, check_every=1)
    return lambda: fn(params, batch)

  single = fc_problem.loosest_tol(single_for_tol, want, ACCURACY)
  for num_iterations in (2, 3, 4, 6, 8, 12, 16, 24, 32):
    run = _lobpcg(k, num_iterations)
    eigenvalues, iterations = run(params, batch)
    err = float(np.max(np.abs(np.asarray(eigenvalues) - want) / want))
    if err <= ACCURACY:
      break
  else:
    raise AssertionError(f'LOBPCG did not reach {ACCURACY} in 32 iterations')
  # k products at the start, then A applied to the 3k-column basis and to
  # the k new vectors in each iteration.
  lobpcg = {'iterations': int(iterations), 'num_hvps': k + 4 * k * int(
      iterations), 'max_rel_error': err,
            'eigenvalues': np.asarray(eigenvalues).tolist(),
            'seconds': fc_problem.interleaved(
                {'run': lambda: run(params, batch)})['run']}
  values = dict(single=single, lobpcg=lobpcg, k=k,
                num_examples=problem['x'].shape[1],
                lobpcg_over_single_seconds=(lobpcg['seconds'] /
                                            single['seconds']),
                lobpcg_over_single_products=(lobpcg['num_hvps'] /
                                             single['num_hvps']))
  suffix = '' if name == 'problem' else '_trained'
  fc_problem.record(f'lobpcg_vs_single_top{k}{suffix}', values)


def test_compile_option_for_one_shot_calls(problem):
  """XLA:CPU's fusion emitters on (XLA's default) and off (the probe's
  setting on a CPU): compile time against run time."""
  params, batch = problem['params'], problem['batch']
  options = {'fusion_emitters_on': {'xla_cpu_use_fusion_emitters': True},
             'fusion_emitters_off': {'xla_cpu_use_fusion_emitters': False}}
  compile_seconds = {name: [] for name in options}
  compiled = {}
  for _ in range(3):
    for name, option in options.items():
      # A new probe each time: a program compiled once is not compiled
      # again.
      probe = curvature.make_sharpness_fn(tanh_mlp_loss, num_iterations=CAP,
                                          tol=3e-2, check_every=1)
      lowered = probe.jitted.lower(params, batch, None, None, None, ())
      start = time.perf_counter()
      compiled[name] = lowered.compile(option)
      compile_seconds[name].append(time.perf_counter() - start)
  t = fc_problem.interleaved({
      name: (lambda c=c: c(params, batch, None, None, None, ()))
      for name, c in compiled.items()})
  values = {'compile_seconds': {n: statistics.median(s)
                                for n, s in compile_seconds.items()},
            'run_seconds': t}
  fc_problem.record('compile_option', values)
