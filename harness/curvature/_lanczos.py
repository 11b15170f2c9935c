"""Lanczos with full reorthogonalisation, compiled as one loop on the device."""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp

_HIGHEST = lax.Precision.HIGHEST
# Reported `converged` uses this tolerance when no early stopping is asked for.
DEFAULT_REPORT_TOL = 1e-3


class LanczosResult(NamedTuple):
  """Top-k Ritz pairs of a symmetric operator.

  Attributes:
    eigenvalues: (k,) Ritz values, descending.
    eigenvectors: (k, dim) unit Ritz vectors, or None.
    residuals: (k,) residual norms ‖A y − θ y‖ (exact arithmetic estimate
      |β_m · s_m|, with s_m the last entry of the tridiagonal eigenvector).
    num_matvecs: number of operator applications used (int32 scalar).
    converged: whether every top-k residual is ≤ tol·|θ| (bool scalar).
  """

  eigenvalues: jax.Array
  eigenvectors: jax.Array | None
  residuals: jax.Array
  num_matvecs: jax.Array
  converged: jax.Array


# Rows per block of the Lanczos basis. Reorthogonalisation reads only the
# blocks filled so far, and one block (BLOCK × dim floats) stays in cache
# between computing its coefficients and subtracting its projection, so each
# filled row is read from memory about once per pass, not twice, and an
# iteration cap far above the iterations used costs nothing.
BLOCK = 8


class _State(NamedTuple):
  basis: jax.Array  # (num_blocks, BLOCK, n): rows 0..j filled, the rest zero.
  alphas: jax.Array  # (m,) diagonal of T.
  betas: jax.Array  # (m,) betas[i] couples rows i and i + 1.
  norm_estimate: jax.Array  # running max of |α| + β terms, a scale for ‖A‖.


