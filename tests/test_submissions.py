"""Submission API: loading, validation, hyperparameters and the baselines."""

from __future__ import annotations

import json
import pathlib
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import stability
from submissions import api
from submissions import hparams as hparams_lib
from submissions import loading
from submissions.baselines import adaptive

BASELINE_DIR = pathlib.Path(loading.__file__).parent / 'baselines'


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
  assert isinstance(dynamics, stability.Dynamics)
  assert stability.threshold(dynamics, 0) > 0


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
                                  'frozen_adam'])
def test_preconditioner_reproduces_the_update(name):
  """The hook's P satisfies update = −η P⁻¹ m (m = g without momentum)."""
  for submission, params, _, grads, updates, new_state in _quadratic_run(name):
    h = submission.hparams
    p = submission.preconditioner(new_state)
    moments = adaptive.find_state(new_state, (adaptive.AdamMomentsState,
                                              optax.ScaleByAdamState))
    m = grads if moments is None else moments.mu
    decay = jax.tree.map(lambda x: h.get('weight_decay', 0.0) * x, params)
    expected = jax.tree.map(lambda mi, pi, di: -h['learning_rate'] * (
        mi / pi + di), m, p, decay)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_frozen_adam_stops_updating_nu():
  hparams = {'freeze_step': 2}
  states = [s for *_, s in _quadratic_run('frozen_adam', 5, hparams)]
  np.testing.assert_array_equal(states[1][0].nu['w'], states[4][0].nu['w'])
  assert not np.array_equal(states[0][0].nu['w'], states[1][0].nu['w'])


def test_frozen_adam_from_saved_preconditioner(tmp_path):
  saved = {'b': jnp.array([0.5]), 'w': jnp.full(6, 2.0)}
  path = str(tmp_path / 'p.npz')
  adaptive.save_preconditioner(path, saved)
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
