"""Lion: the sign of an interpolated momentum, exactly as `optax.lion`.

Its step is

  x ← x − η (sign(β1 m + (1 − β1) g) + λ x),  then m ← β2 m + (1 − β2) g.

The sign makes every coordinate move by ±η whatever the curvature, so the
update is not linear in the gradients and no linear stability threshold
applies: the records measure λ1(H) and report the threshold as unknown,
naming the sign. There is no preconditioner P of which the step is
−η P⁻¹ m for fixed P, so the hook is absent.

References:
  Chen et al., 2023, Symbolic Discovery of Optimization Algorithms,
  arXiv:2302.06675.
"""

import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 1e-4, 'beta1': 0.9, 'beta2': 0.99,
                   'weight_decay': 1e-3}


def make_optimizer(hparams) -> optax.GradientTransformation:
  lion = optax.inject_hyperparams(optax.lion,
                                  static_args=('b1', 'b2', 'weight_decay'))
  return lion(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
              b2=hparams['beta2'], weight_decay=hparams['weight_decay'])


def dynamics(hparams) -> dynamics_lib.Dynamics:
  """The buffer is an EMA with β2; the step is its sign."""
  return dynamics_lib.Dynamics(
      momentum=dynamics_lib.Momentum.HEAVY_BALL,
      style=dynamics_lib.Style.EMA, beta=hparams['beta2'],
      nonlinearity='the sign of an interpolated momentum (Lion)')
