"""Every baseline against one table of checks, in the manner of optax's
alias_test.

For each name in `loading.BASELINES`: it converges on a quadratic and on
Rosenbrock's function; its second jitted step compiles nothing; its state
stays finite; its threshold is the paper's Table 1 value for its momentum (none, for
the nonlinear updates of Lion and Muon);
its preconditioner hook (or the lack of one) is P recomputed here from first
principles, in float64, on a known gradient sequence; and λ1(P^-1/2 H P^-1/2)
from `harness.curvature` is a dense eigendecomposition's on a tiny problem.
A new baseline fails here until each table below has its row.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import optax
import pytest

from harness import curvature
from harness import stability
from submissions import eigenbasis
from submissions import loading

BASELINES = sorted(loading.BASELINES)

# Adafactor factors a kernel only when its two largest sizes reach
# `min_dim_size_to_factor` (128 by default); these kernels are small.
_HPARAMS = {'adafactor': {'min_dim_size_to_factor': 2}}


def _load(name: str, **hparams):
  return loading.load(name, {**_HPARAMS.get(name, {}), **hparams})


def _run(tx: optax.GradientTransformation, loss, params, steps: int):
  """`steps` updates of `tx` on `loss` from `params`, as one compiled scan."""

  def body(carry, _):
    params, state = carry
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return (optax.apply_updates(params, updates), state), None

  @jax.jit
  def run(params):
    (params, state), _ = jax.lax.scan(body, (params, tx.init(params)), None,
                                      length=steps)
    return params, state

  return run(params)


# ---- (1) Convergence ----

_CURVATURES = {'w': jnp.linspace(0.5, 2.0, 6).reshape(2, 3),
               'b': jnp.array([1.0, 1.5, 0.8])}
_QUADRATIC_START = {'w': jnp.linspace(-1.0, 1.3, 6).reshape(2, 3),
                    'b': jnp.array([0.7, -0.4, 1.1])}
_ROSENBROCK_START = {'x': jnp.array([-1.2, 1.0])}


def _quadratic(params):
  """Σ a x² / 2 over a kernel and a vector, curvatures 0.5 to 2."""
  return sum(jnp.sum(a * x**2) / 2 for a, x in zip(
      jax.tree.leaves(_CURVATURES), jax.tree.leaves(params)))


def _rosenbrock(params):
  """(1 − x)² + 100 (y − x²)², minimum 0 at (1, 1)."""
  x, y = params['x']
  return (1 - x)**2 + 100 * (y - x**2)**2


# (learning rate, steps) per baseline, for the quadratic and Rosenbrock.
_SETTINGS = {
    'gd': ((0.5, 100), (1e-3, 20000)),
    'heavy_ball': ((0.05, 300), (2e-4, 10000)),
    'heavy_ball_ema': ((0.5, 300), (2e-3, 10000)),
    'nesterov': ((0.05, 300), (2e-4, 10000)),
    'rmsprop': ((0.01, 500), (1e-3, 5000)),
    'adam': ((0.05, 500), (0.01, 5000)),
    'adam_nobc': ((0.05, 500), (0.01, 5000)),
    'adamw': ((0.05, 500), (0.01, 5000)),
    'nadamw': ((0.05, 500), (0.01, 5000)),
    'frozen_adam': ((0.05, 500), (0.01, 5000)),
    'amsgrad': ((0.05, 500), (0.01, 5000)),
    'nadam': ((0.05, 500), (0.01, 5000)),
    'adagrad': ((0.5, 500), (0.5, 5000)),
    'padam': ((0.05, 500), (0.01, 5000)),
    'adafactor': ((0.05, 500), (0.01, 5000)),
    'slimadam': ((0.05, 500), (0.01, 5000)),
    # Sign and polar steps move by about η whatever the gradient, so they
    # settle within about η of the minimum: small η, more steps.
    'lion': ((0.002, 2000), (2e-4, 20000)),
    # Rosenbrock's (x, y) is a vector, which Muon leaves to its NAdam.
    'muon': ((0.005, 1000), (0.01, 5000)),
    # Rosenbrock's vector steps by their Adam fallback.
    'shampoo': ((0.05, 500), (0.01, 5000)),
    'soap': ((0.05, 500), (0.01, 5000)),
    'schedule_free_adamw': ((0.05, 500), (0.02, 5000)),
}
# A converged run ends below this fraction of its starting loss.
_FRACTION = 1e-3


def test_every_baseline_has_its_settings():
  assert set(_SETTINGS) == set(BASELINES)


@pytest.mark.parametrize('objective', ['quadratic', 'rosenbrock'])
@pytest.mark.parametrize('name', BASELINES)
def test_converges(name, objective):
  loss, start, (learning_rate, steps) = {
      'quadratic': (_quadratic, _QUADRATIC_START, _SETTINGS[name][0]),
      'rosenbrock': (_rosenbrock, _ROSENBROCK_START, _SETTINGS[name][1]),
  }[objective]
  tx = _load(name, learning_rate=learning_rate).optimizer
  params, _ = _run(tx, loss, start, steps)
  assert float(loss(params)) < _FRACTION * float(loss(start))


# ---- (2) Compilation ----


@pytest.mark.parametrize('name', BASELINES)
def test_second_jitted_step_compiles_nothing(name):
  """A state whose dtypes or weak types change after one update would
  compile the step again at every change."""
  tx = _load(name).optimizer

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(_quadratic)(params), state, params)
    return optax.apply_updates(params, updates), state

  params, state = step(_QUADRATIC_START, tx.init(_QUADRATIC_START))
  step(params, state)
  assert step._cache_size() == 1


# ---- (3) Finite state ----


def _assert_finite(tree, what: str):
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    assert np.all(np.isfinite(leaf)), f'{what}{jax.tree_util.keystr(path)}'


@pytest.mark.parametrize('start', ['away', 'at_the_minimum'])
@pytest.mark.parametrize('name', BASELINES)
def test_state_stays_finite_for_100_steps(name, start):
  """With the shipped hyperparameters (Adafactor factoring these small
  kernels), also where every gradient is 0 (an ε-free P would divide 0 by
  0 there)."""
  params = {'away': _QUADRATIC_START,
            'at_the_minimum': jax.tree.map(jnp.zeros_like,
                                           _QUADRATIC_START)}[start]
  submission = _load(name)
  params, state = _run(submission.optimizer, _quadratic, params, 100)
  _assert_finite(params, 'params')
  _assert_finite(state, 'optimizer state')
  preconditioner = curvature.as_preconditioner(
      submission.preconditioner(state))
  if preconditioner is not None:
    preconditioner.validate(params)  # Fits, finite and > 0.


# ---- (4) Thresholds ----

# Cohen et al., Table 1: η times the threshold, as a function of β.
_TABLE_1 = {
    'gd': lambda b: 2.0,
    'standard heavy-ball': lambda b: 2 + 2 * b,
    'EMA heavy-ball': lambda b: (2 + 2 * b) / (1 - b),
    'standard Nesterov': lambda b: (2 + 2 * b) / (1 + 2 * b),
    'EMA Nesterov': lambda b: (2 + 2 * b) / ((1 - b) * (1 + 2 * b)),
    # Not in Table 1: GD at the step (1 − β) η, schedule-free's asymptote
    # (derived and checked in test_schedule_free).
    'schedule-free': lambda b: 2 / (1 - b),
}


def test_table_1_is_the_published_one_at_beta_09():
  published = {'gd': 2, 'standard heavy-ball': 3.8, 'EMA heavy-ball': 38,
               'standard Nesterov': 1.357, 'EMA Nesterov': 13.57}
  for kind, value in published.items():  # Of the five published.
    assert _TABLE_1[kind](0.9) == pytest.approx(value, rel=1e-3)
_MOMENTUM = {
    'gd': 'gd', 'rmsprop': 'gd', 'adagrad': 'gd',
    'heavy_ball': 'standard heavy-ball',
    'nesterov': 'standard Nesterov',
    'nadamw': 'EMA Nesterov', 'nadam': 'EMA Nesterov',
    **{name: 'EMA heavy-ball' for name in (
        'heavy_ball_ema', 'adam', 'adam_nobc', 'adamw', 'frozen_adam',
        'amsgrad', 'padam', 'adafactor', 'slimadam', 'shampoo', 'soap')},
    'schedule_free_adamw': 'schedule-free',
    'lion': None, 'muon': None,  # Nonlinear: no threshold.
}


def test_every_baseline_has_its_momentum():
  assert set(_MOMENTUM) == set(BASELINES)


@pytest.mark.parametrize('name', BASELINES)
def test_threshold_is_table_1s_for_its_momentum(name):
  submission = _load(name)
  state = submission.init_optimizer_state(None, _QUADRATIC_START, None, None)
  eta = submission.learning_rate(state)
  dynamics = submission.dynamics()
  if _MOMENTUM[name] is None:
    assert dynamics.nonlinearity
    with pytest.raises(ValueError, match='nonlinear'):
      stability.threshold(dynamics, eta)
  else:
    assert dynamics.nonlinearity is None
    # β as the hyperparameters give it, not as the Dynamics reads it.
    beta = submission.hparams.get('beta1', 0.0)
    assert stability.threshold(dynamics, eta) == pytest.approx(
        _TABLE_1[_MOMENTUM[name]](beta) / eta, rel=1e-12)


def test_soaps_default_threshold_is_78_over_eta():
  """The EMA heavy-ball root condition extrapolated to β1 = 0.95."""
  submission = _load('soap')
  assert submission.hparams['beta1'] == 0.95
  assert stability.threshold(submission.dynamics(), 1.0) == pytest.approx(78)


# ---- (5) The preconditioner from first principles ----
#
# Each reference takes the hyperparameters and one leaf's gradients g₁, g₂,
# ... in float64 and yields, per step, (P, d) with the step
# −η (d / P + λ x), λ the decoupled weight decay; P is None without a
# preconditioner (then P = 1).


def _beta_powers(beta: float):
  """1 − βᵗ for t = 1, 2, ..."""
  t = 0
  while True:
    t += 1
    yield 1 - beta**t


def _gd(h, grads):
  del h
  for g in grads:
    yield None, g


def _heavy_ball(h, grads, *, nesterov=False, ema=False):
  b, m = h['beta1'], 0.0
  for g in grads:
    m = b * m + ((1 - b) * g if ema else g)
    yield None, (g + b * m if nesterov else m)


def _rmsprop(h, grads):
  nu = 0.0
  for g in grads:
    nu = h['beta2'] * nu + (1 - h['beta2']) * g**2
    yield np.sqrt(nu) + h['eps'], g


def _adam(h, grads, *, bias_correction=True, nesterov=False, running_max=False,
          power=0.5, freeze_step=None):
  b1, b2, eps = h['beta1'], h['beta2'], h['eps']
  m = nu = nu_max = 0.0
  for step, (c1, c2, g) in enumerate(zip(_beta_powers(b1), _beta_powers(b2),
                                         grads)):
    m = b1 * m + (1 - b1) * g
    if freeze_step is None or step < freeze_step:
      nu = b2 * nu + (1 - b2) * g**2
    nu_max = np.maximum(nu_max, nu) if running_max else nu
    if nesterov:  # optax's: β1 m̂ₜ₊₁ + (1 − β1) ĝₜ over sqrt(ν̂) + ε.
      d = b1 * m / (1 - b1**(step + 2)) + (1 - b1) * g / c1
      yield np.sqrt(nu / c2) + eps, d
    elif bias_correction:  # m̂ / (sqrt(ν̂) + ε) = m / P.
      yield c1 * (np.sqrt(nu_max / c2) + eps), m
    else:
      yield nu_max**power + eps, m


def _adagrad(h, grads):
  total = h['initial_accumulator_value']
  for g in grads:
    total = total + g**2
    yield np.sqrt(total + h['eps']), g


def _adafactor(h, grads):
  """Shazeer & Stern's rank-one V̂ over the two largest axes (the test's
  sizes are distinct, so there is no tie to break); u the EMA of steps."""
  b1, eta, eps = h['beta1'], h['learning_rate'], h['eps']
  shape = grads[0].shape
  axes = sorted(range(len(shape)), key=lambda a: shape[a])[-2:]
  factored = len(shape) >= 2 and min(
      shape[a] for a in axes) >= h['min_dim_size_to_factor']
  u = rows = cols = full = 0.0
  for t, g in enumerate(grads, start=1):
    decay = 1 - t**-h['decay_rate']
    square = g**2 + eps
    if factored:
      small, large = axes
      rows = decay * rows + (1 - decay) * square.mean(large, keepdims=True)
      cols = decay * cols + (1 - decay) * square.mean(small, keepdims=True)
      v_hat = rows * cols / rows.mean(small, keepdims=True)
    else:
      full = decay * full + (1 - decay) * square
      v_hat = full
    p = np.sqrt(v_hat)
    u = b1 * u + (1 - b1) * eta * g / p
    yield p, p * u / eta


def _slimadam(h, grads):
  b1, b2, eps = h['beta1'], h['beta2'], h['eps']
  shape = grads[0].shape
  # Fan-in: every axis but the last, of a kernel.
  shared = tuple(range(len(shape) - 1)) if len(shape) >= 2 else ()
  m = nu = 0.0
  for c1, c2, g in zip(_beta_powers(b1), _beta_powers(b2), grads):
    m = b1 * m + (1 - b1) * g
    nu = b2 * nu + (1 - b2) * np.mean(g**2, axis=shared, keepdims=True)
    yield np.broadcast_to(c1 * (np.sqrt(nu / c2) + eps), shape), m


def _lion(h, grads):
  """The sign of β1 m + (1 − β1) g; m an EMA with β2 (no P)."""
  m = 0.0
  for g in grads:
    yield None, np.sign(h['beta1'] * m + (1 - h['beta1']) * g)
    m = h['beta2'] * m + (1 - h['beta2']) * g


def _newton_schulz(x, coefficients=(3.4445, -4.7750, 2.0315), steps=5):
  """Keller Jordan's quintic iteration towards the polar factor of x."""
  wide = x.shape[0] <= x.shape[1]
  x = x if wide else x.T
  x = x / (np.linalg.norm(x) + 1e-8)
  a, b, c = coefficients
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return x if wide else x.T


