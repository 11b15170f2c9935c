"""Adafactor with momentum, exactly `optax.adafactor` with its nonlinear
options off.

Update clipping, the relative step size (parameter scaling) and weight
decay are off, so that the step is linear in the momentum once P is given.
The paper's Fig. 5 gives decay rate 0.8, momentum 0.9 and ε = 1e-7 (the
defaults here) and says nothing of those options. With β̂ₜ = 1 − t^(−c)
(c = `decay_rate`, t = 1, 2, ...) and ε added to g²:

  a leaf of two or more axes whose two largest sizes are both
  ≥ `min_dim_size_to_factor` (per slice along the other axes):
    R ← β̂ₜ R + (1 − β̂ₜ) mean over the largest axis of (g² + ε),
    C ← β̂ₜ C + (1 − β̂ₜ) mean over the second largest axis of (g² + ε),
    P = sqrt(R Cᵀ / mean(R))  (Shazeer & Stern's rank-one V̂, in means);
  any other leaf:
    ν ← β̂ₜ ν + (1 − β̂ₜ)(g² + ε),  P = sqrt(ν);
  then u ← β1 u + (1 − β1) η P⁻¹ g,  x ← x − u.

The momentum, as optax applies it, averages preconditioned steps, so the
step is −η P⁻¹ m̃ with m̃ = P u / η, which obeys
m̃ₜ = β1 (Pₜ / Pₜ₋₁)(ηₜ₋₁ / ηₜ) m̃ₜ₋₁ + (1 − β1) gₜ. With P frozen and η
constant m̃ is the EMA of the gradients and the step is preconditioned EMA
heavy-ball with β = β1: the threshold on λ1(P⁻¹H) is
(2 + 2β1) / ((1 − β1) η), 38/η at β1 = 0.9 (Cohen et al., Table 1).

ε regularises g² inside the root (optax's `eps`, default 1e-30), unlike
Adam's ε outside it; the paper's 1e-7 is taken to be this one.

References:
  Shazeer & Stern, 2018, Adafactor: Adaptive Learning Rates with Sublinear
  Memory Cost, arXiv:1804.04235.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Fig. 5 and App. G.2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'decay_rate': 0.8,
                   'eps': 1e-7, 'min_dim_size_to_factor': 128}


def make_optimizer(hparams) -> optax.GradientTransformation:
  adafactor = optax.inject_hyperparams(
      optax.adafactor,
      static_args=('min_dim_size_to_factor', 'decay_rate', 'decay_offset',
                   'clipping_threshold', 'momentum', 'dtype_momentum', 'eps'))
  return adafactor(
      learning_rate=hparams['learning_rate'],
      min_dim_size_to_factor=hparams['min_dim_size_to_factor'],
      decay_rate=hparams['decay_rate'], multiply_by_parameter_scale=False,
      clipping_threshold=None, momentum=hparams['beta1'], eps=hparams['eps'])


def _factored_axes(shape: tuple[int, ...]) -> tuple[int, int]:
  """(second largest, largest) axis, as optax's Adafactor picks them."""
  # The same np.argsort, so that ties between equal sizes break alike.
  order = np.argsort(shape)
  return int(order[-2]), int(order[-1])


def _second_moment(v_row, v_col, v, like):
  """V̂ = P² of one leaf; `like` (the momentum) has the leaf's shape."""
  if v.shape == like.shape:  # Not factored: a (1,) placeholder otherwise.
    return v
  d1, d0 = _factored_axes(like.shape)
  row_mean = jnp.mean(v_row, axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
  return (jnp.expand_dims(v_row / row_mean, d0) *
          jnp.expand_dims(v_col, d1))


def preconditioner(optimizer_state, hparams):
  """P = sqrt(V̂), V̂ the factored reconstruction or the full ν.

  Before the first update the state holds no second moment (0/0 for a
  factored leaf); P is then sqrt(ε), what a zero first gradient gives.
  """
  factored = optax.tree_utils.tree_get(optimizer_state, 'FactoredState')
  momentum = optax.tree_utils.tree_get(optimizer_state, 'EmaState').ema
  started = factored.count > 0
  return jax.tree.map(
      lambda r, c, v, m: jnp.sqrt(jnp.where(
          started, _second_moment(r, c, v, m), hparams['eps'])),
      factored.v_row, factored.v_col, factored.v, momentum)


dynamics = adaptive.ema_heavy_ball
