"""Standard heavy-ball momentum: m ← βm + g; x ← x − ηm. Threshold (2+2β)/η."""

import optax

from harness import stability

DEFAULT_HPARAMS = {'learning_rate': 0.002, 'beta1': 0.9}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.sgd(hparams['learning_rate'], momentum=hparams['beta1'])


def dynamics(hparams) -> stability.Dynamics:
  return stability.Dynamics(
      momentum=stability.Momentum.HEAVY_BALL, style=stability.Style.STANDARD,
      beta=hparams['beta1'], learning_rate=hparams['learning_rate'])
