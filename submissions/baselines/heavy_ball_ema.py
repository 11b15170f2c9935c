"""EMA heavy-ball momentum: m ← βm + (1−β)g; x ← x − ηm.

Stability threshold (2+2β)/((1−β)η), 38/η at β = 0.9: Adam's, without the
preconditioner.
"""

import optax

from harness import stability

DEFAULT_HPARAMS = {'learning_rate': 0.02, 'beta1': 0.9}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.chain(optax.ema(hparams['beta1'], debias=False),
                     optax.scale(-hparams['learning_rate']))


def dynamics(hparams) -> stability.Dynamics:
  return stability.Dynamics(
      momentum=stability.Momentum.HEAVY_BALL, style=stability.Style.EMA,
      beta=hparams['beta1'], learning_rate=hparams['learning_rate'])