def _muon(h, grads):
  """A matrix steps by its Nesterov momentum orthogonalised and scaled
  by sqrt(max(1, fan-out / fan-in)); any other leaf by NAdam (no P)."""
  if grads[0].ndim != 2:
    adam = _adam({'beta1': h['adam_beta1'], 'beta2': h['adam_beta2'],
                  'eps': 1e-8}, grads, nesterov=True)
    for p, d in adam:
      yield None, d / p
    return
  b, m = h['beta1'], 0.0
  fan_in, fan_out = grads[0].shape
  for t, g in enumerate(grads, start=1):
    m = b * m + (1 - b) * g
    nesterov = b * m / (1 - b**(t + 1)) + (1 - b) * g / (1 - b**t)
    yield None, _newton_schulz(nesterov) * np.sqrt(max(1, fan_out / fan_in))


class _Dense(NamedTuple):
  """A non-diagonal P of one leaf, on its row-major flattening."""

  matrix: np.ndarray


def _matrix_shape(shape):
  return (1, int(np.prod(shape))) if len(shape) < 2 else (
      int(np.prod(shape[:-1])), shape[-1])


def _damped_eigh(factor, matrix_eps):
  values, vectors = np.linalg.eigh(factor)
  values = np.maximum(values, 0)
  return vectors, values + matrix_eps * values[-1]


