"""Submission API: loading, validation, hyperparameters and the baselines."""

from __future__ import annotations

import ast
import json
import pathlib
import re
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import stability
from submissions import api
from submissions import dynamics as dynamics_lib
from submissions import hparams as hparams_lib
from submissions import loading
from submissions import preconditioner_file
from submissions.baselines import adaptive
from submissions.baselines import padam
from submissions.baselines import shampoo
from submissions.baselines import slimadam
from submissions.baselines import soap

SUBMISSIONS_DIR = pathlib.Path(loading.__file__).parent
BASELINE_DIR = SUBMISSIONS_DIR / 'baselines'
README = SUBMISSIONS_DIR.parent / 'README.md'


def _write(tmp_path, source: str) -> str:
  path = tmp_path / 'my_submission.py'
  path.write_text(textwrap.dedent(source))
  return str(path)


def test_unknown_baseline_lists_known_names():
  with pytest.raises(loading.SubmissionError) as e:
    loading.load('adamm')
  for name in loading.BASELINES:
    assert name in str(e.value)


def test_module_without_api_names_every_missing_function(tmp_path):
  path = _write(tmp_path, '''
      def init_optimizer_state(workload, model_params, model_state,
                               hyperparameters, rng):
        return None
      ''')
  with pytest.raises(loading.SubmissionError) as e:
    loading.load(path)
  message = str(e.value)
  for name in ('update_params', 'get_batch_size', 'data_selection'):
    assert name in message
  assert 'make_optimizer' in message


def test_wrong_arity_is_reported_with_expected_arguments(tmp_path):
  path = _write(tmp_path, '''
      def make_optimizer(hparams, extra):
        return None
      def dynamics():
        return None
      ''')
  with pytest.raises(loading.SubmissionError) as e:
    loading.load(path)
  message = str(e.value)
  assert 'make_optimizer' in message and "('hparams',)" in message
  assert 'dynamics' in message


def test_make_optimizer_must_return_gradient_transformation(tmp_path):
  path = _write(tmp_path, '''
      def make_optimizer(hparams):
        return 'sgd'
      ''')
  with pytest.raises(TypeError, match='GradientTransformation'):
    loading.load(path)


def test_import_error_is_wrapped_with_path(tmp_path):
  path = _write(tmp_path, 'import not_a_module_anywhere\n')
  with pytest.raises(loading.SubmissionError, match='my_submission.py'):
    loading.load(path)


def test_unknown_hyperparameter_is_refused():
  with pytest.raises(hparams_lib.HparamsError, match='lerning_rate'):
    loading.load('adam', {'lerning_rate': 1e-3})


def test_hparams_inline_and_file(tmp_path):
  assert hparams_lib.load_hparams('{"learning_rate": 0.1}') == {
      'learning_rate': 0.1}
  path = tmp_path / 'h.json'
  path.write_text('{"beta1": 0.8}')
  assert hparams_lib.load_hparams(str(path)) == {'beta1': 0.8}
  with pytest.raises(hparams_lib.HparamsError, match='neither'):
    hparams_lib.load_hparams('no_such_file.json')
  with pytest.raises(hparams_lib.HparamsError, match='not valid JSON'):
    hparams_lib.load_hparams('{"learning_rate": }')


def test_hyperparameters_attribute_and_item_access():
  h = api.Hyperparameters({'learning_rate': 0.1})
  assert h.learning_rate == h['learning_rate'] == 0.1
  with pytest.raises(AttributeError, match='learning_rate'):
    _ = h.beta1


def test_search_space_points_are_deterministic_and_in_range():
  space = hparams_lib.SearchSpace.from_json({
      'learning_rate': {'min': 1e-4, 'max': 1e-2, 'scaling': 'log'},
      'beta1': {'min': 0.8, 'max': 0.95},
      'beta2': {'feasible_points': [0.99, 0.999]},
  })
  points = [space.point(0, t) for t in range(16)]
  assert points == [space.point(0, t) for t in range(16)]
  assert points != [space.point(1, t) for t in range(16)]
  lrs = np.array([p['learning_rate'] for p in points])
  assert np.all((lrs >= 1e-4) & (lrs <= 1e-2))
  # Log scaling: about half the points fall below the geometric midpoint.
  assert 4 <= np.sum(lrs < 1e-3) <= 12
  assert {p['beta2'] for p in points} == {0.99, 0.999}


