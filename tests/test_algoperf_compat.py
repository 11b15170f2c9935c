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
from harness import runner
from submissions import adapters
from submissions import loading
from submissions.algoperf import jax_sharding_utils
from submissions.algoperf import spec
from workloads import base
from workloads import registry

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


def test_sharding_helpers_span_the_local_devices():
  tree = {'x': np.arange(4.0 * jax.local_device_count()).reshape(-1, 1)}
  sharded = jax_sharding_utils.shard_along_batch_dim(tree)
  replicated = jax_sharding_utils.replicate(tree)
  mesh = jax_sharding_utils.get_mesh()
  assert mesh.devices.size == jax.local_device_count()
  assert sharded['x'].sharding == jax_sharding_utils.get_batch_dim_sharding()
  assert replicated['x'].sharding.is_fully_replicated
  np.testing.assert_array_equal(sharded['x'], tree['x'])


def test_shape_tuples_are_leaves_of_the_shape_tree():
  from submissions.algoperf import param_utils
  shapes = param_utils.jax_param_shapes({'a': {'w': np.zeros((3, 2))}})
  assert shapes == {'a': {'w': spec.ShapeTuple((3, 2))}}
  assert jax.tree.leaves(shapes) == [spec.ShapeTuple((3, 2))]