def _kronecker_sides(h, grads):
  """Per step: the reshaped gradient and each side's (vectors, values)
  at its last refresh (the identity before the first), None for a side
  without a factor."""
  shape = _matrix_shape(grads[0].shape)
  has = [len(grads[0].shape) >= 2 and 1 < k <= h['max_dim'] for k in shape]
  factors = [0.0, 0.0]
  bases = [(np.eye(k), np.ones(k)) if has_side else None
           for k, has_side in zip(shape, has)]
  for t, g in enumerate(grads):
    g = g.reshape(shape)
    for side, g_side in enumerate((g, g.T)):
      if has[side]:
        # From the factors of the earlier gradients: at t = 1, 1 + k, ...
        if t >= 1 and (t - 1) % h['precondition_every'] == 0:
          bases[side] = _damped_eigh(factors[side], h['matrix_eps'])
        factors[side] = h['beta2'] * factors[side] + (
            1 - h['beta2']) * g_side @ g_side.T
    yield g, list(bases)


def _root(basis, power):
  vectors, values = basis
  return vectors @ np.diag(values**power) @ vectors.T


def _shampoo(h, grads):
  """P = (L^1/4 ⊗ R^1/4) / s, s = ‖Adam's step‖ / ‖L^-1/4 m R^-1/4‖."""
  adam = _adam(h, grads)
  m = 0.0
  for (g, (left, right)), (adam_p, _) in zip(_kronecker_sides(h, grads),
                                             adam):
    m = h['beta1'] * m + (1 - h['beta1']) * g
    if left is None and right is None:
      yield adam_p, m.reshape(grads[0].shape)
      continue
    inv_left, inv_right = (np.eye(k) if b is None else _root(b, -0.25)
                           for b, k in zip((left, right), g.shape))
    scale = (np.linalg.norm(m.ravel() / adam_p.ravel()) /
             np.linalg.norm(inv_left @ m @ inv_right))
    p = np.kron(np.linalg.inv(inv_left), np.linalg.inv(inv_right)) / scale
    yield _Dense(p), m.reshape(grads[0].shape)


