"""AlgoPerf-form submissions import `algoperf.*` and run unmodified.

The names are the harness's compatibility modules (`submissions.algoperf`),
visible as `algoperf` only while a submission file is imported, unless the
user has a real `algoperf` installed, which is then used.
"""

from __future__ import annotations

import pathlib
import sys
import textwrap
import types

import jax
import numpy as np
import pytest

from harness import config as config_lib
from harness import mesh as mesh_lib
from harness import records
from harness import runner
from submissions import adapters
from submissions import api
from submissions import loading
from submissions.algoperf import jax_sharding_utils
from submissions.algoperf import spec
from workloads import base
from workloads import registry
from tests import submission_sources

FIXTURES = pathlib.Path(__file__).resolve().parent / 'algoperf_submissions'
MOMENTUM = str(FIXTURES / 'heavy_ball_momentum.py')
SMALL = dict(workload='fmnist_fc', train_size=1000, chunk_size=1000,
             quiet=True, log_every=1, eval_every=3)


def _algoperf_modules() -> list[str]:
  return sorted(name for name in sys.modules
                if name == 'algoperf' or name.startswith('algoperf.'))


def test_loaded_module_keeps_its_names_after_they_are_gone():
  submission = loading.load(MOMENTUM)
  assert _algoperf_modules() == []
  module = submission.module
  assert module.spec is spec and module.jax_sharding_utils is (
      jax_sharding_utils)
  assert module.spec.LossType is base.LossType
  assert module.spec.ForwardPassMode.TRAIN is base.ForwardPassMode.TRAIN


def test_algoperf_form_submission_runs_three_steps_on_fmnist_fc(tmp_path):
  result = runner.train(config_lib.RunConfig(
      submission=MOMENTUM, experiment_dir=str(tmp_path), max_steps=3,
      **SMALL))
  assert _algoperf_modules() == []
  module = sys.modules['aeosperf_submission_heavy_ball_momentum']
  assert module.SEEN['steps'] == 3
  assert module.SEEN['loss_type'] is base.LossType.SOFTMAX_CROSS_ENTROPY
  assert np.isfinite(float(module.SEEN['loss']))
  assert result.run_dir.is_dir()


def test_real_workload_params_types_reach_update_params(tmp_path):
  workload = registry.get('fmnist_fc')
  if not hasattr(workload, 'model_params_types'):
    pytest.skip('the workloads do not type their parameters yet')
  runner.train(config_lib.RunConfig(
      submission=MOMENTUM, experiment_dir=str(tmp_path), max_steps=1,
      **SMALL))
  module = sys.modules['aeosperf_submission_heavy_ball_momentum']
  params, _ = workload.init_model_fn(jax.random.PRNGKey(0))
  types_tree = module.SEEN['current_params_types']
  assert jax.tree.structure(types_tree) == jax.tree.structure(params)
  assert all(isinstance(t, spec.ParameterType)
             for t in jax.tree.leaves(types_tree))


def test_update_params_and_prepare_for_eval_get_the_workloads_types(
    tmp_path):
  submission = loading.load(_write_recorder(tmp_path))
  types_tree = {'w': spec.ParameterType.WEIGHT}
  workload = types.SimpleNamespace(loss_type=base.LossType.MEAN_SQUARED_ERROR,
                                   model_params_types=types_tree)
  params = {'w': np.ones(2)}
  submission.update_params(workload, params, {}, 'batch', 'state', [], 0,
                           'rng')
  submission.prepare_for_eval(workload, params, {}, 'state', [], 0, 'rng')
  assert submission.module.SEEN == {'update_params': types_tree,
                                    'prepare_for_eval': types_tree}
  assert adapters.params_types(types.SimpleNamespace()) is None


