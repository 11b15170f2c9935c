"""AlgoPerf-form submissions run unmodified, on one device and on two.

The four files in `algoperf_submissions/` are written as AlgoPerf's JAX
submissions are: `nadamw` (warmup and cosine schedule, traced label
smoothing and dropout rate, a list-of-points search space),
`heavy_ball_momentum` (a min/max search space, its trial picked by
AlgoPerf's flags), `masked_weight_decay` (its mask built from
`current_params_types`) and `iterate_averaging` (`prepare_for_eval`
returns averaged params). Each trains a few steps on fmnist_fc through
`runner.train` in this process, on one device, and again in one
subprocess that forces two host devices; their records must agree.

Run as a module, `python -m tests.test_algoperf_fixtures DIR DEVICES`, this
file is that subprocess: it makes the same runs under DIR, after checking
that JAX sees DEVICES devices.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import subprocess
import sys
from typing import Any

from absl.testing import flagsaver
import jax
import numpy as np
import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from harness import submission_runner
from submissions import api
from submissions import hparams as hparams_lib
from submissions import loading
from submissions.algoperf import jax_sharding_utils
from workloads import registry
from tests import commands

FIXTURES = pathlib.Path(__file__).resolve().parent / 'algoperf_submissions'
ROOT = FIXTURES.parents[1]
NADAMW = FIXTURES / 'nadamw.py'
HEAVY_BALL = FIXTURES / 'heavy_ball_momentum.py'
MASKED = FIXTURES / 'masked_weight_decay.py'
AVERAGING = FIXTURES / 'iterate_averaging.py'
NADAMW_SPACE = FIXTURES / 'nadamw_search_space.json'
HEAVY_BALL_SPACE = FIXTURES / 'heavy_ball_momentum_search_space.json'

WORKLOAD = 'fmnist_fc'
STEPS = 6
EVAL_EVERY = 2
# Evaluated at step 0, every EVAL_EVERY steps and at the end.
EVAL_STEPS = list(range(0, STEPS + 1, EVAL_EVERY))
SMALL = dict(workload=WORKLOAD, train_size=1000, max_steps=STEPS,
             eval_every=EVAL_EVERY, log_every=EVAL_EVERY, quiet=True,
             stop_at_target=False)
# The trial of the heavy-ball min/max search space that the runs take.
HEAVY_BALL_TRIAL = 2
MASKED_HPARAMS = {'learning_rate': 0.05, 'one_minus_beta1': 0.1,
                  'weight_decay': 0.1}
AVERAGING_HPARAMS = {'learning_rate': 0.05, 'one_minus_beta1': 0.1,
                     'ema_decay': 0.9}
# NAdamW's learning rate at every step, read from its optimizer state by
# the curvature probe; two Lanczos iterations keep the probes cheap.
EVERY_STEP_PROBE = config_lib.CurvatureConfig(
    every=1, at_events=False, top_k=1, num_iterations=2, tol=None,
    warm_start=False)
# The 1- and 2-device runs see the same examples and do the same float32
# arithmetic but for the order of additions: each sum over a batch (loss,
# gradient, evaluation totals) becomes per-device partial sums, then an
# all-reduce. A reordered float32 sum moves by about one ulp (relative
# 1.2e-7); measured over these runs the losses differ by at most 1.5e-7.
# 1e-6 leaves room for other XLA builds' reduction orders, while a batch
# laid out wrongly (examples dropped, repeated or paired with another's
# label) moves a loss by far more.
DEVICES_RTOL = 1e-6


def nadamw_point() -> dict[str, Any]:
  """Trial 0 of NAdamW's list of points: a 4-step warmup on fmnist_fc
  (0.014 of its 300-step hint)."""
  return hparams_lib.SearchSpace.from_json(str(NADAMW_SPACE)).point(0, 0)


def heavy_ball_config(experiment_dir: pathlib.Path) -> config_lib.RunConfig:
  """The heavy-ball run as AlgoPerf's command line gives it."""
  argv = [submission_runner.PROGRAM, f'--workload={WORKLOAD}',
          f'--submission_path={HEAVY_BALL}',
          f'--tuning_search_space={HEAVY_BALL_SPACE}',
          f'--trial={HEAVY_BALL_TRIAL}', '--train_size=1000',
          f'--max_steps={STEPS}', f'--eval_every={EVAL_EVERY}',
          f'--log_every={EVAL_EVERY}', '--quiet',
          '--keep_training_past_target', '--nocurvature_at_events',
          f'--experiment_dir={experiment_dir}']
  with flagsaver.flagsaver():
    submission_runner.parse_flags(argv)
    return submission_runner.config_from_flags()