def _soap(h, grads):
  """P = Q D Qᵀ, Q = Q_L ⊗ Q_R, D SOAP's Adam in the rotated basis."""
  b1, b2, eps = h['beta1'], h['beta2'], h['eps']
  m = nu = 0.0
  for t, (g, (left, right)) in enumerate(_kronecker_sides(h, grads),
                                         start=1):
    q_left, q_right = (np.eye(k) if b is None else b[0]
                       for b, k in zip((left, right), g.shape))
    m = b1 * m + (1 - b1) * g
    nu = b2 * nu + (1 - b2) * (q_left.T @ g @ q_right)**2
    d = (1 - b1**t) * (np.sqrt(nu) + eps) / np.sqrt(1 - b2**t)
    q = np.kron(q_left, q_right)
    yield _Dense(q @ np.diag(d.ravel()) @ q.T), m.reshape(grads[0].shape)


def _schedule_free(h, grads):
  """z's step: g / P, P = sqrt(ν̂) + ε, no first moment (β is the
  interpolation of x and z, not a momentum)."""
  nu = 0.0
  for c2, g in zip(_beta_powers(h['beta2']), grads):
    nu = h['beta2'] * nu + (1 - h['beta2']) * g**2
    yield np.sqrt(nu / c2) + h['eps'], g


