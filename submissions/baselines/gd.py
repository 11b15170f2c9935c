"""Gradient descent: x ← x − η g. Stability threshold 2/η.

References:
  Cohen et al., 2021, Gradient Descent on Neural Networks Typically Occurs at
  the Edge of Stability, arXiv:2103.00065.
"""

import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 0.02}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.sgd)(
      learning_rate=hparams['learning_rate'])


def dynamics(hparams) -> dynamics_lib.Dynamics:
  del hparams
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NONE)
