"""Schedule-Free AdamW: optax's training, Adam's P, and the threshold
2 / ((1 − β) η) of its gradient point y, checked on the linear recurrence.

The checks every baseline gets (convergence, one compilation, a finite
state) are tests/test_baseline_conformance.py's, by its tables' rows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from harness import stability
from submissions import dynamics as dynamics_lib
from submissions import loading
from submissions.baselines import schedule_free_adamw

PATH = schedule_free_adamw.__file__


def _load(**hparams):
  return loading.load(PATH, hparams)


def _loss(params):
  """Non-quadratic in both leaves."""
  return (jnp.sum(jnp.tanh(params['w'])**2 * params['b'][:, None]) +
          jnp.sum(params['b']**4) / 4)


_START = {'w': jnp.linspace(-1.0, 1.0, 6).reshape(3, 2),
          'b': jnp.array([0.5, 1.0, 1.5])}


def _jitted_run(tx, steps, params=_START):
  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(_loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


def _assert_same_bits(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_trains_bit_for_bit_as_optax():
  h = dict(learning_rate=0.01, beta1=0.95, beta2=0.99, eps=1e-7,
           weight_decay=1e-3)
  submission = _load(**h)
  got = _jitted_run(submission.optimizer, 20)
  want = _jitted_run(optax.contrib.schedule_free_adamw(
      0.01, b1=0.95, b2=0.99, eps=1e-7, weight_decay=1e-3), 20)
  _assert_same_bits(got[0], want[0])
  _assert_same_bits(optax.tree_utils.tree_get(got[1], 'ScheduleFreeState'),
                    want[1])
  assert submission.learning_rate(got[1]) == 0.01


def test_warmup_is_the_learning_rate_in_force():
  """The state holds η of the latest z-step, not optax's peak; training is
  optax's schedule-free with that η for both the step and the weights."""
  submission = _load(learning_rate=0.01, warmup_steps=5)
  schedule = optax.warmup_constant_schedule(0.0, 0.01, 5)
  for n in range(8):
    _, state = _jitted_run(submission.optimizer, n)
    assert submission.learning_rate(state) == pytest.approx(
        float(schedule(max(n - 1, 0))), rel=1e-6)
  base = optax.chain(
      optax.scale_by_rms(0.999, 1e-8, eps_in_sqrt=False, bias_correction=True),
      optax.add_decayed_weights(0.0), optax.scale_by_learning_rate(schedule))
  # optax's step_count starts at 1, the base's count at 0.
  reference = optax.contrib.schedule_free(base, lambda k: schedule(k - 1))
  _assert_same_bits(_jitted_run(submission.optimizer, 12)[0],
                    _jitted_run(reference, 12)[0])


def test_preconditioner_and_z_step_from_first_principles():
  """In float64: P = sqrt(ν̂) + ε with no first moment, z' = z − η (g/P +
  δ y) (δ the decay), x' = (1 − c) x + c z' with c = 1/(t+1), and
  y' = β x' + (1 − β) z'."""
  submission = _load(beta2=0.6, weight_decay=0.01)
  h = submission.hparams
  eta, beta, decay = h['learning_rate'], h['beta1'], h['weight_decay']
  rng = np.random.default_rng(0)
  y = {k: rng.normal(size=s) for k, s in (('b', (4,)), ('w', (3, 5)))}
  tx = submission.optimizer
  state = tx.init(jax.tree.map(jnp.float32, y))
  y = jax.tree.map(lambda v: np.float64(np.float32(v)), y)
  z, x, nu = dict(y), dict(y), {k: 0.0 for k in y}
  for t, scale in enumerate([1.0, 2.0, 0.5, 0.25, 1.5]):
    g = {k: scale * rng.normal(size=v.shape) for k, v in y.items()}
    updates, state = tx.update(jax.tree.map(jnp.float32, g), state,
                               jax.tree.map(jnp.float32, y))
    diagonal = submission.preconditioner(state)
    new_z = optax.tree_utils.tree_get(state, 'ScheduleFreeState').z
    c = 1 / (t + 1)
    for k in y:
      nu[k] = h['beta2'] * nu[k] + (1 - h['beta2']) * g[k]**2
      p = np.sqrt(nu[k] / (1 - h['beta2']**(t + 1))) + h['eps']
      np.testing.assert_allclose(diagonal[k], p, rtol=1e-5)
      z_step = -eta * (g[k] / p + decay * y[k])
      # Differences of float32 iterates of size ~1: ulps of 1e-7.
      np.testing.assert_allclose(new_z[k] - np.float32(z[k]), z_step,
                                 rtol=1e-4, atol=1e-6)
      z[k] = z[k] + z_step
      x[k] = (1 - c) * x[k] + c * z[k]
      new_y = beta * x[k] + (1 - beta) * z[k]
      np.testing.assert_allclose(updates[k], new_y - y[k], rtol=1e-4,
                                 atol=1e-6)
      y[k] = new_y