def test_search_space_errors():
  with pytest.raises(hparams_lib.HparamsError, match='scaling'):
    hparams_lib.SearchSpace.from_json({'a': {'min': 1, 'max': 2,
                                             'scaling': 'cubic'}})
  with pytest.raises(hparams_lib.HparamsError, match='log scaling'):
    hparams_lib.SearchSpace.from_json({'a': {'min': 0, 'max': 2,
                                             'scaling': 'log'}})
  explicit = hparams_lib.SearchSpace.from_json([{'a': 1}, {'a': 2}])
  assert explicit.point(0, 1) == {'a': 2}
  with pytest.raises(hparams_lib.HparamsError, match='past'):
    explicit.point(0, 2)


@pytest.mark.parametrize('name', sorted(loading.BASELINES))
def test_baseline_conformance(name):
  submission = loading.load(name)
  module = submission.module
  space = json.loads((BASELINE_DIR / f'{name}_search_space.json').read_text())
  assert set(space) <= set(module.DEFAULT_HPARAMS)
  point = hparams_lib.SearchSpace.from_json(space).point(0, 0)
  loading.load(name, point)  # Every search-space point is accepted.
  dynamics = submission.dynamics()
  assert isinstance(dynamics, dynamics_lib.Dynamics)
  state = submission.init_optimizer_state(None, {'w': jnp.ones(3)}, None,
                                          None)
  learning_rate = submission.learning_rate(state)
  if dynamics.nonlinearity is None:
    assert stability.threshold(dynamics, learning_rate) > 0
  else:  # Lion, Muon: no linear threshold, and no P to go with one.
    assert not submission.implements('preconditioner')
    with pytest.raises(ValueError, match='nonlinear'):
      stability.threshold(dynamics, learning_rate)


def _quadratic_run(name, steps=5, hparams=None):
  """Runs a baseline's optimizer on f(x) = Σ a_i x_i² / 2."""
  submission = loading.load(name, hparams)
  a = {'w': jnp.linspace(0.5, 2.0, 6), 'b': jnp.array([1.5])}
  params = {'w': jnp.ones(6), 'b': jnp.ones(1)}
  tx, state = submission.optimizer, None
  state = tx.init(params)
  for _ in range(steps):
    grads = jax.tree.map(lambda x, ai: ai * x, params, a)
    updates, new_state = tx.update(grads, state, params)
    yield submission, params, state, grads, updates, new_state
    params = optax.apply_updates(params, updates)
    state = new_state


@pytest.mark.parametrize('name', ['adam', 'adam_nobc', 'adamw', 'rmsprop',
                                  'frozen_adam', 'amsgrad', 'adagrad', 'padam',
                                  'slimadam'])
def test_preconditioner_reproduces_the_update(name):
  """The hook's P satisfies update = −η P⁻¹ m (m = g without momentum)."""
  for submission, params, _, grads, updates, new_state in _quadratic_run(name):
    h = submission.hparams
    p = submission.preconditioner(new_state)
    mu = optax.tree_utils.tree_get(new_state, 'mu')
    m = grads if mu is None else mu
    decay = jax.tree.map(lambda x: h.get('weight_decay', 0.0) * x, params)
    expected = jax.tree.map(lambda mi, pi, di: -h['learning_rate'] * (
        mi / pi + di), m, p, decay)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize('name', ['nadam', 'nadamw'])
