"""The FC problem and timing helpers shared by the curvature benchmarks.

The network is the paper's FC net (784 → 200×5 tanh → 10, cross-entropy,
weights of variance 1/fan_in, zero biases) on 2,000 synthetic inputs shaped
like Fashion-MNIST (synthetic data is fine for timing). Ratios compare
times measured side by side in one run (JAX timings interleaved, median of
several rounds). The figures are printed and written to
`curvature_results.json` next to this file, with the machine's load
average: a loaded 2-core machine slows torch's OpenMP threads far more than
XLA's, so compare figures taken at a low load.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import optax

from harness import curvature

RESULTS = pathlib.Path(__file__).with_name('curvature_results.json')
SIZES = (784, 200, 200, 200, 200, 200, 10)
NUM_EXAMPLES = 2000
ROUNDS = 7
# Iteration cap of the early-stopped probes; they stop at 8–14 here.
CAP = 32


def record(section: str, values: dict[str, Any]) -> None:
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


def init_fc(key: jax.Array) -> list[dict[str, jax.Array]]:
  params = []
  for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
    key, sub = jax.random.split(key)
    params.append({
        'w': jax.random.normal(sub, (fan_in, fan_out)) / np.sqrt(fan_in),
        'b': jnp.zeros((fan_out,))})
  return params


def _problem(params, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
  """The problem dict from weights and (1, N, ...) inputs and labels."""
  return {'params': params, 'x': x, 'y': y,
          'batch': {'x': jnp.asarray(x), 'y': jnp.asarray(y)}}


def make_problem() -> dict[str, Any]:
  """The FC net at initialisation on 2,000 synthetic inputs."""
  rng = np.random.default_rng(0)
  x = rng.random((1, NUM_EXAMPLES, SIZES[0]), dtype=np.float32)
  y = rng.integers(0, SIZES[-1], (1, NUM_EXAMPLES)).astype(np.int32)
  return _problem(init_fc(jax.random.key(0)), x, y)


# The second problem: real images, trained weights.
TRAINED_EXAMPLES = 5000
TRAINED_ADAM_STEPS = 300


def make_trained_problem(loss_fn: Callable[..., jax.Array]) -> dict[str, Any]:
  """The FC net after 300 full-batch Adam steps (η = 1e-3) of `loss_fn` on
  the first 5,000 bundled Fashion-MNIST training images (pixels / 255),
  at those weights and images. A curvature landscape of a trained network,
  where the top eigenvalues sit closer together than at initialisation."""
  from workloads.data import sources  # pylint: disable=g-import-not-at-top
  train = sources.load_bundled_fashion_mnist().train
  x = (train.images[:TRAINED_EXAMPLES].reshape(1, TRAINED_EXAMPLES, -1)
       .astype(np.float32) / 255.0)
  y = train.labels[:TRAINED_EXAMPLES].reshape(1, -1)
  batch = {'x': jnp.asarray(x[0]), 'y': jnp.asarray(y[0])}
  optimizer = optax.adam(1e-3)

  @jax.jit
  def train_all(params):
    def step(carry, _):
      params, state = carry
      grads = jax.grad(loss_fn)(params, batch)
      updates, state = optimizer.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None

    carry = (params, optimizer.init(params))
    (params, _), _ = jax.lax.scan(step, carry, None,
                                  length=TRAINED_ADAM_STEPS)
    return params

  params = jax.block_until_ready(train_all(init_fc(jax.random.key(0))))
  return _problem(params, x, y)


def subprocess_environment(root: pathlib.Path, **extra: str) -> dict[str, str]:
  """This process's environment with `extra`, the repository importable."""
  env = dict(os.environ, **extra)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(root)] + [p for p in [env.get('PYTHONPATH')] if p])
  return env


def timed(fn: Callable[[], Any]) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], Any]],
                 rounds: int = ROUNDS) -> dict[str, float]:
  """Median seconds of each function, timed in alternation after a warm-up."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      times[name].append(timed(fn))
  return {name: statistics.median(ts) for name, ts in times.items()}


def reference_eigenvalues(loss_fn, problem, k: int) -> np.ndarray:
  """Top-k eigenvalues in float64 (long Lanczos, k + 4 pairs, 120
  iterations), residual-checked."""
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                          problem['params'])
    batch = {'x': jnp.asarray(problem['x'], jnp.float64),
             'y': jnp.asarray(problem['y'])}
    ref = curvature.sharpness(loss_fn, params, batch=batch, k=k + 4,
                              num_iterations=120)
    values = np.asarray(ref.eigenvalues)
    assert np.all(np.asarray(ref.residuals) < 1e-8 * values[0])
  return values[:k]


def loosest_tol(fn_for_tol: Callable[[float], Callable[[], Any]],
                want: np.ndarray, accuracy: float) -> dict[str, Any]:
  """The loosest residual tolerance (half-decade steps from 3e-2) whose
  top-k eigenvalues are all within `accuracy` of `want`, its products and
  its median time."""
  for tol in (3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4):
    run = fn_for_tol(tol)
    out = run()
    err = float(np.max(np.abs(np.asarray(out.eigenvalues) - want) / want))
    if err <= accuracy:
      return {'seconds': interleaved({'run': run})['run'], 'tol': tol,
              'num_hvps': int(out.num_hvps), 'max_rel_error': err,
              'eigenvalues': np.asarray(out.eigenvalues).tolist()}
  raise AssertionError(f'no tolerance reached {accuracy}')


def bare_hvp_loop(loss_fn, num_iterations: int, mode: str):
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
