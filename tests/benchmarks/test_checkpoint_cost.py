"""Checkpoint cost: one `Checkpoints.save` against one training step.

Run with
  .venv/bin/pytest tests/benchmarks/test_checkpoint_cost.py -m benchmark \
      --benchmark-enable -s

`fmnist_fc` with the `adam` baseline, initialised and placed as the runner
does, trained by the submission's own jitted (donated) short-form step on
the bundled data. Each round times one step (after `block_until_ready`)
and then one synchronous save of the state it produced, with a bookkeeping
dict like the runner's, then one restore; the figures are medians over the
rounds and the ratio of medians. Two regimes: the workload's full batch of
5,000 (a heavy step) and minibatches of 128 (a light one). The size on disk
is one step directory's files against the state's array bytes. Results go
to `checkpoint_results.json`.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import time

import jax
import numpy as np
import orbax.checkpoint
import pytest

from harness import checkpoints as checkpoints_lib
from harness import mesh as mesh_lib
from submissions import loading
import workloads
from workloads import base

pytestmark = pytest.mark.benchmark

RESULTS = pathlib.Path(__file__).with_name('checkpoint_results.json')
ROUNDS = 9
REGIMES = {
    'full_batch_5000': base.BatchRegime(full_batch=True, train_size=5000,
                                        batch_size=5000, chunk_size=1000),
    'minibatch_128': base.BatchRegime(full_batch=False, train_size=5000,
                                      batch_size=128, chunk_size=128),
}
BOOKKEEPING = {'batches_drawn': 0, 'submission_time_s': 0.0,
               'timed_compiles': 0, 'wall_time_s': 0.0,
               'times': {'first_step_s': 0.0, 'eval_time_s': 0.0},
               'resumed_at_steps': [], 'probe': None,
               'milestones': {'solution_step': None}}


def _timed(fn) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def _directory_bytes(path: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


@pytest.mark.parametrize('name', sorted(REGIMES))
def test_checkpoint_cost(tmp_path, benchmark, name):
  regime = REGIMES[name]
  workload = workloads.get('fmnist_fc')
  submission = loading.load('adam')
  parallel = mesh_lib.DataParallel.over_all_devices()
  params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
  params = parallel.replicate(params)
  model_state = parallel.replicate(model_state)
  opt_state = parallel.place(submission.init_optimizer_state(
      workload, params, model_state, jax.random.PRNGKey(1)))
  like = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      (params, opt_state, model_state))
  batches = workload.dataset(regime).train_batches(regime, seed=0)
  rng = np.asarray(jax.random.PRNGKey(2))
  state = [(params, opt_state, model_state)]

  def step():
    params, opt_state, model_state = state[0]
    out = submission.update_params(
        workload, params, model_state, parallel.shard_batch(next(batches)),
        opt_state, [], 0, rng)
    state[0] = (out.params, out.optimizer_state, out.model_state)
    return state[0]

  ckpt = checkpoints_lib.Checkpoints(tmp_path / 'checkpoints')
  _timed(step)  # Compiles the step.
  ckpt.save(0, state[0], dict(BOOKKEEPING, step=0))  # Opens orbax.
  steps, saves, restores = [], [], []
  for i in range(1, ROUNDS + 1):
    steps.append(_timed(step))
    saves.append(_timed(lambda: ckpt.save(
        i, state[0], dict(BOOKKEEPING, step=i))))
    restores.append(_timed(lambda: ckpt.restore(i, like)[0]))
  on_disk = _directory_bytes(tmp_path / 'checkpoints' / str(ROUNDS))
  ckpt.close()
  benchmark.pedantic(lambda: None, rounds=1)
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(state[0]))
  values = {
      'step_ms': 1e3 * statistics.median(steps),
      'save_ms': 1e3 * statistics.median(saves),
      'restore_ms': 1e3 * statistics.median(restores),
      'save_over_step': statistics.median(saves) / statistics.median(steps),
      'state_bytes': state_bytes, 'checkpoint_bytes_on_disk': on_disk,
      'disk_over_state': on_disk / state_bytes, 'rounds': ROUNDS,
      'load_average_1min': os.getloadavg()[0],
      'devices': str(jax.devices()), 'jax': jax.__version__,
      'orbax_checkpoint': orbax.checkpoint.__version__,
  }
  benchmark.extra_info.update(values)
  data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
  data[name] = values
  RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
  print(f'\n[{name}] save {values["save_ms"]:.1f} ms = '
        f'{values["save_over_step"]:.2f} steps of {values["step_ms"]:.1f} '
        f'ms; restore {values["restore_ms"]:.1f} ms; '
        f'{on_disk / 2**20:.2f} MiB on disk for {state_bytes / 2**20:.2f} '
        f'MiB of state ({values["disk_over_state"]:.2f})')
  assert values['disk_over_state'] > 0.5  # The arrays are all there.