def test_nadam_preconditioner_reproduces_its_nesterov_step(name):
  """update = −η (m̃ / P + λx), m̃ the bias-corrected Nesterov EMA of
  optax's nadam, P the hook's (the docstring of `nadamw`), λ = 0 in nadam."""
  steps = 0
  for submission, params, _, grads, updates, new_state in _quadratic_run(
      name, steps=6):
    h = submission.hparams
    b1 = h['beta1']
    p = submission.preconditioner(new_state)
    moments = optax.tree_utils.tree_get(new_state, 'ScaleByAdamState')
    t = int(moments.count)
    direction = jax.tree.map(
        lambda m, g: b1 * m / (1 - b1**(t + 1)) + (1 - b1) * g / (1 - b1**t),
        moments.mu, grads)
    expected = jax.tree.map(
        lambda d, pi, x: -h['learning_rate'] * (
            d / pi + h.get('weight_decay', 0.0) * x),
        direction, p, params)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    steps += 1
  assert steps == 6
  dynamics = submission.dynamics()
  assert stability.threshold(dynamics, 1.0) == pytest.approx(13.5714, 1e-4)


def test_adafactor_preconditioner_reproduces_its_momentum_step():
  """update = −u with u ← β1 u + (1 − β1) η P⁻¹ g, P the hook's (the
  docstring of `adafactor`), on factored kernels, one with tied sizes, and
  a vector; a factored P² is rank one."""
  submission = loading.load('adafactor', {'min_dim_size_to_factor': 2})
  h = submission.hparams
  b1, lr = h['beta1'], h['learning_rate']
  params = {'b': jnp.linspace(-1.0, 1.0, 4),
            'k': jnp.linspace(-1.2, 0.9, 32).reshape(2, 4, 4),
            'w': jnp.linspace(-0.8, 1.4, 12).reshape(3, 4)}
  tx = submission.optimizer
  update = jax.jit(tx.update)  # One compilation, not an op at a time.
  state = tx.init(params)
  u = jax.tree.map(jnp.zeros_like, params)
  for _ in range(5):
    grads = jax.tree.map(lambda x: x + 0.3 * x**3, params)
    updates, state = update(grads, state, params)
    p = submission.preconditioner(state)
    u = jax.tree.map(lambda ui, g, pi: b1 * ui + (1 - b1) * lr * g / pi, u,
                     grads, p)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(u)):
      np.testing.assert_allclose(got, -want, rtol=1e-5, atol=1e-12)
    params = optax.apply_updates(params, updates)
  singular = np.linalg.svd(np.asarray(p['w'], np.float64)**2, compute_uv=False)
  assert singular[1] < 1e-5 * singular[0]
  assert not np.allclose(p['b'], p['b'][0])  # A vector keeps its full ν.


def test_frozen_adam_stops_updating_nu():
  hparams = {'freeze_step': 2}
  states = [optax.tree_utils.tree_get(s, 'AdamMomentsState')
            for *_, s in _quadratic_run('frozen_adam', 5, hparams)]
  np.testing.assert_array_equal(states[1].nu['w'], states[4].nu['w'])
  assert not np.array_equal(states[0].nu['w'], states[1].nu['w'])


def test_frozen_adam_from_saved_preconditioner(tmp_path):
  saved = {'b': jnp.array([0.5]), 'w': jnp.full(6, 2.0)}
  path = str(tmp_path / 'p.npz')
  preconditioner_file.save(path, saved)
  hparams = {'preconditioner_path': path, 'eps': 1e-7}
  for submission, *_, new_state in _quadratic_run('frozen_adam', 3, hparams):
    p = submission.preconditioner(new_state)
    np.testing.assert_allclose(p['w'], 2.0, rtol=1e-6)
    np.testing.assert_allclose(p['b'], 0.5, rtol=1e-6)


