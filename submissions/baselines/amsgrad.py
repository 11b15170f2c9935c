"""AMSGrad: Adam whose second moment never decreases, exactly `optax.amsgrad`.

With bias correction off, as in the paper's Fig. 5 and in Reddi et al.,

  m ← β1 m + (1 − β1) g,  ν ← β2 ν + (1 − β2) g²,  ν̄ ← max(ν̄, ν),
  x ← x − η P⁻¹ m,  P = sqrt(ν̄) + ε.

With P frozen this is EMA heavy-ball with β = β1, so the threshold on
λ1(P⁻¹H) is (2 + 2β1) / ((1 − β1) η), 38/η at β1 = 0.9 (Cohen et al.,
Table 1).

References:
  Reddi, Kale & Kumar, 2018, On the Convergence of Adam and Beyond, ICLR.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Fig. 5 and App. G.2.
"""

import jax
import jax.numpy as jnp
import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  amsgrad = optax.inject_hyperparams(
      optax.amsgrad, static_args=('b1', 'b2', 'eps', 'eps_root'))
  return amsgrad(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
                 b2=hparams['beta2'], eps=hparams['eps'],
                 bias_correction_mu=False, bias_correction_nu=False)


def preconditioner(optimizer_state, hparams):
  """P = sqrt(ν̄) + ε, ν̄ the running maximum the last update divided by."""
  moments = optax.tree_utils.tree_get(optimizer_state, 'ScaleByAmsgradState')
  return jax.tree.map(lambda v: jnp.sqrt(v) + hparams['eps'], moments.nu_max)


dynamics = adaptive.ema_heavy_ball
