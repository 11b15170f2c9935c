"""Standard Nesterov momentum: m ← βm + g; x ← x − η(βm + g).

Stability threshold (2+2β)/((1+2β)η).
"""

import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 0.002, 'beta1': 0.9}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.sgd, static_args='momentum')(
      learning_rate=hparams['learning_rate'], momentum=hparams['beta1'],
      nesterov=True)


def dynamics(hparams) -> dynamics_lib.Dynamics:
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NESTEROV,
                               style=dynamics_lib.Style.STANDARD,
                               beta=hparams['beta1'])