def test_momentum_baselines_follow_their_recurrences():
  """Standard HB, EMA HB and Nesterov updates match the paper's Table 1."""
  lr, beta = 0.1, 0.9
  recurrences = {
      'heavy_ball': lambda m, g: (beta * m + g, beta * m + g),
      'heavy_ball_ema': lambda m, g: (beta * m + (1 - beta) * g,
                                      beta * m + (1 - beta) * g),
      'nesterov': lambda m, g: (beta * m + g, beta * (beta * m + g) + g),
  }
  for name, recurrence in recurrences.items():
    m = jnp.zeros(6)
    for _, _, _, grads, updates, _ in _quadratic_run(
        name, 4, {'learning_rate': lr, 'beta1': beta}):
      m, direction = recurrence(m, grads['w'])
      np.testing.assert_allclose(updates['w'], -lr * direction, rtol=1e-5)


def test_frozen_adam_reports_missing_preconditioner_entries(tmp_path):
  path = str(tmp_path / 'p.npz')
  preconditioner_file.save(path, {'w': jnp.full(6, 2.0)})
  with pytest.raises(ValueError, match=r"\['b'\]"):
    preconditioner_file.load(path, {'b': jnp.ones(1), 'w': jnp.ones(6)})


def test_preconditioner_file_round_trip_by_path(tmp_path):
  tree = {'dense': {'kernel': jnp.arange(6.0).reshape(2, 3),
                    'bias': jnp.array([0.5, 1.5])}}
  path = str(tmp_path / 'p.npz')
  preconditioner_file.save(path, tree)
  with np.load(path) as data:
    assert set(data) == {"['dense']['bias']", "['dense']['kernel']"}
  like = jax.tree.map(jnp.zeros_like, tree)
  loaded = preconditioner_file.load(path, like)
  assert jax.tree.structure(loaded) == jax.tree.structure(tree)
  for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(tree)):
    np.testing.assert_array_equal(got, want)


# The plain optax optimizer each baseline injects its learning rate into.
PLAIN_OPTIMIZERS = {
    'gd': lambda h: optax.sgd(h['learning_rate']),
    'heavy_ball': lambda h: optax.sgd(h['learning_rate'],
                                      momentum=h['beta1']),
    'nesterov': lambda h: optax.sgd(h['learning_rate'], momentum=h['beta1'],
                                    nesterov=True),
    'heavy_ball_ema': lambda h: optax.chain(
        optax.ema(h['beta1'], debias=False), optax.scale(-h['learning_rate'])),
    'rmsprop': lambda h: optax.rmsprop(h['learning_rate'], decay=h['beta2'],
                                       eps=h['eps'], eps_in_sqrt=False),
    'adam': lambda h: optax.adam(h['learning_rate'], b1=h['beta1'],
                                 b2=h['beta2'], eps=h['eps']),
    'adamw': lambda h: optax.adamw(h['learning_rate'], b1=h['beta1'],
                                   b2=h['beta2'], eps=h['eps'],
                                   weight_decay=h['weight_decay']),
    'nadamw': lambda h: optax.nadamw(h['learning_rate'], b1=h['beta1'],
                                     b2=h['beta2'], eps=h['eps'],
                                     weight_decay=h['weight_decay']),
    'adam_nobc': lambda h: optax.chain(
        adaptive.scale_by_adam_moments(h['beta1'], h['beta2'], h['eps'],
                                       bias_correction=False),
        optax.scale_by_learning_rate(h['learning_rate'])),
    'frozen_adam': lambda h: optax.chain(
        adaptive.scale_by_adam_moments(h['beta1'], h['beta2'], h['eps'],
                                       bias_correction=False,
                                       freeze_step=h['freeze_step']),
        optax.scale_by_learning_rate(h['learning_rate'])),
    'amsgrad': lambda h: optax.amsgrad(h['learning_rate'], b1=h['beta1'],
                                       b2=h['beta2'], eps=h['eps'],
                                       bias_correction_mu=False,
                                       bias_correction_nu=False),
    'nadam': lambda h: optax.nadam(h['learning_rate'], b1=h['beta1'],
                                   b2=h['beta2'], eps=h['eps']),
    'adagrad': lambda h: optax.adagrad(
        h['learning_rate'],
        initial_accumulator_value=h['initial_accumulator_value'],
        eps=h['eps']),
    'padam': lambda h: optax.chain(
        padam.scale_by_padam(h['beta1'], h['beta2'], h['eps'], h['p']),
        optax.scale_by_learning_rate(h['learning_rate'])),
    'adafactor': lambda h: optax.adafactor(
        h['learning_rate'], min_dim_size_to_factor=h['min_dim_size_to_factor'],
        decay_rate=h['decay_rate'], multiply_by_parameter_scale=False,
        clipping_threshold=None, momentum=h['beta1'], eps=h['eps']),
    'slimadam': lambda h: optax.chain(
        slimadam.scale_by_slimadam(h['beta1'], h['beta2'], h['eps'],
                                   compress=h['compress']),
        optax.scale_by_learning_rate(h['learning_rate'])),
    'lion': lambda h: optax.lion(h['learning_rate'], b1=h['beta1'],
                                 b2=h['beta2'],
                                 weight_decay=h['weight_decay']),
    # No optax Shampoo or SOAP: their own factories, without injection.
    **{name: lambda h, factory=factory: factory(
        h['learning_rate'], b1=h['beta1'], b2=h['beta2'], eps=h['eps'],
        matrix_eps=h['matrix_eps'], weight_decay=h['weight_decay'],
        precondition_every=h['precondition_every'], max_dim=h['max_dim'])
       for name, factory in (('shampoo', shampoo.shampoo),
                             ('soap', soap.soap))},
    'schedule_free_adamw': lambda h: optax.contrib.schedule_free_adamw(
        h['learning_rate'], b1=h['beta1'], b2=h['beta2'], eps=h['eps'],
        weight_decay=h['weight_decay']),
    'muon': lambda h: optax.contrib.muon(
        h['learning_rate'], beta=h['beta1'], weight_decay=h['weight_decay'],
        adam_b1=h['adam_beta1'], adam_b2=h['adam_beta2']),
}