def _write_recorder(directory: pathlib.Path) -> str:
  path = directory / 'recorder.py'
  path.write_text(textwrap.dedent('''
      from algoperf import spec
      SEEN = {}
      def init_optimizer_state(workload, model_params, model_state,
                               hyperparameters, rng):
        return {}
      def update_params(workload, current_param_container,
                        current_params_types, model_state, hyperparameters,
                        batch, loss_type, optimizer_state, eval_results,
                        global_step, rng) -> spec.UpdateReturn:
        SEEN['update_params'] = current_params_types
        return optimizer_state, current_param_container, model_state
      def prepare_for_eval(workload, current_param_container,
                           current_params_types, model_state,
                           hyperparameters, loss_type, optimizer_state,
                           eval_results, global_step, rng):
        SEEN['prepare_for_eval'] = current_params_types
        return optimizer_state, current_param_container, model_state
      def get_batch_size(workload_name):
        return None
      def data_selection(workload, input_queue, optimizer_state,
                         current_param_container, model_state,
                         hyperparameters, global_step, rng):
        return next(input_queue)
      '''))
  return str(path)


def test_an_installed_algoperf_is_used_instead_of_ours(tmp_path,
                                                      monkeypatch):
  theirs = tmp_path / 'site' / 'algoperf'
  theirs.mkdir(parents=True)
  (theirs / '__init__.py').write_text('')
  (theirs / 'spec.py').write_text('WHOSE = "theirs"\n')
  monkeypatch.syspath_prepend(str(tmp_path / 'site'))
  for name in _algoperf_modules():
    monkeypatch.delitem(sys.modules, name)
  source = tmp_path / 'uses_theirs.py'
  source.write_text('from algoperf import spec\n')
  try:
    _, module = loading.import_module(str(source))
  finally:
    for name in _algoperf_modules():  # Theirs, imported by the file.
      del sys.modules[name]
  assert module.spec.WHOSE == 'theirs'
  assert module.spec.__file__ == str(theirs / 'spec.py')


def test_a_stub_under_the_name_is_left_in_place(tmp_path, monkeypatch):
  stub = types.ModuleType('algoperf')
  stub.spec = 'stub'
  monkeypatch.setitem(sys.modules, 'algoperf', stub)
  source = tmp_path / 'uses_stub.py'
  source.write_text('from algoperf import spec\n')
  _, module = loading.import_module(str(source))
  assert module.spec == 'stub' and sys.modules['algoperf'] is stub


def test_a_module_algoperf_lacks_here_fails_in_one_line(tmp_path):
  source = tmp_path / 'uses_torch.py'
  source.write_text('from algoperf import pytorch_utils\n')
  with pytest.raises(loading.SubmissionError) as raised:
    loading.import_module(str(source))
  message = str(raised.value)
  assert '\n' not in message and 'pytorch_utils' in message
  assert 'algoperf.jax_sharding_utils' in message
  assert _algoperf_modules() == []


def test_sharding_helpers_span_the_harness_mesh():
  tree = {'x': np.arange(4.0 * jax.device_count()).reshape(-1, 1)}
  sharded = jax_sharding_utils.shard_along_batch_dim(tree)
  replicated = jax_sharding_utils.replicate(tree)
  mesh = jax_sharding_utils.get_mesh()
  # Equal meshes make equal shardings: the harness's placements are the
  # submission's, so its step compiles once.
  assert mesh == mesh_lib.DataParallel.over_all_devices().mesh
  assert sharded['x'].sharding == jax_sharding_utils.get_batch_dim_sharding()
  assert replicated['x'].sharding.is_fully_replicated
  np.testing.assert_array_equal(sharded['x'], tree['x'])


def test_shape_tuples_are_leaves_of_the_shape_tree():
  from submissions.algoperf import param_utils
  shapes = param_utils.jax_param_shapes({'a': {'w': np.zeros((3, 2))}})
  assert shapes == {'a': {'w': spec.ShapeTuple((3, 2))}}
  assert jax.tree.leaves(shapes) == [spec.ShapeTuple((3, 2))]


# ---- How the runner drives an AlgoPerf-form module ----