def configs(experiment_dir: pathlib.Path) -> dict[str, config_lib.RunConfig]:
  """The run of each fixture, by the fixture's name."""
  directory = str(experiment_dir)
  return {
      'nadamw': config_lib.RunConfig(
          submission=str(NADAMW), hparams=nadamw_point(),
          experiment_dir=directory, curvature=EVERY_STEP_PROBE, **SMALL),
      'heavy_ball_momentum': heavy_ball_config(experiment_dir),
      'masked_weight_decay': config_lib.RunConfig(
          submission=str(MASKED), hparams=MASKED_HPARAMS,
          experiment_dir=directory, **SMALL),
      'iterate_averaging': config_lib.RunConfig(
          submission=str(AVERAGING), hparams=AVERAGING_HPARAMS,
          experiment_dir=directory, **SMALL),
  }


def run_all(experiment_dir: pathlib.Path) -> dict[str, records.RunRecord]:
  """Trains every fixture; its run records by the fixture's name."""
  return {name: records.read_run(runner.train(config).run_dir)
          for name, config in configs(experiment_dir).items()}


@dataclasses.dataclass(frozen=True)
class OneDeviceRuns:
  """The runs made in this process, and what a fixture kept of them.

  Attributes:
    runs: the run records, by fixture name.
    decay_mask: the mask masked_weight_decay built from the
      `current_params_types` the harness passed at its last update.
  """

  runs: dict[str, records.RunRecord]
  decay_mask: Any


@pytest.fixture(name='one_device', scope='module')
def _one_device(tmp_path_factory) -> OneDeviceRuns:
  devices = jax.devices()
  if len(devices) != 1 or devices[0].platform != 'cpu':
    pytest.skip(f'the runs in this process are compared with two forced '
                f'CPU devices; this process has {devices}')
  runs = run_all(tmp_path_factory.mktemp('one_device'))
  # Read now: a later load of the same file replaces the module.
  masked = sys.modules['aeosperf_submission_masked_weight_decay']
  return OneDeviceRuns(runs, masked.SEEN['decay_mask'])