@pytest.mark.parametrize('beta', [0.9, 0.95])
def test_threshold_is_two_over_one_minus_beta_eta(beta):
  submission = _load(beta1=beta, learning_rate=0.004)
  eta = submission.learning_rate(submission.optimizer.init(_START))
  dynamics = submission.dynamics()
  assert dynamics.kind == (dynamics_lib.Momentum.NONE,
                           dynamics_lib.Style.STANDARD)
  assert dynamics.nonlinearity is None
  assert stability.threshold(dynamics, eta) == pytest.approx(
      2 / ((1 - beta) * eta), rel=1e-12)


# ---- The linearised recurrence along one eigendirection (P frozen) ----


def _recurrence(a, beta, steps):
  """y_t for z' = z − a y, x' = (1 − c) x + c z', c = 1/(t+1), from 1."""
  x = z = 1.0
  ys = []
  for t in range(steps):
    y = (1 - beta) * z + beta * x
    ys.append(y)
    z -= a * y
    x += (z - x) / (t + 1)
  return np.array(ys)


def test_the_recurrence_is_optaxs_schedule_free_on_a_quadratic():
  eta, beta, lam = 0.1, 0.9, 100.0
  tx = optax.contrib.schedule_free(optax.sgd(eta), eta, b1=beta)
  y, ys = jnp.ones([]), []
  state = tx.init(y)
  for _ in range(40):
    ys.append(float(y))
    updates, state = tx.update(lam * y, state, y)
    y = optax.apply_updates(y, updates)
  want = _recurrence(eta * lam, beta, 40)
  np.testing.assert_allclose(ys, want, rtol=1e-4,
                             atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize('beta', [0.5, 0.9])
def test_the_recurrence_is_stable_just_below_two_over_one_minus_beta_eta(
    beta):
  eta = 0.1
  dynamics = schedule_free_adamw.dynamics({'beta1': beta})
  lam = stability.threshold(dynamics, eta)
  for factor, grows in ((0.98, False), (1.02, True)):
    ys = np.abs(_recurrence(factor * lam * eta, beta, 6000))
    late, earlier = ys[-500:].max(), ys[-1000:-500].max()
    assert bool(late > earlier) is grows, factor
    # The harness's recurrence (GD at (1 − β) η) is the limit's y.
    assert stability.spectral_radius(dynamics, factor * lam, eta) == (
        pytest.approx(abs(1 - (1 - beta) * eta * factor * lam)))


def test_the_frozen_average_limit_of_the_companion_matrix():
  """At weight c the root −1 sits at a = 2 (2 − c) / ((1 − β)(2 − c) + cβ):
  2 (plain GD) at c = 1, the threshold 2 / (1 − β) as c → 0."""
  beta = 0.9

  def radius(a, c):
    z_row = [-beta * a, 1 - (1 - beta) * a]  # (x, z) → z'.
    x_row = [1 - c + c * z_row[0], c * z_row[1]]
    return np.abs(np.linalg.eigvals(np.array([x_row, z_row]))).max()

  for c in (1.0, 0.5, 0.1, 1e-2, 1e-4, 1e-6):
    a = 2 * (2 - c) / ((1 - beta) * (2 - c) + c * beta)
    assert radius(0.999 * a, c) < 1 < radius(1.001 * a, c), c
  assert a == pytest.approx(2 / (1 - beta), rel=1e-5)


def test_step_scale_scales_the_learning_rate_everywhere():
  for momentum, style in [('none', 'standard'), ('heavy_ball', 'ema'),
                          ('nesterov', 'standard')]:
    scaled = dynamics_lib.Dynamics(momentum, style, 0.9, step_scale=0.25)
    plain = dynamics_lib.Dynamics(momentum, style, 0.9)
    assert stability.threshold(scaled, 0.4) == stability.threshold(plain, 0.1)
    np.testing.assert_array_equal(
        stability.characteristic_roots(scaled, 3.0, 0.4),
        stability.characteristic_roots(plain, 3.0, 0.1))
    np.testing.assert_array_equal(
        stability.simulate_quadratic(scaled, 3.0, 20, learning_rate=0.4),
        stability.simulate_quadratic(plain, 3.0, 20, learning_rate=0.1))
  for bad in (0.0, -1.0, math.inf, math.nan):
    with pytest.raises(ValueError, match='step_scale'):
      dynamics_lib.Dynamics(step_scale=bad)


def test_records_the_threshold_at_y(tmp_path):
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission=PATH, experiment_dir=str(tmp_path),
      train_size=500, chunk_size=500, max_steps=6, eval_every=3, quiet=True,
      curvature=config_lib.CurvatureConfig(every=3, num_iterations=10)))
  run = records.read_run(result.run_dir)
  probes = [c for c in run.curvature if c.step in (3, 6)]
  assert len(probes) == 2
  h = schedule_free_adamw.DEFAULT_HPARAMS
  for probe in probes:
    assert probe.stability_threshold == pytest.approx(
        2 / ((1 - h['beta1']) * h['learning_rate']), rel=1e-12)
    assert 0 < probe.preconditioned_sharpness < math.inf
    assert probe.threshold_unknown is None