def _num_blocks(num_rows: int) -> int:
  return -(-num_rows // BLOCK)


def _row(basis: jax.Array, i: jax.Array) -> jax.Array:
  return basis[i // BLOCK, i % BLOCK]


def _project_out(basis: jax.Array, w: jax.Array,
                 last_row: jax.Array) -> jax.Array:
  """w minus its projection on rows 0..last_row, block by block (block MGS).

  Rows past `last_row` in its block are zero, so they project nothing.
  """

  def body(b, w):
    block = basis[b]
    coeffs = jnp.matmul(block, w, precision=_HIGHEST)
    return w - jnp.matmul(coeffs, block, precision=_HIGHEST)

  return lax.fori_loop(0, last_row // BLOCK + 1, body, w)


def _reorthogonalize(basis: jax.Array, w: jax.Array,
                     last_row: jax.Array) -> jax.Array:
  """Full reorthogonalisation against rows 0..last_row.

  A second pass runs only when the first removed much of w (DGKS
  criterion: the norm fell below 1/√2 of what it was), which is when
  rounding can leave w short of orthogonal; "twice is enough".
  """
  before = jnp.vdot(w, w, precision=_HIGHEST)
  w = _project_out(basis, w, last_row)
  after = jnp.vdot(w, w, precision=_HIGHEST)
  return lax.cond(after < 0.5 * before,
                  lambda w: _project_out(basis, w, last_row), lambda w: w, w)


def _normalize(v: jax.Array) -> tuple[jax.Array, jax.Array]:
  norm = jnp.sqrt(jnp.vdot(v, v, precision=_HIGHEST))
  return v / jnp.maximum(norm, jnp.finfo(v.dtype).tiny), norm


def _hash_vector(seed: jax.Array, j: jax.Array, dim: int, dtype) -> jax.Array:
  """A pseudo-random vector, uniform in [-1, 1), from a counter hash.

  Used for restarts inside the loop: a few integer operations, much cheaper
  to compile than a PRNG draw (murmur3's 32-bit finaliser on index, step and
  seed).
  """
  x = jnp.arange(dim, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
  x = x ^ (seed + jnp.asarray(j).astype(jnp.uint32) * jnp.uint32(0x85EBCA6B))
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  x = x ^ (x >> 16)
  return (x >> 8).astype(dtype) * (2.0 / (1 << 24)) - 1.0


def _step(matvec: Callable[[jax.Array], jax.Array], seed: jax.Array,
          breakdown_tol: float, j: jax.Array, state: _State) -> _State:
  """One Lanczos iteration: extends the basis by row j + 1."""
  basis, alphas, betas, norm_estimate = state
  v = _row(basis, j)
  w = matvec(v).astype(v.dtype)
  alpha = jnp.vdot(v, w, precision=_HIGHEST)
  beta_prev = jnp.where(j > 0, betas[jnp.maximum(j - 1, 0)], 0)
  w = w - alpha * v - beta_prev * _row(basis, jnp.maximum(j - 1, 0))
  w = _reorthogonalize(basis, w, j)
  w, beta = _normalize(w)
  norm_estimate = jnp.maximum(norm_estimate,
                              jnp.abs(alpha) + beta + beta_prev)
  broke = ~(beta > breakdown_tol * norm_estimate)  # Also catches NaN.

  def restart(_):
    # The Krylov space is invariant: carry on with a fresh pseudo-random
    # direction orthogonal to the basis and a zero coupling, so T stays
    # block-diagonal and every Ritz value is still a true Ritz value of A.
    r = _hash_vector(seed, j, w.shape[0], w.dtype)
    r = _project_out(basis, _project_out(basis, r, j), j)
    return _normalize(r)[0], jnp.zeros_like(beta)

  v_next, beta = lax.cond(broke, restart, lambda _: (w, beta), None)
  basis = basis.at[(j + 1) // BLOCK, (j + 1) % BLOCK].set(v_next)
  return _State(basis, alphas.at[j].set(alpha), betas.at[j].set(beta),
                norm_estimate)


def _ritz(state: _State, size: jax.Array, k: int, return_vectors: bool):
  """Top-k Ritz pairs of the leading `size`×`size` block of T."""
  m = state.alphas.shape[0]
  idx = jnp.arange(m)
  active = idx < size
  off = jnp.where(idx[:-1] + 1 < size, state.betas[:-1], 0)
  # Inactive diagonal entries sit below a Gershgorin lower bound of the
  # active block, so they never enter the top k.
  left = jnp.concatenate([jnp.zeros((1,), off.dtype), jnp.abs(off)])
  right = jnp.concatenate([jnp.abs(off), jnp.zeros((1,), off.dtype)])
  lower = jnp.min(jnp.where(active, state.alphas - left - right, jnp.inf))
  pad = lower - 1 - jnp.abs(lower)
  diag = jnp.where(active, state.alphas, pad)
  tri = jnp.diag(diag) + jnp.diag(off, 1) + jnp.diag(off, -1)
  evals, evecs = jnp.linalg.eigh(tri)
  theta = evals[::-1][:k]
  s = evecs[:, ::-1][:, :k]
  last = jnp.maximum(size - 1, 0)
  residuals = jnp.abs(state.betas[last] * s[last])
  vectors = None
  if return_vectors:
    rows = state.basis.reshape(-1, state.basis.shape[-1])[:m]
    vectors = jnp.matmul(s.T, rows, precision=_HIGHEST)
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
  return theta, vectors, residuals


def start_vector(init: jax.Array | None, key: jax.Array, dim: int,
                 dtype) -> jax.Array:
  """Unit start vector: the sum of the normalised rows of `init`, else random.

  A zero (or missing) `init` gives a random start, so callers can pass zeros
  on a first probe and keep one compiled shape.
  """
  rand = _normalize(jax.random.normal(key, (dim,), dtype))[0]
  if init is None:
    return rand
  init = jnp.asarray(init, dtype).reshape(-1, dim)
  norms = jnp.linalg.norm(init, axis=1, keepdims=True)
  rows = init / jnp.maximum(norms, jnp.finfo(dtype).tiny)
  v, norm = _normalize(rows.sum(axis=0))
  return jnp.where(norm > jnp.sqrt(jnp.finfo(dtype).eps), v, rand)


def lanczos_from(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array,
                 key: jax.Array, *, num_iterations: int, k: int,
                 tol: float | None, check_every: int, return_vectors: bool,
                 breakdown_tol: float) -> LanczosResult:
  """Lanczos from a unit start vector `v0` (see `lanczos`); trace under jit."""
  dim = v0.shape[0]
  m = num_iterations
  dtype = v0.dtype
  basis = jnp.zeros((_num_blocks(m + 1), BLOCK, dim), dtype)
  state = _State(basis.at[0, 0].set(v0), jnp.zeros((m,), dtype),
                 jnp.zeros((m,), dtype), jnp.zeros((), dtype))
  seed = jax.random.bits(key, (), jnp.uint32)
  step = functools.partial(_step, matvec, seed, breakdown_tol)
  if tol is None:
    state = lax.fori_loop(0, m, step, state)
    size = jnp.asarray(m, jnp.int32)
  else:
    def cond(carry):
      size, _, done = carry
      return (size < m) & ~done

    def body(carry):
      size, state, _ = carry
      end = jnp.minimum(size + check_every, m)
      state = lax.fori_loop(size, end, step, state)
      theta, _, res = _ritz(state, end, k, False)
      done = (end >= k) & jnp.all(res <= tol * jnp.abs(theta))
      return end, state, done

    size, state, _ = lax.while_loop(
        cond, body, (jnp.asarray(0, jnp.int32), state, jnp.asarray(False)))
  theta, vectors, res = _ritz(state, size, k, return_vectors)
  report_tol = DEFAULT_REPORT_TOL if tol is None else tol
  converged = jnp.all(res <= report_tol * jnp.abs(theta))
  return LanczosResult(theta, vectors, res, size, converged)


_lanczos_jit = jax.jit(
    lanczos_from,
    static_argnames=('matvec', 'num_iterations', 'k', 'tol', 'check_every',
                     'return_vectors', 'breakdown_tol'))


def lanczos(matvec: Callable[[jax.Array], jax.Array], dim: int, *,
            num_iterations: int, k: int = 1, key: jax.Array | None = None,
            init_vector: jax.Array | None = None, dtype=jnp.float32,
            tol: float | None = None, check_every: int = 2,
            return_vectors: bool = False,
            breakdown_tol: float | None = None) -> LanczosResult:
  """Top-k eigenpairs of a symmetric operator by Lanczos iteration.

  Runs `num_iterations` Lanczos steps with full reorthogonalisation (block
  Gram–Schmidt over the rows filled so far of a basis kept on the device, a
  second pass when the first cancelled much, see `_reorthogonalize`) as one
  compiled `lax.fori_loop` — or, with `tol`, a `lax.while_loop` over blocks of
  `check_every` steps that stops once the top-k residuals are below
  `tol·|θ|` — with no host round trip inside. The compiled program does not
  grow with the iteration count. The small tridiagonal matrix T is
  diagonalised on the device at the end.

  Breakdown (β ≤ `breakdown_tol`·‖A‖ estimate, i.e. the Krylov space is
  invariant, e.g. a low-rank operator or a start vector spanned by k
  eigenvectors) sets that coupling to zero and continues from a random vector
  orthogonal to the basis: T stays exact and block-diagonal, no NaN.

  Args:
    matvec: v -> A v on (dim,) vectors of `dtype`; A symmetric. Must be
      hashable (it is a static argument of the compiled loop).
    dim: size of the vectors.
    num_iterations: maximum number of Lanczos steps m (= operator
      applications), 1 ≤ k ≤ m ≤ dim.
    k: number of top (algebraically largest) eigenpairs returned.
    key: PRNG key for the random start and restarts (default key 0).
    init_vector: warm start, (dim,) or (j, dim); the start vector is the sum
      of the normalised rows (e.g. the previous top-k eigenvectors). Zero
      rows sum to a random start.
    dtype: dtype of the basis and tridiagonal matrix.
    tol: if set, stop early once every top-k residual is ≤ tol·|θ|.
    check_every: steps between residual checks when `tol` is set.
    return_vectors: also return the (k, dim) Ritz vectors.
    breakdown_tol: relative β below which the iteration restarts; default
      10·eps(dtype).

  Returns:
    A `LanczosResult`.

  References:
    C. Lanczos, "An iteration method for the solution of the eigenvalue
    problem of linear differential and integral operators", J. Res. Nat. Bur.
    Standards 45 (1950).
    G. H. Golub and C. F. Van Loan, "Matrix Computations", 4th ed., §10.1–10.3
    (Lanczos, full reorthogonalisation, Ritz residuals).
  """
  if not 1 <= k <= num_iterations <= dim:
    raise ValueError(
        f'need 1 <= k <= num_iterations <= dim, got k={k}, '
        f'num_iterations={num_iterations}, dim={dim}')
  if check_every < 1:
    raise ValueError(f'check_every must be >= 1, got {check_every}')
  dtype = jnp.dtype(dtype)
  if key is None:
    key = jax.random.key(0)
  if breakdown_tol is None:
    breakdown_tol = 10 * float(jnp.finfo(dtype).eps)
  v0 = start_vector(init_vector, key, dim, dtype)
  return _lanczos_jit(matvec, v0, jax.random.fold_in(key, 1),
                      num_iterations=num_iterations, k=k, tol=tol,
                      check_every=check_every, return_vectors=return_vectors,
                      breakdown_tol=breakdown_tol)
