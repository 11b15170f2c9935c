"""Harness overhead: the runner's step throughput against a bare jitted loop.

Run with
  .venv/bin/pytest tests/benchmarks/test_harness_overhead.py -m benchmark \
      --benchmark-enable -s

Both loops train `fmnist_fc` with `optax.adam` on the bundled data, the
same batches and the same gradient (one chunk per batch, so both compute
the same thing). The bare loop is a `jax.jit`-ed, donated optax step called
in a Python loop and synchronised once at the end. The harness figure is the
runner's compile-free submission time per step (its steady loop: the first
step, which AlgoPerf's scored time counts, is left out like the bare loop's
compile), measured in the same process, interleaved with the bare loop. Each
round times both back to back; the figure is the median over rounds of the
per-round ratio (pairing cancels slow drifts of the machine), with the ratio
of the fastest rounds beside it. Results go to `harness_results.json`.

`test_solution_latch_cost` times the harness against itself: full-batch runs
that probe at their events (so every step's loss is judged on the device and
the state is kept for the probe at solution, `harness.solution`) against
runs that do not probe (the loss judged, no state kept), in interleaved
rounds; the threshold is one the runs never reach, so every step pays the
copy.

`test_algoperf_form_overhead` does the same for an AlgoPerf-form
submission (`algoperf_adam.py`): the bare loop calls that module's own
jitted `train_step` on the same batches, placed as the harness places them
for AlgoPerf-form submissions (no chunk axis, split along the examples).
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

import jax
import optax
import pytest

from harness import config as config_lib
from harness import mesh as mesh_lib
from harness import runner
from submissions import loading
import workloads
from workloads import base

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('harness_results.json')
ROUNDS = 15
REGIMES = {
    # A heavy step (0.1 s on 2 CPU cores) and a light one, where any
    # per-step cost of the harness would show.
    'full_batch_5000': dict(full_batch=True, train_size=5000,
                            batch_size=5000, chunk_size=5000, steps=20),
    'minibatch_128': dict(full_batch=False, train_size=5000,
                          batch_size=128, chunk_size=128, steps=500),
}


def _bare_seconds_per_step(workload, regime: base.BatchRegime,
                           steps: int) -> float:
  params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
  tx = optax.adam(1e-3)
  parallel = mesh_lib.DataParallel.over_all_devices()
  # Inputs placed as the step returns them, as a careful bare loop does:
  # otherwise its second step compiles again inside the timed loop.
  params = parallel.replicate(params)
  opt_state = parallel.place(tx.init(params))
  dataset = workload.dataset(regime)
  batches = dataset.train_batches(regime, seed=0)

  def loss(p, chunk):
    return workload.chunk_loss(p, model_state, chunk, None,
                               mode=base.ForwardPassMode.TRAIN,
                               update_batch_norm=False)[0]

  def step(p, s, batch):
    value, grads = jax.value_and_grad(loss)(p, jax.tree.map(
        lambda x: x[0], batch))
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value

  step = jax.jit(step, donate_argnums=(0, 1))
  full = parallel.shard_batch(next(batches)) if regime.full_batch else None
  next_batch = (lambda: full) if regime.full_batch else (
      lambda: parallel.shard_batch(next(batches)))
  params, opt_state, _ = step(params, opt_state, next_batch())  # Compile.
  jax.block_until_ready(params)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, value = step(params, opt_state, next_batch())
  jax.block_until_ready((params, value))
  return (time.perf_counter() - start) / steps


ALGOPERF_ADAM = str(pathlib.Path(__file__).with_name('algoperf_adam.py'))


def _bare_algoperf_seconds_per_step(workload, regime: base.BatchRegime,
                                    steps: int) -> float:
  """The AlgoPerf-form module's jitted step in a bare loop."""
  _, module = loading.import_module(ALGOPERF_ADAM)
  params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
  tx = optax.adam(1e-3)
  parallel = mesh_lib.DataParallel.over_all_devices()
  params = parallel.replicate(params)
  opt_state = parallel.place(tx.init(params))
  batches = workload.dataset(regime).train_batches(regime, seed=0)
  full = parallel.shard_examples(next(batches)) if regime.full_batch else None
  next_batch = (lambda: full) if regime.full_batch else (
      lambda: parallel.shard_examples(next(batches)))

  def step(p, s):
    return module.train_step(workload, tx.update, p, s, model_state,
                             next_batch())

  params, opt_state, _ = step(params, opt_state)  # Compile.
  jax.block_until_ready(params)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, value = step(params, opt_state)
  jax.block_until_ready((params, value))
  return (time.perf_counter() - start) / steps


