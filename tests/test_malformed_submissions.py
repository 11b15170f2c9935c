"""Malformed submissions: each is refused where it goes wrong, in one line.

Every case is a small submission file, run through the stages a run takes
(load, batch regime, set-up checks, one step under the step contract) as
the runner would, without the runner: the test asserts which stage refuses
it, the error's type and the key words of its one-line message.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import jax
import pytest

from harness import config as config_lib
from harness import mesh as mesh_lib
from harness import preflight
from harness import records
from harness import runner
from harness import step_checks
from submissions import api
from submissions import hparams as hparams_lib
from submissions import loading
import workloads
from tests import submission_sources

SMALL = dict(workload='fmnist_fc', train_size=100, chunk_size=100)

_SHORT = '''
    import jax
    import jax.numpy as jnp
    import optax

    DEFAULT_HPARAMS = {'learning_rate': 0.1}

    def make_optimizer(hparams):
      MAKE_OPTIMIZER
    '''

_ADAM = 'return optax.inject_hyperparams(optax.adam)(hparams["learning_rate"])'

_ALGOPERF = '''
    import functools
    import jax
    import jax.numpy as jnp
    import optax
    from algoperf import spec

    DEFAULT_HPARAMS = {'learning_rate': 0.1}

    def _optimizer(hyperparameters):
      return optax.inject_hyperparams(optax.sgd)(
          learning_rate=hyperparameters.learning_rate)

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      return _optimizer(hyperparameters).init(model_params)

    def get_batch_size(workload_name):
      return BATCH_SIZE

    def data_selection(workload, input_queue, optimizer_state,
                       current_param_container, model_state, hyperparameters,
                       global_step, rng):
      DATA_SELECTION

    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      params = current_param_container
      UPDATE_PARAMS
    '''

_ALGOPERF += submission_sources.MEAN_LOSS

_ALGOPERF_DEFAULTS = {
    'BATCH_SIZE': 'None',
    'DATA_SELECTION': 'return next(input_queue)',
    'UPDATE_PARAMS': 'return optimizer_state, params, model_state',
}


def short_form(make_optimizer: str = _ADAM, extra: str = '') -> str:
  return (textwrap.dedent(_SHORT).replace('MAKE_OPTIMIZER', make_optimizer)
          + textwrap.dedent(extra))


def algoperf_form(**parts: str) -> str:
  source = textwrap.dedent(_ALGOPERF)
  for marker, default in _ALGOPERF_DEFAULTS.items():
    source = source.replace(marker, parts.get(marker.lower(), default))
  return source


@dataclasses.dataclass(frozen=True)
class Case:
  """A malformed submission and how it must be refused."""

  source: str
  stage: str  # 'load', 'regime', 'preflight' or 'step'.
  error: type[Exception]
  words: tuple[str, ...]
  hparams: dict[str, Any] | None = None


_SCALAR_PRECONDITIONER = '''
    def preconditioner(optimizer_state, hyperparameters):
      nu = optax.tree_utils.tree_get(optimizer_state, 'nu')
      return jax.tree.map(lambda v: jnp.sqrt(v).sum(), nu)
    '''
_SCALAR_UPDATES = (
    'def update(updates, state, params=None):\n'
    '    return jax.tree.map(jnp.sum, updates), state\n'
    '  return optax.GradientTransformation(lambda p: optax.EmptyState(), '
    'update)')

CASES = {
    # ---- Refused by loading.load ----
    'make_optimizer_returns_a_string': Case(
        short_form("return 'sgd'"), 'load', api.SubmissionOutputError,
        ('make_optimizer', 'str', 'GradientTransformation')),
    'make_optimizer_takes_two_arguments': Case(
        short_form(_ADAM).replace('make_optimizer(hparams)',
                                  'make_optimizer(hparams, extra)'),
        'load', loading.SubmissionError, ('make_optimizer', "('hparams',)")),
    'default_hparams_is_a_list': Case(
        short_form(extra="DEFAULT_HPARAMS = ['learning_rate']\n"), 'load',
        loading.SubmissionError, ('DEFAULT_HPARAMS', 'list', 'dict')),
    'syntax_error': Case(
        short_form('return optax.sgd(0.1'), 'load',
        loading.SubmissionError, ('importing', 'SyntaxError')),
    'algoperf_without_data_selection': Case(
        algoperf_form().replace('def data_selection', 'def select_data'),
        'load', loading.SubmissionError, ('missing', 'data_selection')),
    'learning_rate_is_a_string': Case(
        short_form(), 'load', hparams_lib.HparamsError,
        ('learning_rate', 'a float', "'fast'"),
        hparams={'learning_rate': 'fast'}),
    'learning_rate_is_a_bool': Case(
        short_form(), 'load', hparams_lib.HparamsError,
        ('learning_rate', 'a float', 'bool'), hparams={'learning_rate': True}),
    # ---- Refused by get_batch_size, which the runner calls first ----
    'batch_size_negative': Case(
        algoperf_form(batch_size='-8'), 'regime', api.SubmissionOutputError,
        ('get_batch_size', '-8', 'positive int')),
    'batch_size_zero': Case(
        algoperf_form(batch_size='0'), 'regime', api.SubmissionOutputError,
        ('get_batch_size', 'returned 0', 'positive int')),
    'batch_size_float': Case(
        algoperf_form(batch_size='12.5'), 'regime',
        api.SubmissionOutputError, ('get_batch_size', '12.5', 'float')),
    'batch_size_string': Case(
        algoperf_form(batch_size="'64'"), 'regime', api.SubmissionOutputError,
        ('get_batch_size', "'64'", 'str')),
    'batch_size_bool': Case(
        algoperf_form(batch_size='True'), 'regime',
        api.SubmissionOutputError, ('get_batch_size', 'True', 'bool')),
    # ---- Refused by preflight.check_run ----
    'dynamics_returns_a_string': Case(
        short_form(extra='''
            def dynamics(hyperparameters):
              return 'heavy_ball'
            '''), 'preflight', preflight.SetupError,
        ('dynamics', 'str', 'submissions.dynamics.Dynamics')),
    'preconditioner_of_scalars': Case(
        short_form(extra=_SCALAR_PRECONDITIONER), 'preflight',
        preflight.SetupError,
        ('preconditioner', "leaf ['Dense_0']['bias']", 'float32[]',
         'float32[200]')),
    'preconditioner_returns_a_list': Case(
        short_form(extra='''
            def preconditioner(optimizer_state, hyperparameters):
              return [1.0]
            '''), 'preflight', preflight.SetupError,
        ('preconditioner', 'list with 1 leaf', 'dict with 12 leaves')),
    # ---- Refused during the step ----
    'data_selection_returns_none': Case(
        algoperf_form(data_selection='return None'), 'step',
        step_checks.SubmissionOutputError,
        ('data_selection', 'returned None', 'step 0')),
    'data_selection_drops_the_batch_axis': Case(
        algoperf_form(data_selection=(
            'return {k: v[0] for k, v in next(input_queue).items()}')),
        'step', step_checks.SubmissionOutputError,
        ('data_selection', "leaf ['targets']", 'int32[]', '(batch_size)')),
    'update_params_changes_a_dtype': Case(
        algoperf_form(update_params=(
            'params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)'
            '\n  return optimizer_state, params, model_state')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', "leaf ['Dense_0']['bias']", 'bfloat16[200]',
         'float32[200]')),
    'update_params_scalar_update': Case(
        algoperf_form(update_params=(
            'params = jax.tree.map(lambda p: jnp.mean(p) - 0.1, params)'
            '\n  return optimizer_state, params, model_state')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', "leaf ['Dense_0']['bias']", 'float32[]')),
    'update_params_update_broadcasts_to_a_new_shape': Case(
        algoperf_form(update_params=(
            'params = jax.tree.map(lambda p: p - jnp.ones((2, *p.shape)), '
            'params)'
            '\n  return optimizer_state, params, model_state')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', "leaf ['Dense_0']['bias']", 'float32[2,200]')),
    'update_params_wrong_order': Case(
        algoperf_form(update_params=(
            'return params, optimizer_state, model_state')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', 'wrong order', 'optimizer_state position')),
    'update_params_nested_pair': Case(
        algoperf_form(update_params=(
            'return (optimizer_state, params), model_state')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', 'a tuple of 2', '(optimizer_state, params, '
         'model_state)')),
    'update_params_returns_none': Case(
        algoperf_form(update_params='return None'), 'step',
        step_checks.SubmissionOutputError, ('update_params', 'returned None')),
    'update_params_drops_the_model_state': Case(
        algoperf_form(update_params='return optimizer_state, params, None'),
        'step', step_checks.SubmissionOutputError,
        ('update_params', 'model_state', 'the tree is None')),
    'metrics_not_a_dict': Case(
        algoperf_form(update_params=(
            'return optimizer_state, params, model_state, [1.0]')),
        'step', step_checks.SubmissionOutputError,
        ('update_params', 'metrics', 'list')),
    'metrics_loss_not_a_scalar': Case(
        algoperf_form(update_params=(
            "return optimizer_state, params, model_state, "
            "{'loss': jnp.ones(3)}")),
        'step', step_checks.SubmissionOutputError,
        ('update_params', "metrics ['loss']", '(3,)', 'scalar')),
    'short_form_scalar_updates': Case(
        short_form(_SCALAR_UPDATES), 'step',
        step_checks.SubmissionOutputError,
        ('make_optimizer(...).update', 'updates', "leaf ['Dense_0']['bias']",
         'float32[]', 'float32[200]')),
}


def _write(tmp_path, source: str) -> str:
  path = tmp_path / 'malformed.py'
  path.write_text(source)
  return str(path)


class _Stages:
  """The stages of a run up to its first step, as the runner takes them."""

  def __init__(self, tmp_path, path: str, hparams=None):
    self.tmp_path = tmp_path
    self.path = path
    self.hparams = hparams
    self.stage = None
    self.workload = workloads.get('fmnist_fc')
    self.config = config_lib.RunConfig(
        submission=path, experiment_dir=str(tmp_path / 'runs'), **SMALL)
    self.parallel = mesh_lib.DataParallel.over_all_devices()

  def run(self) -> api.StepOutput:
    self.stage = 'load'
    submission = loading.load(self.path, self.hparams)
    self.stage = 'regime'
    regime = config_lib.resolve_regime(
        self.config, self.workload,
        submission.get_batch_size(self.workload.name))
    self.stage = 'preflight'
    dataset = preflight.check_run(self.config, self.workload, submission,
                                  regime, self.parallel)
    self.stage = 'step'
    return self._first_step(submission, dataset, regime)

  def _first_step(self, submission, dataset, regime) -> api.StepOutput:
    workload, parallel = self.workload, self.parallel
    init_rng, opt_rng, step_rng = jax.random.split(jax.random.PRNGKey(0), 3)
    params, model_state = workload.init_model_fn(init_rng)
    params = parallel.replicate(params)
    model_state = parallel.replicate(model_state)
    opt_state = parallel.place(submission.init_optimizer_state(
        workload, params, model_state, opt_rng))
    chunk_axis = submission.batches_have_chunk_axis
    contract = step_checks.StepContract.of(params, model_state,
                                           chunk_axis=chunk_axis)
    queue = (parallel.place_batch(b, chunk_axis=chunk_axis) for b in
             dataset.train_batches(regime, self.config.seed))
    batch = submission.data_selection(workload, queue, opt_state, params,
                                      model_state, 0, step_rng)
    contract.check_batch(batch, 0)
    out = submission.update_params(workload, params, model_state, batch,
                                   opt_state, [], 0, step_rng)
    contract.check_output(out, 0)
    return out


@pytest.mark.parametrize('case', CASES.values(), ids=CASES.keys())
def test_malformed_submission_is_refused_in_one_line(tmp_path, case):
  stages = _Stages(tmp_path, _write(tmp_path, case.source), case.hparams)
  with pytest.raises(case.error) as e:
    stages.run()
  message = str(e.value)
  assert stages.stage == case.stage, message
  assert '\n' not in message
  for word in case.words:
    assert word in message, (word, message)
  # Nothing before the run writes a file: the run directory is not there.
  assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize('source', [
    short_form(),
    algoperf_form(batch_size='100', update_params=(
        '(loss, model_state), grads = jax.jit(jax.value_and_grad('
        'functools.partial(_mean_loss, workload), has_aux=True))('
        'params, model_state, batch, rng)\n'
        '  updates, optimizer_state = _optimizer(hyperparameters).update('
        'grads, optimizer_state, params)\n'
        '  params = optax.apply_updates(params, updates)\n'
        "  return optimizer_state, params, model_state, {'loss': loss}")),
], ids=['short', 'algoperf'])
def test_well_formed_submissions_pass_every_stage(tmp_path, source):
  stages = _Stages(tmp_path, _write(tmp_path, source))
  out = stages.run()
  assert stages.stage == 'step'
  assert float(out.metrics.get('loss', 1.0)) > 0


# ---- Through runner.train: pass once the runner checks every step ----


@pytest.mark.parametrize('name', ['update_params_changes_a_dtype',
                                  'data_selection_returns_none'])
def test_runner_records_the_named_error(tmp_path, name):
  case = CASES[name]
  config = config_lib.RunConfig(
      submission=_write(tmp_path, case.source), max_steps=2, log_every=1,
      eval_every=2, quiet=True, experiment_dir=str(tmp_path / 'runs'),
      **SMALL)
  with pytest.raises(Exception):
    runner.train(config)
  run = records.read_run(records.run_dir(config.experiment_dir, 'fmnist_fc',
                                         'malformed'))
  assert run.summary.status is records.Status.ERROR
  assert run.summary.error.startswith('SubmissionOutputError: ')
  assert run.summary.error_kind is records.ErrorKind.SUBMISSION
  for word in case.words:
    assert word in run.summary.error, (word, run.summary.error)


def _failed_summary(config: config_lib.RunConfig,
                    message: str) -> records.Summary:
  """Trains until the run fails with `message`; its summary.json."""
  with pytest.raises(RuntimeError, match=message):
    runner.train(config)
  return records.read_run(records.run_dir(
      config.experiment_dir, 'fmnist_fc', 'malformed')).summary


def test_an_exception_inside_the_update_is_the_submissions_failure(tmp_path):
  source = algoperf_form(update_params=(
      'if global_step == 1:\n'
      '    raise FloatingPointError("update blew up")\n'
      '  return optimizer_state, params, model_state'))
  config = config_lib.RunConfig(
      submission=_write(tmp_path, source), max_steps=3, log_every=1,
      eval_every=2, quiet=True, experiment_dir=str(tmp_path / 'runs'),
      **SMALL)
  summary = _failed_summary(config, 'update blew up')
  assert (summary.status, summary.error_kind, summary.final_step) == (
      records.Status.ERROR, records.ErrorKind.SUBMISSION, 1)
  assert summary.error == 'FloatingPointError: update blew up'


def test_an_exception_before_the_first_update_is_a_set_up_error(
    tmp_path, monkeypatch):
  config = config_lib.RunConfig(
      submission=_write(tmp_path, algoperf_form()), max_steps=3,
      log_every=1, eval_every=2, quiet=True,
      experiment_dir=str(tmp_path / 'runs'), **SMALL)
  def no_batches(*args, **kwargs):
    raise OSError('training data vanished')
  # The evaluation of step 0 runs before the first update: a failure there
  # is the set-up's, never the optimizer's.
  monkeypatch.setattr(runner.evaluation.Evaluator, '__call__', no_batches)
  summary = _failed_summary(config, 'training data vanished')
  assert (summary.status, summary.error_kind, summary.final_step) == (
      records.Status.ERROR, records.ErrorKind.SETUP, 0)