# An SGD step in AlgoPerf's form that records what it is given, in `SEEN`.
# `optimizer_state` is {'sgd': optax state, 'prepared': how many times
# prepare_for_eval ran}, so the updates show what state training went on
# from. END_AT_STEP: the step whose update raises TrainingCompleteError.
_DRIVEN = '''
    import functools
    import jax
    import jax.numpy as jnp
    import optax
    from algoperf import spec

    DEFAULT_HPARAMS = {'learning_rate': 0.1}
    END_AT_STEP = None
    SEEN = {'batches': [], 'prepared_at_update': [], 'hyperparameters': []}
    _OPTIMIZER = optax.sgd(0.1)

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      SEEN['hyperparameters'].append(hyperparameters)
      return {'sgd': _OPTIMIZER.init(model_params), 'prepared': 0}
    ''' + submission_sources.OPTAX_STEP + '''
    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      if global_step == END_AT_STEP:
        raise spec.TrainingCompleteError(f'done at {global_step}')
      SEEN['batches'].append(
          {k: (v.shape, v.sharding) for k, v in batch.items()})
      SEEN['prepared_at_update'].append(optimizer_state['prepared'])
      params, sgd, model_state, loss = _step(
          workload, current_param_container, optimizer_state['sgd'],
          model_state, batch, rng)
      return ({'sgd': sgd, 'prepared': optimizer_state['prepared']}, params,
              model_state, {'loss': loss})

    def prepare_for_eval(workload, current_param_container,
                         current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step,
                         rng):
      state = {**optimizer_state, 'prepared': optimizer_state['prepared'] + 1}
      return state, PREPARED_PARAMS, model_state
    ''' + submission_sources.NEXT_BATCH


def _driven(directory: pathlib.Path, end_at_step=None,
            prepared_params='current_param_container') -> str:
  source = textwrap.dedent(_DRIVEN).replace(
      'END_AT_STEP = None', f'END_AT_STEP = {end_at_step}').replace(
          'PREPARED_PARAMS', prepared_params)
  path = directory / 'driven.py'
  path.write_text(source)
  return str(path)


def _driven_run(tmp_path, **overrides):
  source = overrides.pop('source', None) or _driven(tmp_path)
  settings = {**SMALL, 'train_size': 1000, 'chunk_size': 250,
              'max_steps': 4, 'eval_every': 2, **overrides}
  result = runner.train(config_lib.RunConfig(
      submission=source, experiment_dir=str(tmp_path / 'runs'), **settings))
  return result, sys.modules['aeosperf_submission_driven'].SEEN


def test_batches_arrive_as_algoperf_gives_them(tmp_path):
  """No chunk axis, the examples split over the devices; the harness's
  chunks of 250 are merged back into the full batch of 1000."""
  _, seen = _driven_run(tmp_path)
  batch = seen['batches'][0]
  assert batch['inputs'][0] == (1000, 28, 28, 1)
  assert batch['targets'][0] == (1000,)
  assert batch['inputs'][1].is_equivalent_to(
      jax_sharding_utils.get_batch_dim_sharding(), 4)


def test_minibatches_arrive_without_the_chunk_axis_too(tmp_path):
  _, seen = _driven_run(tmp_path, full_batch=False, batch_size=100,
                        chunk_size=50)
  assert {b['targets'][0] for b in seen['batches']} == {(100,)}


def test_training_goes_on_from_the_state_prepare_for_eval_returns(tmp_path):
  """Evaluations at steps 0 and 2 (and 4): the updates after each see its
  count, as AlgoPerf's runner keeps what prepare_for_eval returned."""
  result, seen = _driven_run(tmp_path)
  assert seen['prepared_at_update'] == [1, 1, 2, 2]
  assert result.summary.status is records.Status.BUDGET_EXHAUSTED


def test_prepare_for_eval_that_changes_the_params_is_refused(tmp_path):
  source = _driven(tmp_path, prepared_params=(
      'jax.tree.map(lambda p: p[..., :1], current_param_container)'))
  with pytest.raises(runner.RunFailed) as failed:
    _driven_run(tmp_path, source=source)
  message = str(failed.value)
  assert 'prepare_for_eval returned params unlike the initial ones' in (
      message) and 'step 0' in message


def test_training_complete_error_ends_the_run_with_a_final_evaluation(
    tmp_path):
  result, seen = _driven_run(tmp_path, source=_driven(tmp_path, end_at_step=3),
                             max_steps=10)
  summary = result.summary
  assert summary.status is records.Status.TRAINING_COMPLETE
  assert summary.final_step == 3 and len(seen['batches']) == 3
  evals = records.read_run(result.run_dir).metrics
  assert [e.step for e in evals] == [0, 2, 3]


