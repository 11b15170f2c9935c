"""Kronecker-factored gradient statistics and their eigenbases.

Shampoo and SOAP both keep, for each weight matrix G (m × n, see
`eigenbasis.matrix_shape`), the EMAs L = β L + (1 − β) G Gᵀ and
R = β R + (1 − β) Gᵀ G, and every few steps an eigendecomposition of each.
They differ only in what they do in that basis. A side longer than
`max_dim` (an m × m factor would be too costly) or of length 1 has no
factor and stays the identity, and a vector or scalar has neither: the
methods treat it with their diagonal fallback.

A basis is refreshed from the factors as they stand before the step's own
gradient is added, at the second step and every `precondition_every` steps
after (`refresh_due`), as SOAP's reference code does: a basis computed from
the very gradients it then rotates would leave their exactly-zero
components to float32 rounding, which Adam's division by sqrt(ν) + ε
amplifies. Until the first refresh the basis is the identity.
Eigendecompositions use `jnp.linalg.eigh` in full, where SOAP's reference
code refreshes its basis by one power iteration and a QR: the basis here is
the exact one its iteration tracks.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions import eigenbasis

# Keeps a factor's damped eigenvalues normal in float32 when it is all 0
# (zero gradients): the damping is `matrix_eps` times at least this.
_SMALLEST_SCALE = 1e-30


class Side(NamedTuple):
  """One side's factor (EMA of G Gᵀ or Gᵀ G) and its last eigenbasis.

  `values` are the damped eigenvalues (all > 0) of the factor as it was at
  the last refresh, `vectors` the matching orthonormal eigenvectors.
  """

  factor: jax.Array
  vectors: jax.Array
  values: jax.Array


class LeafSides(NamedTuple):
  """A leaf's two sides, None where the side is the identity."""

  left: Side | None
  right: Side | None


def sides_for(shape: tuple[int, ...], max_dim: int) -> tuple[bool, bool]:
  """Which sides of a leaf of this shape carry a factor."""
  if len(shape) < 2:
    return False, False
  m, n = eigenbasis.matrix_shape(shape)
  return 1 < m <= max_dim, 1 < n <= max_dim


def _new_side(size: int, dtype) -> Side:
  return Side(factor=jnp.zeros((size, size), dtype),
              vectors=jnp.eye(size, dtype=dtype),
              values=jnp.ones((size,), dtype))


def init(params, max_dim: int) -> list[LeafSides]:
  """Zero factors and identity bases, one `LeafSides` per params leaf."""
  result = []
  for leaf in jax.tree.leaves(params):
    m, n = eigenbasis.matrix_shape(leaf.shape)
    has_left, has_right = sides_for(leaf.shape, max_dim)
    dtype = jnp.promote_types(leaf.dtype, jnp.float32)
    result.append(LeafSides(
        left=_new_side(m, dtype) if has_left else None,
        right=_new_side(n, dtype) if has_right else None))
  return result


def _damped_eigh(factor: jax.Array, matrix_eps: float
                 ) -> tuple[jax.Array, jax.Array]:
  """Eigenvectors and eigenvalues of factor + δ I, δ = ε · λmax(factor)."""
  values, vectors = jnp.linalg.eigh(factor)
  values = jnp.maximum(values, 0.0)
  damping = matrix_eps * jnp.maximum(values[-1], _SMALLEST_SCALE)
  return vectors, values + damping


def refresh_due(count: jax.Array, every: int) -> jax.Array:
  """Whether the step after `count` updates refreshes the bases: counts 1,
  1 + every, 1 + 2 every, ..."""
  return (count >= 1) & ((count - 1) % every == 0)


def update(sides: list[LeafSides], grads, *, beta: float, matrix_eps: float,
           refresh: jax.Array) -> list[LeafSides]:
  """The bases refreshed if `refresh`, then the factors after one gradient.

  Args:
    sides: the state, one `LeafSides` per leaf.
    grads: the gradients, a params-shaped pytree.
    beta: the factors' EMA decay.
    matrix_eps: relative damping of each factor's eigenvalues.
    refresh: a boolean scalar: recompute the eigenbases this step.
  """

  def refreshed(side: Side) -> Side:
    vectors, values = _damped_eigh(side.factor, matrix_eps)
    return side._replace(vectors=vectors, values=values)

  result = []
  for leaf_sides, g in zip(sides, jax.tree.leaves(grads)):
    g = g.reshape(eigenbasis.matrix_shape(g.shape))
    new = {}
    for name, side in leaf_sides._asdict().items():
      if side is None:
        new[name] = None
        continue
      side = jax.lax.cond(refresh, refreshed, lambda s: s, side)
      g_side = g if name == 'left' else g.T
      new[name] = side._replace(
          factor=beta * side.factor + (1 - beta) * (
              g_side @ g_side.T).astype(side.factor.dtype))
    result.append(LeafSides(**new))
  return result


def basis(leaf_sides: LeafSides) -> tuple[jax.Array | None, jax.Array | None]:
  """(Q_L, Q_R), None for an identity side."""
  return tuple(None if s is None else s.vectors for s in leaf_sides)


def root_eigenvalues(leaf_sides: LeafSides, shape: tuple[int, int],
                     exponent: float) -> jax.Array:
  """(d_L^e ⊗ d_R^e) as an m × n array: the eigenvalues of
  L^e ⊗ R^e in the basis Q_L ⊗ Q_R (1 on an identity side)."""
  m, n = shape
  left, right = leaf_sides
  column = jnp.ones((m, 1)) if left is None else (left.values**exponent)[
      :, None]
  row = jnp.ones((1, n)) if right is None else (right.values**exponent)[
      None, :]
  return column * row


# ---- What Shampoo's and SOAP's modules share around their transforms ----

# Every hyperparameter but η is fixed when the optimizer is built.
STATIC_ARGS = ('b1', 'b2', 'eps', 'matrix_eps', 'weight_decay',
               'precondition_every', 'max_dim')


def with_step(scale: optax.GradientTransformation, learning_rate: float,
              weight_decay: float) -> optax.GradientTransformation:
  """`scale`, then decoupled weight decay, then the step −η."""
  return optax.chain(scale, optax.add_decayed_weights(weight_decay),
                     optax.scale_by_learning_rate(learning_rate))


def make_optimizer(factory: Callable[..., optax.GradientTransformation],
                   hparams) -> optax.GradientTransformation:
  """`factory` (Shampoo's or SOAP's) with η in the optimizer state."""
  tx = optax.inject_hyperparams(factory, static_args=STATIC_ARGS)
  return tx(learning_rate=hparams['learning_rate'], b1=hparams['beta1'],
            b2=hparams['beta2'], eps=hparams['eps'],
            matrix_eps=hparams['matrix_eps'],
            weight_decay=hparams['weight_decay'],
            precondition_every=int(hparams['precondition_every']),
            max_dim=int(hparams['max_dim']))


def preconditioner(optimizer_state, hparams, *, state_name: str,
                   blocks: Callable[..., list[eigenbasis.Block]]) -> Any:
  """The P of the last update, from the method's state (`state_name`,
  found by name) and its `blocks(state, b1=, b2=, eps=)`."""
  state = optax.tree_utils.tree_get(optimizer_state, state_name)
  return eigenbasis.EigenbasisPreconditioner(jax.tree.unflatten(
      jax.tree.structure(state.mu),
      blocks(state, b1=hparams['beta1'], b2=hparams['beta2'],
             eps=hparams['eps'])))
