"""RMSProp: ν ← β2ν + (1−β2)g²; x ← x − η g / (sqrt(ν) + ε).

No momentum, so the threshold on λ1(P⁻¹H) is 2/η with P = diag(sqrt(ν)) + ε
(the paper's Eq. (1)). ε is added outside the square root, as there.

References:
  Tieleman & Hinton, 2012, Lecture 6.5 - RMSProp, COURSERA.
"""

import jax
import jax.numpy as jnp
import optax

from harness import stability
from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-4, 'beta2': 0.995, 'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.rmsprop(hparams['learning_rate'], decay=hparams['beta2'],
                       eps=hparams['eps'], eps_in_sqrt=False)


def preconditioner(optimizer_state, hparams):
  rms = adaptive.find_state(optimizer_state, optax.ScaleByRmsState)
  return jax.tree.map(lambda v: jnp.sqrt(v) + hparams['eps'], rms.nu)


def dynamics(hparams) -> stability.Dynamics:
  return stability.Dynamics(momentum=stability.Momentum.NONE,
                            learning_rate=hparams['learning_rate'])
