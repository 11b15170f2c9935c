"""AdamW: Adam with decoupled weight decay, exactly as `optax.adamw`.

The decay is not preconditioned; the dynamics and P are Adam's.

References:
  Loshchilov & Hutter, 2019, Decoupled Weight Decay Regularization,
  arXiv:1711.05101.
"""

import functools

import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7, 'weight_decay': 1e-4}


def make_optimizer(hparams) -> optax.GradientTransformation:
  adamw = optax.inject_hyperparams(
      optax.adamw, static_args=('b1', 'b2', 'eps', 'weight_decay'))
  return adamw(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
               b2=hparams['beta2'], eps=hparams['eps'],
               weight_decay=hparams['weight_decay'])


preconditioner = functools.partial(adaptive.preconditioner_from_state,
                                   state_type=optax.ScaleByAdamState,
                                   bias_correction=True)
dynamics = adaptive.ema_heavy_ball