def _train(tx: optax.GradientTransformation, steps: int):
  """`steps` jitted updates on a non-quadratic loss; returns the params."""
  a = {'w': jnp.linspace(0.5, 2.0, 6).reshape(2, 3), 'b': jnp.array([1.5])}
  params = {'w': jnp.linspace(-1.0, 1.3, 6).reshape(2, 3),
            'b': jnp.array([0.7])}

  @jax.jit
  def step(params, state):
    grads = jax.tree.map(lambda x, ai: ai * x + 0.3 * x**3, params, a)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params


def test_every_baseline_has_a_plain_counterpart():
  assert set(PLAIN_OPTIMIZERS) == set(loading.BASELINES)


@pytest.mark.parametrize('name', sorted(PLAIN_OPTIMIZERS))
def test_injected_learning_rate_trains_bit_for_bit_as_plain_optax(name):
  # freeze_step 5 makes frozen Adam freeze inside the 20 steps; Adafactor
  # factors the (2, 3) kernel only at min_dim_size_to_factor <= 2 (not 128).
  hparams = {'frozen_adam': {'freeze_step': 5},
             'adafactor': {'min_dim_size_to_factor': 2}}.get(name, {})
  submission = loading.load(name, hparams)
  injected = _train(submission.optimizer, 20)
  plain = _train(PLAIN_OPTIMIZERS[name](submission.hparams), 20)
  for got, want in zip(jax.tree.leaves(injected), jax.tree.leaves(plain)):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(injected['w'], jnp.linspace(-1.0, 1.3, 6)
                            .reshape(2, 3))


@pytest.mark.parametrize('name', sorted(loading.BASELINES))
def test_learning_rate_reads_back_exactly(name):
  params = {'w': jnp.ones(3)}
  submission = loading.load(name)
  state = submission.init_optimizer_state(None, params, None, None)
  assert (submission.learning_rate(state) ==
          submission.module.DEFAULT_HPARAMS['learning_rate'])
  submission = loading.load(name, {'learning_rate': 2e-4})
  state = submission.init_optimizer_state(None, params, None, None)
  assert submission.learning_rate(state) == 2e-4


