"""Shampoo with Adam grafting, a compact optax implementation.

For each weight matrix (conv kernels reshaped, `eigenbasis.matrix_shape`)
Shampoo keeps Kronecker factors L and R of the gradient's second moment
(`kronecker`), and steps along

  s · L^-1/4 m R^-1/4,

with m the EMA of gradients (β1) and s, the grafting scale, the ratio of
Adam's step norm to this one's, per matrix (layer-wise grafting, as
Distributed Shampoo's default). So the update is −η P⁻¹ m with

  P = (L^1/4 ⊗ R^1/4) / s,

symmetric positive definite, and P^-1/2 V = s^1/2 L^-1/8 V R^-1/8. The
`preconditioner` hook returns that P as of the last update, its roots and
grafting scale frozen (`eigenbasis.EigenbasisPreconditioner`). Parameters
without a factor on either side (biases, scales) step by Adam itself, with
Adam's diagonal P. The momentum is EMA heavy-ball with β1 on the raw
gradients, so the threshold on λ1(P⁻¹H) is 2(1 + β1) / ((1 − β1) η):
38/η at β1 = 0.9, as for Adam.

Compared with Google's Distributed Shampoo (`precondition-opt`, which does
not run on current JAX): one block per matrix side up to `max_dim` (longer
sides are left unpreconditioned rather than split into blocks), inverse
roots from a damped eigendecomposition (damping ε · λmax) every
`precondition_every` steps, and momentum on the raw gradient rather than
on the grafted direction.

References:
  Gupta, Koren & Singer, 2018, Shampoo: Preconditioned Stochastic Tensor
  Optimization, arXiv:1802.09568.
  Anil et al., 2020, Scalable Second Order Optimization for Deep Learning,
  arXiv:2002.09018 (grafting, Distributed Shampoo).
  Kasimbeg et al., 2025, Accelerating Neural Network Training: An Analysis
  of the AlgoPerf Training Algorithms Competition, arXiv:2502.15015.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions import eigenbasis
from submissions.baselines import adaptive
from submissions.baselines import kronecker

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-8, 'matrix_eps': 1e-6, 'weight_decay': 0.0,
                   'precondition_every': 10, 'max_dim': 1024}


class ShampooState(NamedTuple):
  """`count`, `mu`, `nu` as optax's Adam; `sides` one `kronecker.LeafSides`
  per leaf; `graft_scale` the last step's s per leaf (1 where Adam)."""

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  sides: list
  graft_scale: list


def _blocks(state: ShampooState, *, b1: float, b2: float,
            eps: float) -> list[eigenbasis.Block]:
  """P per leaf (flattened order) from the state, as the update uses it."""
  adam = jax.tree.leaves(adaptive.adam_preconditioner(
      state.count, state.nu, b1=b1, b2=b2, eps=eps, bias_correction=True))
  blocks = []
  for leaf_sides, scale, adam_p in zip(state.sides, state.graft_scale, adam):
    shape = eigenbasis.matrix_shape(adam_p.shape)
    left, right = kronecker.basis(leaf_sides)
    if left is None and right is None:
      blocks.append(eigenbasis.Block(None, None, adam_p.reshape(shape)))
      continue
    roots = kronecker.root_eigenvalues(leaf_sides, shape, 0.25)
    blocks.append(eigenbasis.Block(left, right, roots / scale))
  return blocks


def scale_by_shampoo(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                     *, matrix_eps: float = 1e-6, precondition_every: int = 10,
                     max_dim: int = 1024) -> optax.GradientTransformation:
  """Scales updates to P⁻¹ m, P Shampoo's grafted Kronecker preconditioner.

  Args:
    b1: decay of the gradient EMA m (EMA heavy-ball momentum).
    b2: decay of the Kronecker factors and of Adam's ν (the graft).
    eps: Adam's ε, in the graft and the diagonal fallback.
    matrix_eps: damping of the factors relative to their largest
      eigenvalue.
    precondition_every: steps between eigendecompositions (the second step
      computes the first, `kronecker.refresh_due`).
    max_dim: longest matrix side that gets a factor.
  """

  def init_fn(params):
    sides = kronecker.init(params, max_dim)
    # Separate buffers for m and ν: a train step donates its state.
    return ShampooState(count=jnp.zeros([], jnp.int32),
                        mu=jax.tree.map(jnp.zeros_like, params),
                        nu=jax.tree.map(jnp.zeros_like, params), sides=sides,
                        graft_scale=[jnp.ones([], jnp.float32) for _ in sides])

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    sides = kronecker.update(
        state.sides, updates, beta=b2, matrix_eps=matrix_eps,
        refresh=kronecker.refresh_due(state.count, precondition_every))
    count = optax.safe_increment(state.count)
    adam = jax.tree.leaves(adaptive.adam_preconditioner(
        count, nu, b1=b1, b2=b2, eps=eps, bias_correction=True))
    # P⁻¹ m leaf by leaf, as `_blocks` gives P: Adam's m / P where there is
    # no factor, else s · L^-1/4 m R^-1/4 (one rotation in and out).
    scales, directions = [], []
    for leaf_sides, m, adam_p in zip(sides, jax.tree.leaves(mu), adam):
      adam_direction = m / adam_p
      if all(side is None for side in leaf_sides):
        scales.append(jnp.ones([], jnp.float32))
        directions.append(adam_direction)
        continue
      unscaled = eigenbasis.Block(
          *kronecker.basis(leaf_sides),
          kronecker.root_eigenvalues(
              leaf_sides, eigenbasis.matrix_shape(m.shape), 0.25)
      ).apply_power(m, -1.0)
      shampoo_norm = jnp.linalg.norm(unscaled)
      # Zero momentum has no direction to graft onto: any s > 0 will do.
      scale = jnp.where(
          shampoo_norm > 0,
          jnp.linalg.norm(adam_direction) / jnp.maximum(shampoo_norm, 1e-30),
          1.0).astype(jnp.float32)
      scales.append(scale)
      directions.append(scale * unscaled)
    state = ShampooState(count, mu, nu, sides, scales)
    return jax.tree.unflatten(jax.tree.structure(mu), directions), state

  return optax.GradientTransformation(init_fn, update_fn)


def shampoo(learning_rate: float, b1: float = 0.9, b2: float = 0.999,
            eps: float = 1e-8, *, matrix_eps: float = 1e-6,
            weight_decay: float = 0.0, precondition_every: int = 10,
            max_dim: int = 1024) -> optax.GradientTransformation:
  """Shampoo, decoupled weight decay, and the step −η."""
  return kronecker.with_step(
      scale_by_shampoo(b1, b2, eps, matrix_eps=matrix_eps,
                       precondition_every=precondition_every,
                       max_dim=max_dim),
      learning_rate, weight_decay)


def make_optimizer(hparams) -> optax.GradientTransformation:
  return kronecker.make_optimizer(shampoo, hparams)


def preconditioner(optimizer_state, hparams) -> Any:
  """The P of the last update: its roots and grafting scale frozen."""
  return kronecker.preconditioner(optimizer_state, hparams,
                                  state_name='ShampooState', blocks=_blocks)


dynamics = adaptive.ema_heavy_ball
