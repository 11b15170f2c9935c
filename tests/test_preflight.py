"""Set-up errors: refused by RunConfig, loading.load or preflight.check_run.

Each is a one-line message naming what is wrong, raised before the runner
creates a run directory; the last tests check that `runner.train` does
call these checks first.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from harness import config as config_lib
from harness import mesh as mesh_lib
from harness import preflight
from harness import runner
from submissions import api
from submissions import hparams as hparams_lib
from submissions import loading
import workloads
from workloads import base
from tests import submission_sources

SMALL = dict(workload='fmnist_fc', train_size=100, chunk_size=100,
             quiet=True)


def _one_line(error: pytest.ExceptionInfo, *words: str) -> str:
  message = str(error.value)
  assert '\n' not in message
  for word in words:
    assert word in message, (word, message)
  return message


# ---- RunConfig and CurvatureConfig ----


@pytest.mark.parametrize('overrides, words', [
    (dict(max_runtime_s=-1.0), ('max_runtime_s', 'positive', '-1.0')),
    (dict(max_runtime_s=0.0), ('max_runtime_s', 'positive')),
    (dict(max_runtime_s=math.nan), ('max_runtime_s', 'nan')),
    (dict(study=-1), ('study', '>= 0', '-1')),
    (dict(trial=-3), ('trial', '>= 0', '-3')),
    (dict(checkpoint_every=-1), ('checkpoint_every', '>= 0')),
    (dict(checkpoint_every_s=-60.0), ('checkpoint_every_s', '>= 0')),
    (dict(train_size=0), ('train_size', 'positive', 'unset')),
    (dict(batch_size=-8), ('batch_size', 'positive')),
    (dict(chunk_size=0), ('chunk_size', 'positive')),
    (dict(max_steps=0), ('max_steps', 'positive')),
    (dict(eval_every=0), ('eval_every', 'positive')),
    (dict(log_every=-1), ('log_every', 'positive')),
    (dict(save_preconditioner_at=(10, 0)), ('save_preconditioner_at', '[0]')),
], ids=lambda v: '-'.join(f'{k}={v[k]}' for k in v) if isinstance(
    v, dict) else None)
def test_run_config_refuses(overrides, words):
  with pytest.raises(ValueError) as e:
    config_lib.RunConfig(workload='fmnist_fc', submission='gd', **overrides)
  _one_line(e, *words)


def test_run_config_accepts_the_bounds():
  config = config_lib.RunConfig(
      workload='fmnist_fc', submission='gd', study=0, trial=0,
      checkpoint_every=0, checkpoint_every_s=0.0, max_runtime_s=0.5,
      train_size=1, eval_resident_gb=0.0, save_preconditioner_at=(1,))
  assert config.checkpoint_every_s == 0.0


@pytest.mark.parametrize('overrides, words', [
    (dict(every=-5), ('every', '--curvature_every', '-5')),
    (dict(top_k=0), ('top_k=0',)),
    (dict(top_k=21, num_iterations=20), ('top_k=21', 'num_iterations=20')),
    (dict(tol=-1e-3), ('tol', '--lanczos_tol')),
    (dict(tol=math.nan), ('tol', 'nan')),
])
def test_curvature_config_refuses(overrides, words):
  with pytest.raises(ValueError) as e:
    config_lib.CurvatureConfig(**overrides)
  _one_line(e, *words)


# ---- loading.load: hyperparameter types ----


@pytest.mark.parametrize('spec, hparams, words', [
    ('adam', {'learning_rate': 'fast'},
     ("'learning_rate'", 'a float', "str 'fast'")),
    ('adam', {'learning_rate': True}, ("'learning_rate'", 'bool')),
    ('adam', {'beta1': None}, ("'beta1'", 'NoneType')),
    ('frozen_adam', {'freeze_step': 10.5}, ("'freeze_step'", 'an int')),
    ('frozen_adam', {'freeze_step': 100.0}, ("'freeze_step'", 'float')),
    ('frozen_adam', {'preconditioner_path': 3},
     ("'preconditioner_path'", 'a string')),
])
def test_load_refuses_a_hyperparameter_of_the_wrong_type(spec, hparams, words):
  with pytest.raises(hparams_lib.HparamsError) as e:
    loading.load(spec, hparams)
  _one_line(e, *words)


def test_load_names_every_hyperparameter_of_the_wrong_type():
  with pytest.raises(hparams_lib.HparamsError) as e:
    loading.load('adam', {'learning_rate': 'fast', 'beta2': '0.99',
                          'beta1': 0.9})
  message = _one_line(e, "'learning_rate'", "'beta2'")
  assert "'beta1'" not in message


def test_load_accepts_ints_and_numpy_numbers_where_floats_are_expected():
  submission = loading.load('frozen_adam', {
      'learning_rate': 1, 'beta1': np.float32(0.8), 'eps': np.float64(1e-8),
      'freeze_step': np.int64(7), 'preconditioner_path': ''})
  assert submission.hparams['learning_rate'] == 1
  assert submission.hparams['freeze_step'] == 7


def test_a_default_of_none_accepts_any_value(tmp_path):
  path = tmp_path / 'anything.py'
  path.write_text(textwrap.dedent('''
      import optax
      DEFAULT_HPARAMS = {'learning_rate': 0.1, 'schedule': None}
      def make_optimizer(hparams):
        return optax.sgd(hparams['learning_rate'])
      '''))
  loaded = loading.load(str(path), {'schedule': [1, 2]})
  assert loaded.hparams['schedule'] == [1, 2]


# ---- preflight.check_run ----


def _config(tmp_path, **overrides) -> config_lib.RunConfig:
  return config_lib.RunConfig(**{
      **SMALL, 'submission': 'adam', 'experiment_dir': str(tmp_path / 'runs'),
      **overrides})


def _check(tmp_path, submission: api.Submission | str = 'adam',
           **overrides) -> base.Dataset:
  """check_run as the runner calls it, with the batch size of the config."""
  config = _config(tmp_path, **overrides)
  workload = workloads.get(config.workload, config.data)
  if isinstance(submission, str):
    submission = loading.load(submission)
  regime = config_lib.resolve_regime(config, workload, None)
  try:
    return preflight.check_run(config, workload, submission, regime,
                               mesh_lib.DataParallel.over_all_devices())
  finally:  # Whatever check_run found, it wrote nothing.
    assert not (tmp_path / 'runs').exists()


def _module(tmp_path, source: str) -> api.Submission:
  path = tmp_path / 'hooked.py'
  path.write_text(textwrap.dedent('''
      import jax
      import jax.numpy as jnp
      import numpy as np
      import optax

      def make_optimizer(hparams):
        return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
      ''') + textwrap.dedent(source))
  return loading.load(str(path))


def test_check_run_returns_the_dataset_of_the_regime(tmp_path):
  dataset = _check(tmp_path)
  assert dataset.train_size == 100
  batch = next(dataset.train_batches(
      base.BatchRegime(full_batch=True, train_size=100, batch_size=100,
                       chunk_size=100), 0))
  assert batch['inputs'].shape == (1, 100, 28, 28, 1)


def test_missing_data(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, data=base.DataConfig(source='idx',
                                          data_dir=str(tmp_path / 'none')))
  _one_line(e, 'fmnist_fc data', 'missing', 'apt-get install')


def test_unknown_data_source(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, data=base.DataConfig(source='floppy'))
  _one_line(e, "'floppy'", 'bundled', 'idx', 'tfds')


def test_train_size_larger_than_the_data(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, train_size=20_000, chunk_size=1000)
  _one_line(e, 'train_size 20000', '10000')


def test_minibatch_larger_than_the_pool(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, batch_size=200)
  _one_line(e, 'batch_size 200', 'train_size 100', '--train_size')


def test_curvature_batch_that_does_not_split_into_chunks(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, train_size=250, batch_size=100, chunk_size=100,
           curvature=config_lib.CurvatureConfig(every=10))
  _one_line(e, 'curvature batch of 250', 'chunks of 100', '--chunk_size')
  # Without the probe the same regime is fine.
  assert _check(tmp_path, train_size=250, batch_size=100, chunk_size=100)
  # The probe's own chunk size is checked as the probe uses it.
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, train_size=250, batch_size=50, chunk_size=50,
           curvature=config_lib.CurvatureConfig(every=10, chunk_size=100))
  _one_line(e, 'curvature batch of 250', 'chunks of 100',
            '--curvature_chunk_size')
  assert _check(tmp_path, train_size=250, batch_size=50, chunk_size=50,
                curvature=config_lib.CurvatureConfig(every=10, chunk_size=125))


def test_saving_a_preconditioner_the_submission_does_not_have(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, submission='gd', save_preconditioner_at=(5,))
  _one_line(e, '--save_preconditioner_at', 'gd', 'preconditioner')


def test_saving_a_preconditioner_that_is_none(tmp_path):
  submission = _module(tmp_path, '''
      def preconditioner(optimizer_state, hyperparameters):
        return None
      ''')
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, submission, save_preconditioner_at=(5,))
  _one_line(e, 'hooked.preconditioner returns None')
  assert _check(tmp_path, submission)  # Not saving: no preconditioner is OK.


def test_preconditioner_not_shaped_like_the_params(tmp_path):
  submission = _module(tmp_path, '''
      def preconditioner(optimizer_state, hyperparameters):
        nu = optax.tree_utils.tree_get(optimizer_state, 'nu')
        return jax.tree.map(lambda v: v[:, None], nu)
      ''')
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, submission)
  _one_line(e, 'hooked.preconditioner', "leaf ['Dense_0']['bias']",
            'float32[200,1] where float32[200]')


def test_preconditioner_is_traced_not_computed(tmp_path):
  submission = _module(tmp_path, '''
      CALLS = []

      def preconditioner(optimizer_state, hyperparameters):
        nu = optax.tree_utils.tree_get(optimizer_state, 'nu')
        CALLS.append(type(jax.tree.leaves(nu)[0]).__name__)
        return jax.tree.map(jnp.sqrt, nu)
      ''')
  _check(tmp_path, submission)
  assert submission.module.CALLS and all(
      'Tracer' in name for name in submission.module.CALLS)


_ALGOPERF_FUNCTIONS = '''
    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      return optimizer_state, current_param_container, model_state

    ''' + submission_sources.NEXT_BATCH


def test_an_initialisation_that_cannot_be_traced_is_not_refused(tmp_path):
  path = tmp_path / 'host_init.py'
  path.write_text(textwrap.dedent('''
      import jax
      import numpy as np

      def init_optimizer_state(workload, model_params, model_state,
                               hyperparameters, rng):
        # Reads the values on the host, which eval_shape cannot trace.
        return {'nu': jax.tree.map(lambda p: np.ones_like(np.asarray(p)),
                                   model_params)}

      def preconditioner(optimizer_state, hyperparameters):
        return optimizer_state['nu']
      ''') + textwrap.dedent(_ALGOPERF_FUNCTIONS))
  submission = loading.load(str(path))
  assert type(submission).__name__ == 'AlgoPerfSubmission'
  assert submission.implements('preconditioner')
  assert _check(tmp_path, submission)


def test_dynamics_of_the_wrong_type(tmp_path):
  submission = _module(tmp_path, '''
      def dynamics(hyperparameters):
        return {'momentum': 'heavy_ball', 'beta': 0.9}
      ''')
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, submission)
  _one_line(e, 'hooked.dynamics returned dict',
            'submissions.dynamics.Dynamics')


class _ClassSubmission(api.Submission):
  """A submission written as a class: its hooks bypass the adapters."""

  def __init__(self, batch_size=None, dynamics=None):
    super().__init__('by_class', api.Hyperparameters({}))
    self._batch_size = batch_size
    self._dynamics = dynamics

  def get_batch_size(self, workload_name):
    return self._batch_size

  def dynamics(self):
    return self._dynamics

  def init_optimizer_state(self, workload, params, model_state, rng):
    return {}

  def data_selection(self, *args):
    raise NotImplementedError

  def update_params(self, *args):
    raise NotImplementedError


@pytest.mark.parametrize('batch_size, words', [
    (0, ('by_class.get_batch_size', 'returned 0', 'positive int')),
    (-32, ('returned -32',)),
    (64.0, ('64.0', 'float')),
    (False, ('False', 'bool')),
])
def test_get_batch_size_not_a_positive_int(tmp_path, batch_size, words):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, _ClassSubmission(batch_size=batch_size))
  _one_line(e, *words)


def test_get_batch_size_of_a_module_is_refused_by_check_run_too(tmp_path):
  submission = _module(tmp_path, '''
      def get_batch_size(workload_name):
        return -1
      ''')
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, submission)
  _one_line(e, 'hooked.get_batch_size', "('fmnist_fc')", '-1')


def test_class_dynamics_of_the_wrong_type(tmp_path):
  with pytest.raises(preflight.SetupError) as e:
    _check(tmp_path, _ClassSubmission(dynamics='heavy_ball'))
  _one_line(e, 'by_class.dynamics returned str')


def test_class_submission_without_hooks_passes(tmp_path):
  submission = _ClassSubmission(batch_size=50)
  assert not submission.implements('preconditioner')
  assert _check(tmp_path, submission, batch_size=50, chunk_size=50)


# ---- Through runner.train: pass once the runner calls check_run first ----


@pytest.mark.parametrize('overrides', [
    dict(data=base.DataConfig(source='floppy')),
    dict(train_size=20_000, chunk_size=1000),
    dict(submission='gd', save_preconditioner_at=(5,)),
], ids=['unknown_source', 'train_size', 'no_preconditioner'])
def test_runner_refuses_setup_errors_before_the_run_directory(tmp_path,
                                                             overrides):
  config = _config(tmp_path, max_steps=2, **overrides)
  with pytest.raises(preflight.SetupError) as e:
    runner.train(config)
  assert '\n' not in str(e.value)
  assert not (tmp_path / 'runs').exists()


def test_runner_refuses_a_preconditioner_hook_before_the_run_directory(
    tmp_path):
  submission = _module(tmp_path, '''
      def preconditioner(optimizer_state, hyperparameters):
        return jnp.ones(3)
      ''')
  with pytest.raises(preflight.SetupError, match='hooked.preconditioner'):
    runner.train(_config(tmp_path, max_steps=2), submission=submission)
  assert not (tmp_path / 'runs').exists()
