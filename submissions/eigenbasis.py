"""A preconditioner that is diagonal in a per-matrix Kronecker eigenbasis.

Shampoo and SOAP precondition a weight matrix W (m × n) on both sides:
P acts on a direction V of W's shape as

  P V = Q_L ((Q_Lᵀ V Q_R) ⊙ D) Q_Rᵀ,

with Q_L (m × m) and Q_R (n × n) orthogonal and D (m × n) positive: P is
symmetric positive definite with eigenvectors the columns of Q_L ⊗ Q_R and
eigenvalues D. Shampoo's P = (L^1/4 ⊗ R^1/4) / s is the case D = d_L^1/4
d_Rᵀ^1/4 / s (d_L, d_R the eigenvalues of L and R, s its grafting scale);
SOAP's is D = Adam's P in the rotated coordinates. A side without a basis
(None) is the identity, and a leaf without either is a plain diagonal.

`EigenbasisPreconditioner` is what such a submission's `preconditioner`
hook returns. It has the methods of `harness.curvature.Preconditioner`
(apply P^-1/2, validate, ‖P‖_F), which the probe recognises by structure,
so the submission need not import the harness.

References:
  Gupta, Koren & Singer, 2018, Shampoo: Preconditioned Stochastic Tensor
  Optimization, arXiv:1802.09568.
  Vyas et al., 2024, SOAP: Improving and Stabilizing Shampoo using Adam,
  arXiv:2409.11321.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
  """The (m, n) a leaf is preconditioned as: all axes but the last × the
  last (a conv kernel's spatial and input axes merge); (1, size) for a
  vector or scalar."""
  if len(shape) < 2:
    return 1, math.prod(shape)
  return math.prod(shape[:-1]), shape[-1]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Block:
  """One leaf's P: eigenvalues `diagonal` (m × n) in the basis Q_L ⊗ Q_R.

  Attributes:
    left: Q_L (m × m, orthogonal), or None for the identity.
    right: Q_R (n × n, orthogonal), or None for the identity.
    diagonal: D (m × n), the eigenvalues of P, all > 0.
  """

  left: jax.Array | None
  right: jax.Array | None
  diagonal: jax.Array

  def apply_power(self, v: jax.Array, power: float) -> jax.Array:
    """P^power · v for a leaf-shaped v."""
    x = v.reshape(self.diagonal.shape)
    x = self.rotate_in(x)
    x = x * self.diagonal.astype(x.dtype)**power
    return self.rotate_out(x).reshape(v.shape)

  def rotate_in(self, x: jax.Array) -> jax.Array:
    """Q_Lᵀ x Q_R for an (m × n) x."""
    if self.left is not None:
      x = self.left.T.astype(x.dtype) @ x
    if self.right is not None:
      x = x @ self.right.astype(x.dtype)
    return x

  def rotate_out(self, x: jax.Array) -> jax.Array:
    """Q_L x Q_Rᵀ, the inverse of `rotate_in`."""
    if self.left is not None:
      x = self.left.astype(x.dtype) @ x
    if self.right is not None:
      x = x @ self.right.T.astype(x.dtype)
    return x


def _is_block(x: Any) -> bool:
  return isinstance(x, Block)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EigenbasisPreconditioner:
  """P as one `Block` per parameter leaf.

  Attributes:
    blocks: the params' pytree structure with a `Block` at each leaf.
  """

  blocks: Any

  def apply_power(self, tree: Any, power: float) -> Any:
    """P^power · tree for a params-shaped pytree."""
    return jax.tree.map(lambda block, v: block.apply_power(v, power),
                        self.blocks, tree, is_leaf=_is_block)

  def apply_inv_sqrt(self, tree: Any) -> Any:
    return self.apply_power(tree, -0.5)

  def norm(self) -> jax.Array:
    """‖P‖_F = ‖D‖ over every block, the bases being orthogonal."""
    blocks = jax.tree.leaves(self.blocks, is_leaf=_is_block)
    return jnp.sqrt(sum(jnp.sum(jnp.square(b.diagonal)) for b in blocks))

  def validate(self, params: Any) -> None:
    """Raises ValueError unless every block fits its leaf and, on concrete
    arrays, every eigenvalue is finite and > 0."""
    blocks, structure = jax.tree.flatten(self.blocks, is_leaf=_is_block)
    paths_and_leaves, params_structure = jax.tree_util.tree_flatten_with_path(
        params)
    if structure != params_structure:
      raise ValueError('preconditioner blocks do not match the params: '
                       f'{structure} against {params_structure}')
    for block, (path, leaf) in zip(blocks, paths_and_leaves):
      m, n = matrix_shape(tuple(leaf.shape))
      sides = {'diagonal': (block.diagonal, (m, n)),
               'left basis': (block.left, (m, m)),
               'right basis': (block.right, (n, n))}
      for what, (array, want) in sides.items():
        if array is not None and tuple(array.shape) != want:
          raise ValueError(
              f'preconditioner {what} of leaf {jax.tree_util.keystr(path)} '
              f'has shape {tuple(array.shape)}, expected {want}')
    diagonals = [b.diagonal for b in blocks]
    if not all(isinstance(d, jax.Array) and not isinstance(d, jax.core.Tracer)
               for d in diagonals):
      return  # Values are checked on concrete arrays only.
    bad = jax.device_get([jnp.sum(~(jnp.isfinite(d) & (d > 0)))
                          for d in diagonals])
    for count, (path, _) in zip(bad, paths_and_leaves):
      if count:
        raise ValueError(
            f'preconditioner eigenvalues of leaf {jax.tree_util.keystr(path)} '
            f'must be finite and > 0: {int(count)} are not')
