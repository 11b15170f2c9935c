"""Adam without bias correction: the paper's default Adam.

P = diag(sqrt(ν)) + εI exactly (the paper's Eq. (1)); dynamics EMA
heavy-ball, threshold 38/η at β1 = 0.9.

References:
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484.
"""

import functools

import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  return adaptive.with_learning_rate(
      adaptive.scale_by_adam_moments(hparams['beta1'], hparams['beta2'],
                                     hparams['eps'], bias_correction=False),
      hparams['learning_rate'])


preconditioner = functools.partial(adaptive.preconditioner_from_state,
                                   state_type=adaptive.AdamMomentsState,
                                   bias_correction=False)
dynamics = adaptive.ema_heavy_ball
