"""Block Lanczos: a block of b vectors per product, for the top k ≥ 2.

Each iteration applies the operator to a whole block at once (one batched
product of b vectors), so the top k converge in about as many products as
single-vector Lanczos needs but in b times fewer sequential steps. Whether
that is faster depends on how much cheaper a batched product is per vector
than b single ones: `HvpMode`-independent, it is a property of the device
(BENCHMARKS.md measures it).

The basis rows are laid out as in single-vector Lanczos (`_lanczos`), block
j being rows j·b … j·b + b − 1, and every new row is orthonormalised by the
same code (full reorthogonalisation, DGKS second pass, random restart on
breakdown). The couplings are the projections of the products on the basis,
T[i, j] = Q_i (A Q_j)ᵀ, so T is exact for whatever basis rounding left.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

from harness.curvature import _lanczos

_HIGHEST = lax.Precision.HIGHEST


class _State(NamedTuple):
  basis: jax.Array  # (1, num_blocks, BLOCK, n): rows 0..(size + 1)·b − 1.
  diagonal: jax.Array  # (m, b, b): T[j, j] = Q_j (A Q_j)ᵀ.
  below: jax.Array  # (m, b, b): T[j + 1, j] = Q_{j+1} (A Q_j)ᵀ.
  norm_estimate: jax.Array  # () max ‖A q‖ seen, a scale for breakdown.
  size: jax.Array  # () int32: block iterations done.


def _block_rows(basis: jax.Array, j: jax.Array, b: int) -> jax.Array:
  """Rows j·b … j·b + b − 1 of the basis, (b, n)."""
  flat = basis[0].reshape(-1, basis.shape[-1])
  return lax.dynamic_slice_in_dim(flat, j * b, b, axis=0)


def _append_rows(basis: jax.Array, residuals: jax.Array, first_row: jax.Array,
                 floor: jax.Array, seed: jax.Array) -> jax.Array:
  """Orthonormalises the rows of `residuals` one by one against every row
  before them and writes them from `first_row` on."""

  def one(r, basis):
    row = first_row + r
    v, _ = _lanczos._next_rows(
        basis, residuals[r][None], row - 1, floor, jnp.ones((1,), bool),
        seed, row[None])
    return basis.at[0, row // _lanczos.BLOCK, row % _lanczos.BLOCK].set(v[0])

  return lax.fori_loop(0, residuals.shape[0], one, basis)


def _step(batched: Callable[[jax.Array], jax.Array], seed: jax.Array,
          breakdown_tol: float, state: _State) -> _State:
  basis, diagonal, below, norm_estimate, j = state
  b = diagonal.shape[1]
  q = _block_rows(basis, j, b)
  w = batched(q).astype(q.dtype)
  a = jnp.matmul(q, w.T, precision=_HIGHEST)
  a = (a + a.T) / 2
  previous = jnp.where(j > 0, below[jnp.maximum(j - 1, 0)], 0)
  q_previous = _block_rows(basis, jnp.maximum(j - 1, 0), b)
  residuals = (w - jnp.matmul(a, q, precision=_HIGHEST) -
               jnp.matmul(previous, q_previous, precision=_HIGHEST))
  norm_estimate = jnp.maximum(norm_estimate,
                              jnp.max(jnp.sqrt(jnp.sum(w * w, axis=1))))
  basis = _append_rows(basis, residuals, (j + 1) * b,
                       breakdown_tol * norm_estimate, seed)
  coupling = jnp.matmul(_block_rows(basis, j + 1, b), w.T, precision=_HIGHEST)
  return _State(basis, diagonal.at[j].set(a), below.at[j].set(coupling),
                norm_estimate, j + 1)


def _ritz(state: _State, k: int) -> _lanczos._Ritz:
  """Top-k Ritz pairs of the filled leading blocks of the block tridiagonal
  T; inactive blocks sit below a Gershgorin bound of the active ones."""
  m, b, _ = state.diagonal.shape
  blocks = jnp.arange(m)
  active = blocks < state.size
  tri = jnp.zeros((m, b, m, b), state.diagonal.dtype)
  tri = tri.at[blocks, :, blocks, :].set(state.diagonal)
  coupled = jnp.where((blocks[:-1] + 1 < state.size)[:, None, None],
                      state.below[:-1], 0)
  tri = tri.at[blocks[1:], :, blocks[:-1], :].set(coupled)
  tri = tri.at[blocks[:-1], :, blocks[1:], :].set(
      jnp.swapaxes(coupled, 1, 2))
  tri = tri.reshape(m * b, m * b)
  row_active = jnp.repeat(active, b)
  radius = jnp.sum(jnp.abs(tri), axis=1) - jnp.abs(jnp.diag(tri))
  lower = jnp.min(jnp.where(row_active, jnp.diag(tri) - radius, jnp.inf))
  pad = lower - 1 - jnp.abs(lower)
  tri = jnp.where(row_active[:, None] & row_active[None, :], tri, 0)
  tri = tri + jnp.diag(jnp.where(row_active, 0, pad))
  evals, evecs = jnp.linalg.eigh(tri)
  s = evecs[:, ::-1][:, :k]
  last = jnp.maximum(state.size - 1, 0)
  s_last = lax.dynamic_slice_in_dim(s, last * b, b, axis=0)
  residuals = jnp.linalg.norm(
      jnp.matmul(state.below[last], s_last, precision=_HIGHEST), axis=0)
  return _lanczos._Ritz(evals[::-1][:k], s, residuals)


def start_block(init: jax.Array | None, seed: jax.Array, b: int, dim: int,
                dtype) -> jax.Array:
  """A start block (b, dim): the rows of `init` ((j, dim), e.g. the previous
  top-k eigenvectors) first, pseudo-random rows after them. `block_lanczos`
  orthonormalises it; a zero row becomes a random one there."""
  salts = _lanczos._START_SALT + jnp.arange(b)
  block = _lanczos._hash_vectors(seed, salts, dim, dtype)
  if init is None:
    return block
  init = jnp.asarray(init, dtype).reshape(-1, dim)[:b]
  return block.at[:init.shape[0]].set(init)


def block_lanczos(batched: Callable[[jax.Array], jax.Array], v0: jax.Array,
                  seed: jax.Array, *, num_iterations: int, k: int,
                  tol: float | None, check_every: int, return_vectors: bool,
                  breakdown_tol: float) -> _lanczos.LanczosResult:
  """Top-k Ritz pairs by block Lanczos from a start block v0 (b, dim).

  Args:
    batched: (b, dim) -> (b, dim), the operator on every row.
    v0: the start block; its rows are orthonormalised first.
    seed: uint32 seed of restart vectors.
    num_iterations: block iterations at most (b products each).
    k, tol, check_every, return_vectors, breakdown_tol: as in
      `_lanczos.lanczos_stacked` (a check every `check_every` blocks).

  Returns:
    A `LanczosResult` for the one problem; `num_matvecs` counts products
    (b per block iteration).
  """
  b, dim = v0.shape
  m = num_iterations
  dtype = v0.dtype
  basis = jnp.zeros((1, _lanczos._num_blocks((m + 1) * b), _lanczos.BLOCK,
                     dim), dtype)
  basis = _append_rows(basis, v0, jnp.asarray(0, jnp.int32),
                       jnp.asarray(0, dtype), seed)
  zeros = jnp.zeros((m, b, b), dtype)
  state = _State(basis, zeros, zeros, jnp.zeros((), dtype),
                 jnp.asarray(0, jnp.int32))

  def step(state):
    return _step(batched, seed, breakdown_tol, state)

  if tol is None:
    state = lax.fori_loop(0, m, lambda _, s: step(s), state)
    ritz = _ritz(state, k)
  else:
    def block(carry):
      state, _, _ = carry
      state = _lanczos._steps(step, lambda s: s.size < m, check_every,
                              state)
      ritz = _ritz(state, k)
      done = jnp.all(ritz.residuals <= tol * jnp.abs(ritz.theta))
      return state, ritz, done

    empty = jax.eval_shape(lambda s: _ritz(s, k), state)
    state, ritz, _ = lax.while_loop(
        lambda carry: (carry[0].size < m) & ~carry[2], block,
        (state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), empty),
         jnp.asarray(False)))
  vectors = None
  if return_vectors:
    vectors = _lanczos._ritz_vectors(state.basis, ritz.s[None])[0]
  report_tol = _lanczos.DEFAULT_REPORT_TOL if tol is None else tol
  converged = jnp.all(ritz.residuals <= report_tol * jnp.abs(ritz.theta))
  return _lanczos.LanczosResult(ritz.theta, vectors, ritz.residuals,
                                state.size * b, converged)
