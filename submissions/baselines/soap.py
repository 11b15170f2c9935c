"""SOAP: Adam in Shampoo's eigenbasis, a compact optax implementation.

For each weight matrix (conv kernels reshaped, `eigenbasis.matrix_shape`)
SOAP keeps Shampoo's Kronecker factors L and R (`kronecker`) and every few
steps their eigenvectors Q_L and Q_R. It runs Adam in the rotated
coordinates: ν is the EMA of (Q_Lᵀ G Q_R)², and the step is

  Q_L ((Q_Lᵀ m Q_R) / D) Q_Rᵀ,  D = (1 − β1ᵗ) (sqrt(ν) + ε) / sqrt(1 − β2ᵗ),

with m the EMA of raw gradients (β1) and the bias corrections of SOAP's
reference code. So the update is −η P⁻¹ m with P = Q D Qᵀ, Q = Q_L ⊗ Q_R:
symmetric positive definite, and P^-1/2 rotates in, divides by sqrt(D) and
rotates back. The `preconditioner` hook returns that P as of the last
update (`eigenbasis.EigenbasisPreconditioner`). Vectors and sides longer
than `max_dim` are not rotated (vectors step by plain Adam). The momentum
is EMA heavy-ball with β1, so the threshold on λ1(P⁻¹H) is
2(1 + β1) / ((1 − β1) η): 78/η at SOAP's default β1 = 0.95.

Compared with the reference PyTorch code (no maintained JAX package
exists): the basis is an exact eigendecomposition at each refresh rather
than one power iteration and a QR; the first step is taken (the reference
only collects statistics on it); ν is kept, not permuted, when the basis
changes; m lives in the original coordinates, which is what the
reference's re-projection of m on a basis change amounts to.

References:
  Vyas et al., 2024, SOAP: Improving and Stabilizing Shampoo using Adam,
  arXiv:2409.11321.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions import eigenbasis
from submissions.baselines import adaptive
from submissions.baselines import kronecker

DEFAULT_HPARAMS = {'learning_rate': 3e-3, 'beta1': 0.95, 'beta2': 0.95,
                   'eps': 1e-8, 'matrix_eps': 1e-12, 'weight_decay': 0.0,
                   'precondition_every': 10, 'max_dim': 1024}


class SoapState(NamedTuple):
  """`count` and `mu` as optax's Adam (m in the original coordinates);
  `nu` one rotated second moment per leaf (flattened order); `sides` one
  `kronecker.LeafSides` per leaf."""

  count: jax.Array
  mu: optax.Updates
  nu: list
  sides: list


def _blocks(state: SoapState, *, b1: float, b2: float,
            eps: float) -> list[eigenbasis.Block]:
  """P per leaf (flattened order) from the state, as the update uses it."""
  t = jnp.maximum(state.count, 1).astype(jnp.float32)
  correction = (1 - b1**t) / jnp.sqrt(1 - b2**t)
  return [eigenbasis.Block(*kronecker.basis(leaf_sides),
                           correction * (jnp.sqrt(nu) + eps))
          for leaf_sides, nu in zip(state.sides, state.nu)]


def scale_by_soap(b1: float = 0.95, b2: float = 0.95, eps: float = 1e-8, *,
                  matrix_eps: float = 1e-12, precondition_every: int = 10,
                  max_dim: int = 1024) -> optax.GradientTransformation:
  """Scales updates to P⁻¹ m, P Adam's diagonal in Shampoo's eigenbasis.

  Args:
    b1: decay of the gradient EMA m (EMA heavy-ball momentum).
    b2: decay of the rotated ν and of the Kronecker factors.
    eps: Adam's ε.
    matrix_eps: damping of the factors relative to their largest
      eigenvalue (it only keeps the eigendecomposition well posed).
    precondition_every: steps between eigendecompositions (the second step
      computes the first, `kronecker.refresh_due`).
    max_dim: longest matrix side that gets rotated.
  """

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    return SoapState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(jnp.zeros_like, params),
        nu=[jnp.zeros(eigenbasis.matrix_shape(x.shape), x.dtype)
            for x in leaves],
        sides=kronecker.init(params, max_dim))

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    sides = kronecker.update(
        state.sides, updates, beta=b2, matrix_eps=matrix_eps,
        refresh=kronecker.refresh_due(state.count, precondition_every))
    nu = []
    for leaf_sides, g, v in zip(sides, jax.tree.leaves(updates), state.nu):
      rotated = eigenbasis.Block(*kronecker.basis(leaf_sides), v).rotate_in(
          g.reshape(v.shape))
      nu.append(b2 * v + (1 - b2) * rotated**2)
    state = SoapState(optax.safe_increment(state.count), mu, nu, sides)
    directions = [block.apply_power(m, -1.0) for block, m in zip(
        _blocks(state, b1=b1, b2=b2, eps=eps), jax.tree.leaves(mu))]
    return jax.tree.unflatten(jax.tree.structure(mu), directions), state

  return optax.GradientTransformation(init_fn, update_fn)


def soap(learning_rate: float, b1: float = 0.95, b2: float = 0.95,
         eps: float = 1e-8, *, matrix_eps: float = 1e-12,
         weight_decay: float = 0.0, precondition_every: int = 10,
         max_dim: int = 1024) -> optax.GradientTransformation:
  """SOAP, decoupled weight decay, and the step −η."""
  return kronecker.with_step(
      scale_by_soap(b1, b2, eps, matrix_eps=matrix_eps,
                    precondition_every=precondition_every, max_dim=max_dim),
      learning_rate, weight_decay)


def make_optimizer(hparams) -> optax.GradientTransformation:
  return kronecker.make_optimizer(soap, hparams)


def preconditioner(optimizer_state, hparams) -> Any:
  """The P of the last update: Q D Qᵀ with its basis and ν frozen."""
  return kronecker.preconditioner(optimizer_state, hparams,
                                  state_name='SoapState', blocks=_blocks)


dynamics = adaptive.ema_heavy_ball