def test_learning_rate_of_a_schedule_is_the_latest_updates(tmp_path):
  path = _write(tmp_path, '''
      import optax

      def make_optimizer(hparams):
        schedule = optax.piecewise_constant_schedule(1e-3, {3: 0.5})
        return optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
      ''')
  submission = loading.load(path)
  params = {'w': jnp.ones(3)}
  state = submission.init_optimizer_state(None, params, None, None)
  seen = [submission.learning_rate(state)]
  for _ in range(5):
    _, state = submission.optimizer.update(params, state, params)
    seen.append(submission.learning_rate(state))
  # Updates 1-3 take 1e-3 (counts 0-2), updates 4 and 5 take 5e-4.
  assert seen == [1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4]


def test_learning_rate_unknown_for_a_plain_optax_optimizer(tmp_path):
  path = _write(tmp_path, '''
      import optax

      def make_optimizer(hparams):
        return optax.adam(1e-3)
      ''')
  submission = loading.load(path)
  state = submission.init_optimizer_state(None, {'w': jnp.ones(3)}, None,
                                          None)
  with pytest.raises(api.LearningRateUnknown,
                     match='optax.inject_hyperparams') as e:
    submission.learning_rate(state)
  assert '\n' not in str(e.value)


def test_learning_rate_unknown_names_every_learning_rate_entry(tmp_path):
  path = _write(tmp_path, '''
      import optax

      def make_optimizer(hparams):
        return optax.chain(
            optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
            optax.inject_hyperparams(optax.sgd)(learning_rate=0.2))
      ''')
  submission = loading.load(path)
  state = submission.init_optimizer_state(None, {'w': jnp.ones(3)}, None,
                                          None)
  with pytest.raises(api.LearningRateUnknown, match='several') as e:
    submission.learning_rate(state)
  message = str(e.value)
  assert '\n' not in message
  assert "[0]InjectStatefulHyperparamsState.hyperparams['learning_rate']" in (
      message)
  assert "[1]InjectStatefulHyperparamsState.hyperparams['learning_rate']" in (
      message)


_ALGOPERF_MODULE = '''
    import optax

    CALLS = {}
    DEFAULT_HPARAMS = {'learning_rate': 2e-4}

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      CALLS['init_optimizer_state'] = dict(locals())
      tx = optax.inject_hyperparams(optax.sgd)(
          learning_rate=hyperparameters.learning_rate)
      return tx.init(model_params)

    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      CALLS['update_params'] = dict(locals())
      return optimizer_state, current_param_container, model_state

    def get_batch_size(workload_name):
      CALLS['get_batch_size'] = dict(locals())
      return 8

    def data_selection(workload, input_queue, optimizer_state,
                       current_param_container, model_state, hyperparameters,
                       global_step, rng):
      CALLS['data_selection'] = dict(locals())
      return next(input_queue)

    def prepare_for_eval(workload, current_param_container,
                         current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step,
                         rng):
      CALLS['prepare_for_eval'] = dict(locals())
      return optimizer_state, current_param_container, model_state
    '''


