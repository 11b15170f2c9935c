"""EMA heavy-ball momentum: m ← βm + (1−β)g; x ← x − ηm.

Stability threshold (2+2β)/((1−β)η), 38/η at β = 0.9: Adam's, without the
preconditioner.
"""

import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 0.02, 'beta1': 0.9}


def _ema_heavy_ball(learning_rate, beta):
  return optax.chain(optax.ema(beta, debias=False),
                     optax.scale(-learning_rate))


def make_optimizer(hparams) -> optax.GradientTransformation:
  return optax.inject_hyperparams(_ema_heavy_ball, static_args='beta')(
      learning_rate=hparams['learning_rate'], beta=hparams['beta1'])


def dynamics(hparams) -> dynamics_lib.Dynamics:
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.HEAVY_BALL,
                               style=dynamics_lib.Style.EMA,
                               beta=hparams['beta1'])
