"""Schedule-Free AdamW, exactly as `optax.contrib.schedule_free_adamw`.

Schedule-free keeps three sequences: z, the base (Adam without momentum)
iterate; x, an average of the z's, where one evaluates; and y, where the
gradient is taken and what optax holds as the params during training:

  y = (1 − β) z + β x,   z ← z − η (g(y) / P + δ y),
  x ← (1 − cₜ) x + cₜ z,  cₜ = wₜ / Σ_{i≤t} wᵢ,  wₜ = (max_{i≤t} ηᵢ)²,

with P = sqrt(ν̂) + ε, ν̂ Adam's bias-corrected second moment, δ the
decoupled weight decay, and no first moment: β (`beta1`) is the
interpolation, which replaces momentum. At a constant η, cₜ = 1/(t + 1).
`schedule_free_eval_params` gives x.

Which point is probed. The harness holds y during training, and the probe
measures λ1(P⁻¹H) there: the step is decided by the curvature at the point
where the gradient is taken, so that is where its stability is decided.
The harness also evaluates this short form at y (there is no
`prepare_for_eval`), which can understate the loss at x.

Its threshold. Along an eigendirection of P⁻¹H with eigenvalue λ (P frozen,
a = ηλ) the step is linear in (x, z):

  z' = (1 − (1 − β) a) z − β a x,   x' = (1 − cₜ) x + cₜ z'.

As cₜ → 0, x freezes and y' ≈ y − (1 − β) a y: gradient descent with the
step (1 − β) η, stable while λ < 2 / ((1 − β) η), 20/η at β = 0.9. So the
`dynamics` is no momentum with `step_scale = 1 − β`. At a given c the
matrix's root −1 sits at a = 2 (2 − c) / ((1 − β)(2 − c) + cβ) (its
determinant (1 − c)(1 − (1 − β) a) keeps complex roots inside): a = 2 at
the first step (c = 1, plain GD), rising to the asymptote, short of it by
the fraction ≈ cβ / (2 (1 − β)), 4.5/(t + 1) at β = 0.9: 10% at t ≈ 45,
1% at t ≈ 450. The records give the asymptote, so early probes over-state
the threshold. The decay δ, not preconditioned, is left out as for AdamW.

The learning rate read. The harness reads `learning_rate` from the
`inject_hyperparams` state: η of the latest update. Without warmup (the
default) that is the constant η and training is optax's to the bit. optax's
own `warmup_steps` would build its schedule inside, leaving the peak in the
state; instead a warmup here is a `warmup_constant_schedule` (from 0, as
optax's) given to `inject_hyperparams`, so the state holds the η in force.
The z-steps are then optax's; the averaging weights use the same ηₜ as the
z-step, as the authors' PyTorch reference does, where optax's native warmup
weights by the schedule one step ahead.

Defaults: optax's η = 2.5e-3, β = 0.9, β2 = 0.999, ε = 1e-8, no decay, and
no warmup, so η, and the threshold it sets, are constant as for the other
baselines and the sharpness can be read against one line.

References:
  Defazio et al., 2024, The Road Less Scheduled, arXiv:2405.15682.
  Kasimbeg et al., 2025, Accelerating Neural Network Training: An Analysis
  of the AlgoPerf Competition, arXiv:2502.15015 (the self-tuning winner).
"""

from typing import Any

import optax

from submissions import dynamics as dynamics_lib
from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 2.5e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-8, 'weight_decay': 0.0, 'warmup_steps': 0}

# All but η are static, so the step's arithmetic is optax's own (an injected
# weight_lr_power would turn max_lr ** 2 into a traced power).
_STATIC = ('warmup_steps', 'b1', 'b2', 'eps', 'weight_decay',
           'weight_lr_power')


def make_optimizer(hparams) -> optax.GradientTransformation:
  learning_rate = hparams['learning_rate']
  if hparams['warmup_steps'] > 0:
    learning_rate = optax.warmup_constant_schedule(
        init_value=0.0, peak_value=learning_rate,
        warmup_steps=hparams['warmup_steps'])
  schedule_free = optax.inject_hyperparams(
      optax.contrib.schedule_free_adamw, static_args=_STATIC)
  return schedule_free(learning_rate=learning_rate, warmup_steps=None,
                       b1=hparams['beta1'], b2=hparams['beta2'],
                       eps=hparams['eps'],
                       weight_decay=hparams['weight_decay'],
                       weight_lr_power=2.0)


def _moments(optimizer_state) -> Any:
  """The base Adam's (count, nu), found by name: `scale_by_rms` with bias
  correction in optax 0.2.8, `scale_by_adam(b1=0)` in older releases."""
  for name in ('ScaleByRmsWithCountState', 'ScaleByAdamState'):
    found = optax.tree_utils.tree_get(optimizer_state, name)
    if found is not None:
      return found
  raise ValueError('no base Adam state in the schedule-free state')


def preconditioner(optimizer_state, hparams) -> Any:
  """P = sqrt(ν̂) + ε: z's step is −η (g / P + δ y) (module docstring)."""
  moments = _moments(optimizer_state)
  # No first moment: Adam's P with β1 = 0, whose 1 − β1ᵗ is 1.
  return adaptive.adam_preconditioner(
      moments.count, moments.nu, b1=0.0, b2=hparams['beta2'],
      eps=hparams['eps'], bias_correction=True)


def dynamics(hparams) -> dynamics_lib.Dynamics:
  """GD at the step (1 − β) η, the asymptote as the average settles."""
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NONE,
                               step_scale=1.0 - hparams['beta1'])
