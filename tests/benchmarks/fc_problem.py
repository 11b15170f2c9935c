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


def make_problem() -> dict[str, Any]:
  rng = np.random.default_rng(0)
  x = rng.random((1, NUM_EXAMPLES, SIZES[0]), dtype=np.float32)
  y = rng.integers(0, SIZES[-1], (1, NUM_EXAMPLES)).astype(np.int32)
  params = init_fc(jax.random.key(0))
  return {'params': params, 'x': x, 'y': y,
          'batch': {'x': jnp.asarray(x), 'y': jnp.asarray(y)}}


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
