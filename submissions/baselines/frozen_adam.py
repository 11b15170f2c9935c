"""Frozen Adam: Adam (no bias correction) whose preconditioner stops adapting.

Either ν stops changing after `freeze_step` updates (the paper's Fig. 16
freezes at a chosen step), or, when `preconditioner_path` names an .npz
saved by the runner's `--save_preconditioner_at` (in
`submissions.preconditioner_file.FILE_FORMAT`), P is that saved diagonal
from the first step on (Fig. 2 and 3 use a preconditioner taken from an Adam
run). Frozen Adam is preconditioned EMA heavy-ball with a static P, so it
trains at the classical edge of stability of P⁻¹H: 38/η at β1 = 0.9.

Any preconditioned baseline can be frozen this way: save its P with
`--save_preconditioner_at=STEP` and pass the file as `preconditioner_path`
(with `beta1=0` for a method without momentum, such as RMSProp).

References:
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Sec. 3 and App. D.
"""

import functools

import jax
import optax

from submissions import preconditioner_file
from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7, 'freeze_step': 100, 'preconditioner_path': ''}


def make_optimizer(hparams) -> optax.GradientTransformation:
  path, eps = hparams['preconditioner_path'], hparams['eps']
  initial_nu = None
  freeze_step = int(hparams['freeze_step'])
  if path:
    # P = sqrt(ν) + ε, so ν = (P − ε)² starts Adam at the saved P.
    initial_nu = lambda params: jax.tree.map(  # noqa: E731
        lambda p: (p - eps)**2, preconditioner_file.load(path, params))
    freeze_step = 0
  return adaptive.with_learning_rate(
      adaptive.scale_by_adam_moments(
          hparams['beta1'], hparams['beta2'], eps, bias_correction=False,
          freeze_step=freeze_step, initial_nu=initial_nu),
      hparams['learning_rate'])


preconditioner = functools.partial(adaptive.preconditioner_from_state,
                                   state_type=adaptive.AdamMomentsState,
                                   bias_correction=False)
dynamics = adaptive.ema_heavy_ball