def test_algoperf_form_gets_each_argument_under_its_algoperf_name(tmp_path):
  submission = loading.load(_write(tmp_path, _ALGOPERF_MODULE))
  calls = submission.module.CALLS
  workload = types.SimpleNamespace(loss_type='softmax_cross_entropy')
  params, model_state, rng = {'w': jnp.ones(3)}, {'bn': 1}, 'rng'
  h = submission.hparams
  state = submission.init_optimizer_state(workload, params, model_state, rng)
  assert submission.learning_rate(state) == 2e-4
  assert submission.get_batch_size('mnist') == 8
  batch = submission.data_selection(workload, iter(['batch']), state, params,
                                    model_state, 7, rng)
  out = submission.update_params(workload, params, model_state, batch, state,
                                 [(5, {})], 7, rng)
  assert out.params is params and out.metrics == {}
  submission.prepare_for_eval(workload, params, model_state, state, [(5, {})],
                              7, rng)
  common = dict(workload=workload, model_state=model_state,
                hyperparameters=h, rng=rng)
  want = {
      'init_optimizer_state': dict(common, model_params=params),
      'get_batch_size': dict(workload_name='mnist'),
      'data_selection': dict(common, optimizer_state=state,
                             current_param_container=params, global_step=7),
      'update_params': dict(common, current_param_container=params,
                            current_params_types=None, batch='batch',
                            loss_type='softmax_cross_entropy',
                            optimizer_state=state, eval_results=[(5, {})],
                            global_step=7),
      'prepare_for_eval': dict(common, current_param_container=params,
                               current_params_types=None,
                               loss_type='softmax_cross_entropy',
                               optimizer_state=state,
                               eval_results=[(5, {})], global_step=7),
  }
  assert set(calls) == set(want)
  for name, arguments in want.items():
    assert tuple(calls[name]) == api.FUNCTIONS[name].parameters, name
    for key, value in arguments.items():
      assert calls[name][key] is value or calls[name][key] == value, (name,
                                                                      key)


def test_submissions_never_import_harness():
  offenders = []
  for path in sorted(SUBMISSIONS_DIR.rglob('*.py')):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module or '']
      else:
        continue
      offenders += [f'{path.relative_to(SUBMISSIONS_DIR)}: {name}'
                    for name in names
                    if name == 'harness' or name.startswith('harness.')]
  assert len(list(SUBMISSIONS_DIR.rglob('*.py'))) > 10
  assert not offenders


def _readme_submission() -> str:
  section = README.read_text().split('## Writing a submission', 1)[1]
  section = section.split('\n## ', 1)[0]
  blocks = re.findall(r'```python\n(.*?)```', section, flags=re.DOTALL)
  assert len(blocks) == 1
  return blocks[0]


def test_readme_submission_example_runs(tmp_path):
  path = tmp_path / 'readme_example.py'
  path.write_text(_readme_submission())
  submission = loading.load(str(path))
  assert submission.dynamics() == dynamics_lib.Dynamics(
      dynamics_lib.Momentum.HEAVY_BALL, dynamics_lib.Style.STANDARD, 0.9)
  state = submission.init_optimizer_state(None, {'w': jnp.ones(3)}, None,
                                          None)
  assert submission.learning_rate(state) == 1e-3
  assert submission.preconditioner(state) is None
  assert stability.threshold(submission.dynamics(),
                             submission.learning_rate(state)) == (
                                 pytest.approx((2 + 2 * 0.9) / 1e-3, rel=1e-12))


def test_describe_mismatch_names_the_first_leaf_that_differs():
  like = {'b': jnp.zeros(3), 'w': jnp.zeros((2, 3))}
  assert api.describe_mismatch(like, like) is None
  assert api.describe_mismatch(jax.eval_shape(lambda: like), like) is None
  half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), like)
  assert api.describe_mismatch(half, like) == (
      "leaf ['b'] is bfloat16[3] where float32[3] was expected")
  assert api.describe_mismatch(half, like, dtypes=False) is None
  assert api.describe_mismatch({'b': 1.0, 'w': like['w']}, like) == (
      "leaf ['b'] is a float where float32[3] was expected")
  assert api.describe_mismatch(None, like) == (
      'the tree is None where a dict with 2 leaves was expected')
  assert "lacks leaf ['w']" in api.describe_mismatch({'b': like['b']}, like)


def test_implements_tells_a_modules_own_hooks_from_the_defaults(tmp_path):
  submission = loading.load(_write(tmp_path, '''
      import optax

      def make_optimizer(hparams):
        return optax.sgd(0.1)

      def preconditioner(optimizer_state, hyperparameters):
        return None
      '''))
  assert submission.implements('preconditioner')
  assert not submission.implements('dynamics')
  assert loading.load('adam').implements('dynamics')
