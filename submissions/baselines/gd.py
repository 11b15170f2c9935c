"""Gradient descent: x ← x − η g. Stability threshold 2/η.

References:
  Cohen et al., 2021, Gradient Descent on Neural Networks Typically Occurs at
  the Edge of Stability, arXiv:2103.00065.
"""

import optax

from harness import stability

DEFAULT_HPARAMS = {'learning_rate': 0.02}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.sgd(hparams['learning_rate'])


def dynamics(hparams) -> stability.Dynamics:
  return stability.Dynamics(momentum=stability.Momentum.NONE,
                            learning_rate=hparams['learning_rate'])
