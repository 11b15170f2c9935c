"""Muon: orthogonalised Nesterov momentum, exactly as `optax.contrib.muon`.

For each weight matrix the step is −η O(m̃), with m̃ the Nesterov form of
an EMA momentum (β) and O five Newton-Schulz iterations that push every
singular value of m̃ towards 1 (its polar factor); every other parameter
(biases, scales) follows Adam. O discards the magnitudes along each
singular direction, so the update is not linear in the gradients and no
linear stability threshold applies: the records measure λ1(H) and report
the threshold as unknown, naming the orthogonalisation. No fixed P gives
the step as −η P⁻¹ m, so the hook is absent.

References:
  Jordan et al., 2024, Muon: An optimizer for hidden layers in neural
  networks, https://kellerjordan.github.io/posts/muon/.
  Liu et al., 2025, Muon is Scalable for LLM Training, arXiv:2502.16982.
"""

import optax
from optax import contrib

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 0.02, 'beta1': 0.95, 'weight_decay': 0.0,
                   'adam_beta1': 0.9, 'adam_beta2': 0.999}


def make_optimizer(hparams) -> optax.GradientTransformation:
  muon = optax.inject_hyperparams(
      contrib.muon, static_args=('beta', 'weight_decay', 'adam_b1',
                                 'adam_b2', 'adam_eps_root',
                                 'adam_weight_decay'))
  return muon(learning_rate=hparams['learning_rate'], beta=hparams['beta1'],
              weight_decay=hparams['weight_decay'],
              adam_b1=hparams['adam_beta1'], adam_b2=hparams['adam_beta2'])


def dynamics(hparams) -> dynamics_lib.Dynamics:
  """Nesterov over an EMA buffer, then orthogonalised."""
  return dynamics_lib.Dynamics(
      momentum=dynamics_lib.Momentum.NESTEROV, style=dynamics_lib.Style.EMA,
      beta=hparams['beta1'],
      nonlinearity='Newton-Schulz orthogonalisation of each matrix\'s '
      'momentum (Muon)')