_REFERENCES = {
    'gd': _gd,
    'heavy_ball': _heavy_ball,
    'nesterov': lambda h, g: _heavy_ball(h, g, nesterov=True),
    'heavy_ball_ema': lambda h, g: _heavy_ball(h, g, ema=True),
    'rmsprop': _rmsprop,
    'adam': _adam,
    'adamw': _adam,
    'adam_nobc': lambda h, g: _adam(h, g, bias_correction=False),
    'frozen_adam': lambda h, g: _adam(h, g, bias_correction=False,
                                      freeze_step=h['freeze_step']),
    'nadamw': lambda h, g: _adam(h, g, nesterov=True),
    'nadam': lambda h, g: _adam(h, g, nesterov=True),
    'amsgrad': lambda h, g: _adam(h, g, bias_correction=False,
                                  running_max=True),
    'padam': lambda h, g: _adam(h, g, bias_correction=False,
                                running_max=True, power=h['p']),
    'adagrad': _adagrad,
    'adafactor': _adafactor,
    'slimadam': _slimadam,
    'lion': _lion,
    'muon': _muon,
    'shampoo': _shampoo,
    'soap': _soap,
    'schedule_free_adamw': _schedule_free,
}


def _z(state):
  return optax.tree_utils.tree_get(state, 'ScheduleFreeState').z


# What "the step" is where it is not the update: schedule-free's update
# moves y, and its preconditioned step is z's (its state), from z₀ = y₀.
_STEPS = {'schedule_free_adamw': lambda updates, before, after: jax.tree.map(
    lambda new, old: np.asarray(new, np.float64) - np.asarray(old,
                                                              np.float64),
    _z(after), _z(before))}


