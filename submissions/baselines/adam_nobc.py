"""Adam without bias correction: the paper's default Adam.

P = diag(sqrt(ν)) + εI exactly (the paper's Eq. (1)); dynamics EMA
heavy-ball, threshold 38/η at β1 = 0.9.

Warmup. With `warmup_steps` W > 0 the update of step t (t = 0, 1, ...)
takes ηₜ = η min(1, (t + 1)/W): linear from η/W, never 0, so the first
update moves and every threshold 38/ηₜ is finite, reaching η at step
W − 1. The schedule goes to `inject_hyperparams`, so the state holds the
η of the latest update (after n updates ηₙ₋₁, `Submission.learning_rate`)
and the probe's threshold falls as η rises, as in the paper's Fig. 7.
W = 0, the default, passes η itself as before: training is unchanged to
the bit.

References:
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484.
"""

import functools

import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7, 'warmup_steps': 0}


def _learning_rate(hparams) -> float | optax.Schedule:
  """η, or its linear warmup ηₜ = η min(1, (t + 1)/W) (module docstring)."""
  peak, warmup = hparams['learning_rate'], int(hparams['warmup_steps'])
  if warmup <= 0:
    return peak
  # At W = 1 the ramp has no steps: a constant η (optax warns at 0 steps).
  return optax.linear_schedule(init_value=peak / warmup, end_value=peak,
                               transition_steps=max(warmup - 1, 1))


def make_optimizer(hparams) -> optax.GradientTransformation:
  return adaptive.with_learning_rate(
      adaptive.scale_by_adam_moments(hparams['beta1'], hparams['beta2'],
                                     hparams['eps'], bias_correction=False),
      _learning_rate(hparams))


preconditioner = functools.partial(adaptive.preconditioner_from_state,
                                   state_type=adaptive.AdamMomentsState,
                                   bias_correction=False)
dynamics = adaptive.ema_heavy_ball
