"""Adagrad: the sum of squared gradients as preconditioner, exactly
`optax.adagrad`.

  S ← S + g²  (S₀ = `initial_accumulator_value`),  x ← x − η P⁻¹ g,
  P = sqrt(S + ε).

No momentum, so the threshold on λ1(P⁻¹H) is 2/η (Cohen et al., Table 1).
ε sits inside the root, as optax puts it; S never shrinks, so P⁻¹H's
sharpness can fall below the threshold and stay there.

References:
  Duchi, Hazan & Singer, 2011, Adaptive Subgradient Methods for Online
  Learning and Stochastic Optimization, JMLR 12.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Fig. 5.
"""

import jax
import jax.numpy as jnp
import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 0.01, 'initial_accumulator_value': 0.1,
                   'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  adagrad = optax.inject_hyperparams(
      optax.adagrad, static_args=('initial_accumulator_value', 'eps'))
  return adagrad(learning_rate=hparams['learning_rate'],
                 initial_accumulator_value=hparams['initial_accumulator_value'],
                 eps=hparams['eps'])


def preconditioner(optimizer_state, hparams):
  """P = sqrt(S + ε), S the accumulated squares the last update used."""
  rss = optax.tree_utils.tree_get(optimizer_state, 'ScaleByRssState')
  return jax.tree.map(lambda s: jnp.sqrt(s + hparams['eps']),
                      rss.sum_of_squares)


def dynamics(hparams) -> dynamics_lib.Dynamics:
  del hparams
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NONE)