@pytest.fixture(name='two_devices', scope='module')
def _two_devices(tmp_path_factory) -> dict[str, records.RunRecord]:
  directory = tmp_path_factory.mktemp('two_devices')
  env = commands.forced_devices(2)
  out = subprocess.run(
      [sys.executable, '-m', 'tests.test_algoperf_fixtures', str(directory),
       '2'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-4000:]
  runs = map(records.read_run, records.find_run_dirs(directory))
  return {run.submission: run for run in runs}


FIXTURE_NAMES = ('nadamw', 'heavy_ball_momentum', 'masked_weight_decay',
                 'iterate_averaging')


@pytest.mark.parametrize('name', FIXTURE_NAMES)
def test_each_fixture_trains_to_its_budget_on_one_device(one_device, name):
  run = one_device.runs[name]
  assert run.summary.status is records.Status.BUDGET_EXHAUSTED, (
      run.summary.error)
  assert run.summary.final_step == STEPS
  assert run.meta.devices.count == 1
  assert [m.step for m in run.metrics] == EVAL_STEPS
  losses = [m.train_loss for m in run.metrics]
  assert all(math.isfinite(loss) for loss in losses)
  assert losses[-1] < losses[0]


@pytest.mark.parametrize('name', FIXTURE_NAMES)
def test_each_fixture_compiles_its_step_only_in_the_first(one_device, name):
  # The harness hands the step its inputs as AlgoPerf's runner does, laid
  # out as the step's own outputs are, so later steps reuse the first
  # step's executable and the steady loop compiles nothing.
  assert one_device.runs[name].summary.timed_compiles == 0


@pytest.mark.parametrize('name', FIXTURE_NAMES)
def test_two_devices_record_the_one_device_losses(one_device, two_devices,
                                                  name):
  one, two = one_device.runs[name], two_devices[name]
  assert two.summary.status is records.Status.BUDGET_EXHAUSTED, (
      two.summary.error)
  assert (one.meta.devices.count, two.meta.devices.count) == (1, 2)
  assert one.meta.hparams == two.meta.hparams
  assert [m.step for m in two.metrics] == [m.step for m in one.metrics]
  for split in ('train', 'validation'):
    np.testing.assert_allclose(
        [m.metrics[f'{split}/loss'] for m in two.metrics],
        [m.metrics[f'{split}/loss'] for m in one.metrics],
        rtol=DEVICES_RTOL, err_msg=f'{name}: {split} loss')
  assert [p.learning_rate for p in two.curvature] == [
      p.learning_rate for p in one.curvature]


def test_nadamw_learning_rate_warms_up_then_decays(one_device):
  point = nadamw_point()
  peak = point['learning_rate']
  step_hint = registry.get(WORKLOAD).step_hint
  warmup = int(point['warmup_factor'] * step_hint)
  assert 1 < warmup < STEPS - 1  # The runs see warmup, peak and decay.
  probes = one_device.runs['nadamw'].curvature
  assert [p.step for p in probes] == list(range(1, STEPS + 1))
  # The probe after update n reads the rate update n used: the schedule
  # at step n - 1.
  expected = [peak * k / warmup if k < warmup else
              peak * 0.5 * (1 + math.cos(math.pi * (k - warmup) /
                                         (step_hint - warmup)))
              for k in range(STEPS)]
  got = [p.learning_rate for p in probes]
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got[0] == 0.0 and got[warmup] == pytest.approx(peak, rel=1e-6)
  assert all(a < b for a, b in zip(got[:warmup], got[1:warmup + 1]))
  assert all(a > b for a, b in zip(got[warmup:], got[warmup + 1:]))


def test_nadamw_trains_on_the_minibatches_it_asks_for(one_device,
                                                      two_devices):
  # get_batch_size('fmnist_fc') is 250: minibatches drawn from the 1,000
  # examples replace the workload's full batch, one chunk each.
  expected = records.Regime(full_batch=False, train_size=1000,
                            batch_size=250, chunk_size=250)
  assert one_device.runs['nadamw'].meta.regime == expected
  assert two_devices['nadamw'].meta.regime == expected


def test_heavy_ball_trial_takes_its_point_of_the_min_max_space(
    one_device, two_devices, tmp_path):
  # The command line sets up the same small run as the others.
  config = heavy_ball_config(tmp_path)
  assert {name: getattr(config, name) for name in SMALL} == SMALL
  space = hparams_lib.SearchSpace.from_json(str(HEAVY_BALL_SPACE))
  point = space.point(0, HEAVY_BALL_TRIAL)
  assert point != space.point(0, HEAVY_BALL_TRIAL - 1)
  assert 0.01 <= point['learning_rate'] <= 0.1
  assert 0.05 <= point['one_minus_beta1'] <= 0.2
  assert point['weight_decay'] in (1e-4, 5e-4)
  default = loading.load(str(HEAVY_BALL)).hparams.to_dict()
  for run in (one_device.runs['heavy_ball_momentum'],
              two_devices['heavy_ball_momentum']):
    assert run.meta.hparams == point != default
    assert (run.meta.study, run.meta.trial) == (0, HEAVY_BALL_TRIAL)
    assert run.path.name == f'trial_{HEAVY_BALL_TRIAL}'


def test_masked_weight_decay_mask_from_the_harness_types(one_device):
  params, _ = registry.get(WORKLOAD).init_model_fn(jax.random.PRNGKey(0))
  expected = {layer: {'kernel': True, 'bias': False} for layer in params}
  assert one_device.decay_mask == expected


def _one_update(module, workload, params, hparams, params_types):
  """`module.update_params` once on a batch of ones, as the harness calls
  it: the batch split by example, everything else replicated."""
  batch = jax_sharding_utils.shard_along_batch_dim(
      {'inputs': np.ones((8, 28, 28, 1), np.float32),
       'targets': np.arange(8, dtype=np.int32) % workload.num_classes})
  hyperparameters = api.Hyperparameters(hparams)
  state = module.init_optimizer_state(workload, params, {}, hyperparameters,
                                      jax.random.PRNGKey(1))
  _, new_params, _ = module.update_params(
      workload, params, params_types, {}, hyperparameters, batch,
      workload.loss_type, state, [], 0, jax.random.PRNGKey(2))
  return new_params


def test_masked_weight_decay_shrinks_weights_and_spares_biases():
  module = loading.load(str(MASKED), MASKED_HPARAMS).module
  workload = registry.get(WORKLOAD)
  params, _ = workload.init_model_fn(jax.random.PRNGKey(0))
  # Non-zero biases, so that decaying them would show.
  params = jax_sharding_utils.replicate(jax.tree_util.tree_map_with_path(
      lambda path, p: np.ones_like(p) if path[-1].key == 'bias' else p,
      params))
  types_tree = workload.model_params_types
  decayed = _one_update(module, workload, params, MASKED_HPARAMS, types_tree)
  undecayed = _one_update(module, workload, params,
                          {**MASKED_HPARAMS, 'weight_decay': 0.0}, types_tree)
  shrink = MASKED_HPARAMS['learning_rate'] * MASKED_HPARAMS['weight_decay']
  for layer in params:
    np.testing.assert_array_equal(decayed[layer]['bias'],
                                  undecayed[layer]['bias'])
    kernel = np.asarray(params[layer]['kernel'])
    # Both take the same gradient step; float32 rounds each result to an
    # ulp of the kernel's entries (under 3e-8 here), so the difference is
    # the decay to within 1e-7, beside decays of up to 2e-3.
    np.testing.assert_allclose(
        np.asarray(decayed[layer]['kernel']) -
        np.asarray(undecayed[layer]['kernel']), -shrink * kernel,
        rtol=0, atol=1e-7)


@pytest.mark.parametrize('params_types, error', [
    (None, ValueError),
    ('missing a layer', ValueError),
    ('strings, not types', TypeError),
])
def test_masked_weight_decay_refuses_types_that_do_not_fit(params_types,
                                                           error):
  module = loading.load(str(MASKED), MASKED_HPARAMS).module
  workload = registry.get(WORKLOAD)
  params, _ = workload.init_model_fn(jax.random.PRNGKey(0))
  types_tree = workload.model_params_types
  if params_types == 'missing a layer':
    params_types = dict(list(types_tree.items())[1:])
  elif params_types == 'strings, not types':
    params_types = jax.tree.map(lambda kind: kind.name, types_tree)
  with pytest.raises(error, match='current_params_types'):
    _one_update(module, workload, jax_sharding_utils.replicate(params),
                MASKED_HPARAMS, params_types)


def test_iterate_averaging_evaluates_the_average(one_device, tmp_path):
  # With ema_decay 0 the average is the iterate, to the bit, and training
  # does not read the average: this run's evaluations are those of the
  # raw iterates of the averaged run.
  raw = records.read_run(runner.train(config_lib.RunConfig(
      submission=str(AVERAGING), experiment_dir=str(tmp_path),
      hparams={**AVERAGING_HPARAMS, 'ema_decay': 0.0}, **SMALL)).run_dir)
  averaged = one_device.runs['iterate_averaging']
  assert averaged.metrics[0].metrics == raw.metrics[0].metrics  # x_0 = a_0.
  for evaluated, iterate in zip(averaged.metrics[1:], raw.metrics[1:]):
    assert evaluated.train_loss != pytest.approx(iterate.train_loss,
                                                 rel=1e-3)


def _main(argv: list[str]) -> None:
  experiment_dir, devices = pathlib.Path(argv[1]), int(argv[2])
  if jax.device_count() != devices:
    raise SystemExit(f'expected {devices} devices, JAX sees '
                     f'{jax.devices()}')
  run_all(experiment_dir)


if __name__ == '__main__':
  _main(sys.argv)
