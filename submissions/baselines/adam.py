"""Adam with bias correction, exactly as `optax.adam`.

Dynamics: EMA heavy-ball with β = β1, so the threshold on λ1(P⁻¹H) is
(2+2β1)/((1−β1)η), 38/η at β1 = 0.9; P is `adaptive.adam_preconditioner`.

References:
  Kingma & Ba, 2015, Adam: A Method for Stochastic Optimization,
  arXiv:1412.6980.
"""

import functools

import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  adam = optax.inject_hyperparams(optax.adam, static_args=('b1', 'b2', 'eps'))
  return adam(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
              b2=hparams['beta2'], eps=hparams['eps'])


preconditioner = functools.partial(adaptive.preconditioner_from_state,
                                   state_type=optax.ScaleByAdamState,
                                   bias_correction=True)
dynamics = adaptive.ema_heavy_ball
