"""Padam: AMSGrad with a partially adaptive exponent p on the second moment.

With bias correction off, as in the paper's Fig. 5,

  m ← β1 m + (1 − β1) g,  ν ← β2 ν + (1 − β2) g²,  ν̄ ← max(ν̄, ν),
  x ← x − η P⁻¹ m,  P = ν̄ᵖ + ε.

p is the power of ν̄ itself, not of sqrt(ν̄): p = 1/2 is AMSGrad's
sqrt(ν̄), p = 1/4 (Chen & Gu's and the paper's choice) its fourth root,
and p → 0 tends to EMA heavy-ball without preconditioning. Chen & Gu take
p ∈ (0, 1/2]. With P frozen the step is EMA heavy-ball with β = β1, so the
threshold on λ1(P⁻¹H) is (2 + 2β1) / ((1 − β1) η), 38/η at β1 = 0.9
(Cohen et al., Table 1). optax has no Padam; `scale_by_padam` is optax's
`scale_by_amsgrad` with the exponent.

References:
  Chen & Gu, 2018, Closing the Generalization Gap of Adaptive Gradient
  Methods in Training Deep Neural Networks, arXiv:1806.06763.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Fig. 5 and App. G.2.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 0.01, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7, 'p': 0.25}


class PadamState(NamedTuple):
  """State of `scale_by_padam`: optax's AMSGrad layout."""

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def padam_preconditioner(nu_max: Any, *, p: float, eps: float) -> Any:
  """P = ν̄ᵖ + ε, params-shaped (the update divides m by it)."""
  return jax.tree.map(lambda v: v**p + eps, nu_max)


def scale_by_padam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7,
                   p: float = 0.25) -> optax.GradientTransformation:
  """Scales updates to m / (ν̄ᵖ + ε), moments without bias correction.

  Args:
    b1: decay of the first moment (EMA heavy-ball momentum).
    b2: decay of the second moment.
    eps: added to ν̄ᵖ in P.
    p: the exponent of the running maximum ν̄; 1/2 is AMSGrad.

  Returns:
    A `GradientTransformation` whose state is a `PadamState`.
  """

  def init_fn(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
    # Three distinct buffers: the train step donates the state.
    return PadamState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    preconditioner = padam_preconditioner(nu_max, p=p, eps=eps)
    new_updates = jax.tree.map(lambda m, d: m / d, mu, preconditioner)
    return new_updates, PadamState(optax.safe_increment(state.count), mu, nu,
                                   nu_max)

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(hparams) -> optax.GradientTransformation:
  return adaptive.with_learning_rate(
      scale_by_padam(hparams['beta1'], hparams['beta2'], hparams['eps'],
                     hparams['p']),
      hparams['learning_rate'])


def preconditioner(optimizer_state, hparams):
  """P = ν̄ᵖ + ε: the step is −η P⁻¹ m (module docstring)."""
  moments = optax.tree_utils.tree_get(optimizer_state, 'PadamState')
  return padam_preconditioner(moments.nu_max, p=hparams['p'],
                              eps=hparams['eps'])


dynamics = adaptive.ema_heavy_ball