def test_an_installed_algoperfs_training_complete_error_is_understood(
    tmp_path):
  theirs = type('TrainingCompleteError', (Exception,),
                {'__module__': 'algoperf.spec'})

  def update_params(*args):
    raise theirs('done')

  module = types.SimpleNamespace(update_params=update_params)
  submission = adapters.AlgoPerfSubmission('theirs', module,
                                           api.Hyperparameters({}))
  workload = types.SimpleNamespace(loss_type=base.LossType.SOFTMAX_CROSS_ENTROPY)
  with pytest.raises(api.TrainingComplete):
    submission.update_params(workload, {}, {}, {}, {}, [], 0, None)


def test_self_tuning_submissions_get_no_hyperparameters(tmp_path):
  result, seen = _driven_run(tmp_path, max_steps=1,
                             tuning_ruleset='self')
  assert seen['hyperparameters'] == [None]
  meta = records.read_run(result.run_dir).meta
  assert meta.hparams == {} and meta.config['tuning_ruleset'] == 'self'
  with pytest.raises(ValueError, match='takes no hyperparameters'):
    config_lib.RunConfig(workload='fmnist_fc', submission='adam',
                         hparams={'learning_rate': 1.0},
                         tuning_ruleset='self')


# ---- The AEoS hooks beside AlgoPerf's functions ----

_PROBED = dict(max_steps=4, eval_every=2, curvature=config_lib.CurvatureConfig(
    every=2, at_events=False, top_k=1, num_iterations=5, tol=None,
    warm_start=False))


def _with_hooks(directory: pathlib.Path) -> str:
  """The driven module with AlgoPerf's own state, plus `dynamics` and
  `preconditioner` (plain gradient descent: no preconditioner)."""
  source = pathlib.Path(_driven(directory)).read_text().replace(
      '_OPTIMIZER = optax.sgd(0.1)',
      '_OPTIMIZER = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)')
  source += textwrap.dedent('''
      from submissions import dynamics as dynamics_lib

      def dynamics(hyperparameters):
        return dynamics_lib.Dynamics(
            momentum=dynamics_lib.Momentum.NONE,
            style=dynamics_lib.Style.STANDARD, beta=0.0)

      def preconditioner(optimizer_state, hyperparameters):
        return None
      ''')
  path = directory / 'driven.py'
  path.write_text(source)
  return str(path)


def test_without_hooks_the_probe_measures_sharpness_threshold_unknown(
    tmp_path):
  result, _ = _driven_run(tmp_path, **_PROBED)
  probes = records.read_run(result.run_dir).curvature
  assert [p.step for p in probes] == [2, 4]
  assert all(p.sharpness > 0 and p.stability_threshold is None and
             p.threshold_unknown for p in probes)


def test_hooks_beside_algoperfs_functions_give_the_threshold(tmp_path):
  result, _ = _driven_run(tmp_path, source=_with_hooks(tmp_path), **_PROBED)
  probes = records.read_run(result.run_dir).curvature
  # Gradient descent at η = 0.1: the threshold is 2/η.
  assert [p.stability_threshold for p in probes] == [
      pytest.approx(20.0)] * 2
  assert all(p.threshold_ratio == pytest.approx(p.sharpness / 20.0)
             for p in probes)


def test_self_tuning_runs_get_one_and_a_half_budgets(tmp_path):
  """AlgoPerf's runner gives a self-tuning run 1.5 × the runtime budget."""
  from harness import preflight  # pylint: disable=g-import-not-at-top
  budgets = {}
  for ruleset in config_lib.TuningRuleset:
    setup = preflight.set_up(config_lib.RunConfig(
        submission=_driven(tmp_path), experiment_dir=str(tmp_path),
        tuning_ruleset=ruleset, **SMALL), None, None)
    loop = runner._TrainingLoop(setup, None, tmp_path / ruleset.value)
    budgets[ruleset] = loop.max_runtime_s
  workload = registry.get('fmnist_fc')
  assert budgets == {config_lib.TuningRuleset.EXTERNAL:
                     workload.runtime_budget_s,
                     config_lib.TuningRuleset.SELF:
                     1.5 * workload.runtime_budget_s}
