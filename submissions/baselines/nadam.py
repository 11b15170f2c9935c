"""NAdam: Adam with Nesterov momentum, exactly `optax.nadam`.

NAdamW without the weight decay; its step is

  x ← x − η m̃ / P,  m̃ = β1 m̂ₜ₊₁ + (1 − β1) ĝₜ,  P = sqrt(ν̂) + ε,

with optax's bias corrections m̂ₜ₊₁ = m / (1 − β1ᵗ⁺¹), ĝₜ = g / (1 − β1ᵗ)
and ν̂ = ν / (1 − β2ᵗ) (see `nadamw`, whose hooks this module shares). The
paper's Fig. 5 runs NAdam without bias correction, which optax does not
offer; the corrections fade as β1ᵗ and β2ᵗ do and change neither the
dynamics nor the threshold. With P frozen m̃ is the EMA form of Nesterov
momentum: the threshold on λ1(P⁻¹H) is (2 + 2β1) / ((1 + 2β1)(1 − β1) η),
13.57/η at β1 = 0.9 (Cohen et al., Table 1).

References:
  Dozat, 2016, Incorporating Nesterov Momentum into Adam, ICLR workshop.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Table 1 and Fig. 5.
"""

import optax

from submissions.baselines import nadamw

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7}


def make_optimizer(hparams) -> optax.GradientTransformation:
  nadam = optax.inject_hyperparams(
      optax.nadam, static_args=('b1', 'b2', 'eps', 'eps_root'))
  return nadam(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
               b2=hparams['beta2'], eps=hparams['eps'])


preconditioner = nadamw.preconditioner
dynamics = nadamw.dynamics
