"""Standard Nesterov momentum: m ← βm + g; x ← x − η(βm + g).

Stability threshold (2+2β)/((1+2β)η).
"""

import optax

from harness import stability

DEFAULT_HPARAMS = {'learning_rate': 0.002, 'beta1': 0.9}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.sgd(hparams['learning_rate'], momentum=hparams['beta1'],
                   nesterov=True)


def dynamics(hparams) -> stability.Dynamics:
  return stability.Dynamics(
      momentum=stability.Momentum.NESTEROV, style=stability.Style.STANDARD,
      beta=hparams['beta1'], learning_rate=hparams['learning_rate'])