def _reference_hparams(name: str) -> dict[str, float]:
  """Frozen Adam freezes, and Shampoo and SOAP refresh their bases, inside
  the sequence; β2 is 0.6 where there is one.

  A Kronecker factor of a few gradients is singular, so its smallest
  eigenvalues are the damping alone, ε λmax; float32's eigh gets them to
  about 1e-7 λmax, so at the shipped ε = 1e-6 their fourth roots would
  carry percent errors. ε = 1e-2 tests the formula, not float32.

  At β2 = 0.999 the float32 1 − β2ᵗ of a bias correction keeps four of its
  seven digits at t = 1 (its relative error is u β2ᵗ / (1 − β2ᵗ), u =
  2⁻²⁴), and ν hardly falls in a few steps, so a running maximum would
  never bind. At 0.6 both the formula and the maximum are tested.
  """
  hparams = {'freeze_step': 3, 'precondition_every': 3, 'matrix_eps': 1e-2}
  defaults = loading.import_module(name)[1].DEFAULT_HPARAMS
  hparams = {k: v for k, v in hparams.items() if k in defaults}
  if name in _STEPS:  # z's steps far above the float32 ulps of z.
    hparams['learning_rate'] = 1.0
  if 'beta2' in defaults:
    hparams['beta2'] = 0.6
  return hparams


def _gradient_sequence(num_steps: int = 7) -> list[dict[str, np.ndarray]]:
  """Gradients of a kernel, a 3-D kernel and a vector, all sizes distinct,
  whose scale rises and falls so that ν falls below its running maximum."""
  rng = np.random.default_rng(0)
  shapes = {'b': (4,), 'k': (2, 3, 5), 'w': (3, 4)}
  scales = [1.0, 2.0, 0.5, 0.25, 1.5, 0.1, 0.7][:num_steps]
  return [{k: (s * rng.normal(size=shape)).astype(np.float32)
           for k, shape in shapes.items()} for s in scales]


def test_every_baseline_has_a_reference():
  assert set(_REFERENCES) == set(BASELINES)


@pytest.mark.parametrize('name', BASELINES)
def test_preconditioner_is_recomputed_from_first_principles(name):
  submission = _load(name, **_reference_hparams(name))
  h = submission.hparams
  eta, decay = h['learning_rate'], h.get('weight_decay', 0.0)
  sequence = _gradient_sequence()
  references = {key: _REFERENCES[name](h, [g[key].astype(np.float64)
                                           for g in sequence])
                for key in sequence[0]}
  rng = np.random.default_rng(1)
  params = {k: jnp.asarray(rng.normal(size=g.shape), jnp.float32)
            for k, g in sequence[0].items()}
  tx = submission.optimizer
  state = tx.init(params)
  stepped = _STEPS.get(name, lambda updates, before, after: updates)
  for grads in sequence:
    before = state
    updates, state = tx.update(jax.tree.map(jnp.asarray, grads), state,
                               params)
    moved = stepped(updates, before, state)
    hook = submission.preconditioner(state)
    for key, reference in references.items():
      p, d = next(reference)
      x = np.asarray(params[key], np.float64)
      if p is None:
        assert hook is None
        step = d
      elif isinstance(hook, eigenbasis.EigenbasisPreconditioner):
        dense = p.matrix if isinstance(p, _Dense) else np.diag(
            np.broadcast_to(p, x.shape).ravel())
        np.testing.assert_allclose(_dense_block(hook, key, x.shape), dense,
                                   rtol=1e-4, atol=1e-6 * np.abs(dense).max())
        step = np.linalg.solve(dense, d.ravel()).reshape(x.shape)
      else:
        np.testing.assert_allclose(hook[key], p, rtol=1e-5)
        step = d / p
      np.testing.assert_allclose(moved[key], -eta * (step + decay * x),
                                 rtol=1e-4, atol=1e-6 * eta)
    params = optax.apply_updates(params, updates)


def _dense_block(hook, key, shape):
  """One leaf's P from the hook, column by column, in float64."""
  size = int(np.prod(shape))
  block = hook.blocks[key]
  return np.stack([np.asarray(block.apply_power(
      jnp.asarray(e.reshape(shape), jnp.float32), 1.0), np.float64).ravel()
                   for e in np.eye(size)], axis=1)


# ---- (6) Preconditioned sharpness against a dense eigendecomposition ----

_INPUTS = jnp.asarray(np.random.default_rng(2).normal(size=(5, 2)),
                      jnp.float32)
_TARGETS = jnp.asarray(np.random.default_rng(3).normal(size=(5, 3)),
                       jnp.float32)
