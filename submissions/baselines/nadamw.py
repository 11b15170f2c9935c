"""NAdamW: Adam with Nesterov momentum and decoupled weight decay.

Exactly `optax.nadamw`, AlgoPerf's external-tuning baseline and one of its
four target-setting algorithms. Its step is

  x ← x − η (m̃ / P + λ x),  m̃ = β1 m̂ₜ₊₁ + (1 − β1) ĝₜ,  P = sqrt(ν̂) + ε,

with m̂ₜ₊₁ = m / (1 − β1ᵗ⁺¹) and ĝₜ = g / (1 − β1ᵗ) (optax's bias
corrections) and ν̂ Adam's corrected second moment. With P frozen the
direction is the EMA form of Nesterov momentum, whose threshold is
(2 + 2β1) / ((1 + 2β1)(1 − β1) η), 13.57/η at β1 = 0.9 (Cohen et al.,
Table 1). The decay is not preconditioned.

References:
  Dozat, 2016, Incorporating Nesterov Momentum into Adam, ICLR workshop.
  Dahl et al., 2023, Benchmarking Neural Network Training Algorithms,
  arXiv:2306.07179 (the NAdamW baseline and target setting).
"""

import jax
import jax.numpy as jnp
import optax

from submissions import dynamics as dynamics_lib

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-8, 'weight_decay': 1e-4}


def make_optimizer(hparams) -> optax.GradientTransformation:
  nadamw = optax.inject_hyperparams(
      optax.nadamw, static_args=('b1', 'b2', 'eps', 'weight_decay'))
  return nadamw(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
                b2=hparams['beta2'], eps=hparams['eps'],
                weight_decay=hparams['weight_decay'])


def preconditioner(optimizer_state, hparams):
  """P = sqrt(ν̂) + ε: the step is −η P⁻¹ m̃ (module docstring)."""
  moments = optax.tree_utils.tree_get(optimizer_state, 'ScaleByAdamState')
  t = jnp.maximum(moments.count, 1).astype(jnp.float32)
  correction = 1 - hparams['beta2']**t
  return jax.tree.map(lambda v: jnp.sqrt(v / correction) + hparams['eps'],
                      moments.nu)


def dynamics(hparams) -> dynamics_lib.Dynamics:
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.NESTEROV,
                               style=dynamics_lib.Style.EMA,
                               beta=hparams['beta1'])
