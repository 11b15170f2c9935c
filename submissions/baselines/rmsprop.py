"""RMSProp: ν ← β2ν + (1−β2)g²; x ← x − η g / (sqrt(ν) + ε).

No momentum, so the threshold on λ1(P⁻¹H) is 2/η with P = diag(sqrt(ν)) + ε
(the paper's Eq. (1)). ε is added outside the square root, as there.

References:
  Tieleman & Hinton, 2012, Lecture 6.5 - RMSProp, COURSERA.
"""

import jax
import jax.numpy as jnp
import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 1e-4, 'beta2': 0.995, 'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  rmsprop = optax.inject_hyperparams(optax.rmsprop,
                                     static_args=('decay', 'eps'))
  return rmsprop(learning_rate=hparams['learning_rate'],
                 decay=hparams['beta2'], eps=hparams['eps'], eps_in_sqrt=False)


def preconditioner(optimizer_state, hparams):
  rms = optax.tree_utils.tree_get(optimizer_state, 'ScaleByRmsState')
  return jax.tree.map(lambda v: jnp.sqrt(v) + hparams['eps'], rms.nu)


def dynamics(hparams) -> dynamics_lib.Dynamics:
  del hparams
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NONE)