_TINY_START = {'w': jnp.array([[0.3, -0.5, 0.8], [0.6, 0.2, -0.4]]),
               'b': jnp.array([0.1, -0.2, 0.05])}


def _tiny_loss(params):
  """A one-layer tanh regression: 9 parameters, a dense Hessian."""
  predictions = jnp.tanh(_INPUTS @ params['w'] + params['b'])
  return jnp.mean(jnp.sum((predictions - _TARGETS)**2, axis=-1)) / 2


@pytest.mark.parametrize('name', BASELINES)
def test_preconditioned_sharpness_matches_a_dense_eigendecomposition(name):
  submission = _load(name)
  params, state = _run(submission.optimizer, _tiny_loss, _TINY_START, 5)
  hook = submission.preconditioner(state)
  flat, unravel = ravel_pytree(params)
  hessian = np.asarray(jax.hessian(lambda f: _tiny_loss(unravel(f)))(flat),
                       np.float64)
  assert np.abs(hessian - np.diag(np.diag(hessian))).max() > 1e-2
  if hook is None:
    inv_sqrt = np.eye(flat.size)
  elif isinstance(hook, eigenbasis.EigenbasisPreconditioner):
    inv_sqrt = _dense_inv_sqrt(hook, unravel, flat.size)
  else:
    inv_sqrt = np.diag(np.asarray(ravel_pytree(hook)[0], np.float64)**-0.5)
  dense = np.linalg.eigvalsh(inv_sqrt @ hessian @ inv_sqrt)[-1]
  result = curvature.sharpness(_tiny_loss, params, preconditioner=hook,
                               num_iterations=flat.size)
  np.testing.assert_allclose(float(result.eigenvalues[0]), dense, rtol=1e-4)


# ---- (7) A non-diagonal P: symmetric, positive definite, and the step ----


def _dense_inv_sqrt(hook, unravel, size: int) -> np.ndarray:
  """P^-1/2 as a dense matrix, column by column from the hook's blocks."""
  return np.stack([np.asarray(ravel_pytree(hook.apply_power(
      unravel(e), -0.5))[0], np.float64)
                   for e in np.eye(size, dtype=np.float32)], axis=1)


_MATRIX_BASELINES = [name for name in BASELINES
                     if _REFERENCES[name] in (_shampoo, _soap)]


def test_the_matrix_baselines_are_shampoo_and_soap():
  assert _MATRIX_BASELINES == ['shampoo', 'soap']


@pytest.mark.parametrize('name', _MATRIX_BASELINES)
def test_matrix_preconditioner_is_spd_and_gives_the_step(name):
  """P^-1/2 is symmetric positive definite, and P^-1/2 P^-1/2 m is the
  method's own step: −update / η, with its basis refreshed on the way."""
  submission = _load(name, precondition_every=2, weight_decay=0.0)
  params, state = _run(submission.optimizer, _quadratic, _QUADRATIC_START, 6)
  grads = jax.grad(_quadratic)(params)
  updates, state = submission.optimizer.update(grads, state, params)
  hook = submission.preconditioner(state)
  assert isinstance(curvature.as_preconditioner(hook),
                    curvature.Preconditioner)
  hook.validate(params)
  flat, unravel = ravel_pytree(params)
  inv_sqrt = _dense_inv_sqrt(hook, unravel, flat.size)
  np.testing.assert_allclose(inv_sqrt, inv_sqrt.T, atol=1e-5 * np.abs(
      inv_sqrt).max())
  assert np.linalg.eigvalsh((inv_sqrt + inv_sqrt.T) / 2).min() > 0
  # The 2 × 3 kernel is rotated: P is not diagonal.
  kernel = _dense_block(hook, 'w', (2, 3))
  assert np.abs(kernel - np.diag(np.diag(kernel))).max() > 1e-3 * np.abs(
      kernel).max()
  momentum = optax.tree_utils.tree_get(state, 'mu')
  direction = hook.apply_inv_sqrt(hook.apply_inv_sqrt(momentum))
  eta = submission.hparams['learning_rate']
  for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(direction)):
    np.testing.assert_allclose(got, -eta * want, rtol=1e-5, atol=1e-7)
  assert float(hook.norm()) == pytest.approx(np.linalg.norm(
      np.linalg.inv(inv_sqrt @ inv_sqrt)), rel=1e-4)