def _harness_seconds_per_step(tmp_path, regime: dict, steps: int, *,
                              submission: str = 'adam',
                              workload=None) -> float:
  hparams = {'learning_rate': 1e-3}
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission=submission, hparams=hparams,
      experiment_dir=str(tmp_path), overwrite=True, max_steps=steps + 1,
      eval_every=10**6, log_every=10, quiet=True, stop_at_target=False,
      **regime), workload=workload)
  # The steady loop: the first step (the compile) is what the bare loop
  # leaves out too.
  return result.summary.compile_free_time_s / steps


@pytest.mark.parametrize('name', sorted(REGIMES))
def test_harness_overhead(tmp_path, benchmark, name):
  _compare(tmp_path, benchmark, name, name, _bare_seconds_per_step,
           submission='adam')


@pytest.mark.parametrize('name', sorted(REGIMES))
def test_algoperf_form_overhead(tmp_path, benchmark, name):
  _compare(tmp_path, benchmark, f'algoperf_form_{name}', name,
           _bare_algoperf_seconds_per_step, submission=ALGOPERF_ADAM)


class _NeverSolved(type(workloads.get('fmnist_fc'))):
  train_loss_threshold = 0.0  # Every step keeps its state for the probe.


def test_solution_latch_cost(tmp_path, benchmark):
  settings = dict(REGIMES['full_batch_5000'])
  steps = settings.pop('steps')
  kept, scalar = [], []
  for _ in range(ROUNDS):
    kept.append(_harness_seconds_per_step(
        tmp_path, {**settings, 'curvature': config_lib.CurvatureConfig()},
        steps, workload=_NeverSolved()))
    scalar.append(_harness_seconds_per_step(
        tmp_path, {**settings, 'curvature': config_lib.NO_CURVATURE}, steps,
        workload=_NeverSolved()))
  benchmark.pedantic(lambda: None, rounds=1)
  ratio = statistics.median(k / s for k, s in zip(kept, scalar))
  values = {'state_kept_ms_per_step': 1e3 * statistics.median(kept),
            'loss_only_ms_per_step': 1e3 * statistics.median(scalar),
            'kept_over_loss_only': ratio, 'steps': steps, 'rounds': ROUNDS,
            'devices': str(jax.devices()), 'jax': jax.__version__}
  benchmark.extra_info.update(values)
  data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
  data['solution_latch_full_batch_5000'] = values
  RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
  print('\n[solution latch] ' + json.dumps(values, sort_keys=True))
  assert 0.5 < ratio < 2.0  # Reported, not asserted: see _compare.


def _compare(tmp_path, benchmark, key: str, name: str, bare_seconds, *,
             submission: str) -> None:
  """Interleaved rounds of the bare loop and the harness; results under
  `key` in RESULTS."""
  settings = dict(REGIMES[name])
  steps = settings.pop('steps')
  workload = workloads.get('fmnist_fc')
  regime = base.BatchRegime(**settings)
  bare, harness = [], []
  for _ in range(ROUNDS):
    bare.append(bare_seconds(workload, regime, steps))
    harness.append(_harness_seconds_per_step(tmp_path, settings, steps,
                                             submission=submission))
  benchmark.pedantic(lambda: None, rounds=1)
  ratio = statistics.median(h / b for h, b in zip(harness, bare))
  values = {
      'bare_ms_per_step': 1e3 * statistics.median(bare),
      'harness_ms_per_step': 1e3 * statistics.median(harness),
      'harness_over_bare': ratio,
      'fastest_harness_over_fastest_bare': min(harness) / min(bare),
      'steps': steps, 'rounds': ROUNDS,
      'devices': str(jax.devices()), 'jax': jax.__version__,
  }
  benchmark.extra_info.update(values)
  data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
  data[key] = values
  RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
  values['goal_met'] = ratio < 1.02  # The goal: under 2% overhead.
  print(f'\n[{key}] ' + json.dumps(values, sort_keys=True))
  # Machine noise on a shared CPU is several percent between rounds, so the
  # goal is reported, not asserted; the ratio itself must be sane.
  assert 0.5 < ratio < 2.0
