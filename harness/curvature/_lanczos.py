"""Lanczos with full reorthogonalisation, compiled as one loop on the device.

Several independent symmetric problems can advance together: their
recurrences are stacked along a leading axis, and each iteration asks one
function for all of their products at once (`Products`), so problems that
share work (the Hessian and the preconditioned Hessian at one point share
the linearisation of the gradient) get it in one batched call. Each problem
stops on its own residual; a stopped problem takes no more products.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence, TypeVar

import jax
from jax import lax
import jax.numpy as jnp

_HIGHEST = lax.Precision.HIGHEST
_S = TypeVar('_S')
# Reported `converged` uses this tolerance when no early stopping is asked for.
DEFAULT_REPORT_TOL = 1e-3

# (vectors (B, n), active (B,) bool) -> products (B, n). Rows of inactive
# problems are never read, so the function may skip their products.
Products = Callable[[jax.Array, jax.Array], jax.Array]


class LanczosResult(NamedTuple):
  """Top-k Ritz pairs of a symmetric operator.

  From `lanczos_stacked` every field has a leading axis, one row a problem.

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
  """The stacked recurrences; every field has a leading problem axis B."""

  basis: jax.Array  # (B, num_blocks, BLOCK, n): rows 0..size filled.
  alphas: jax.Array  # (B, m) diagonal of T.
  betas: jax.Array  # (B, m) betas[i] couples rows i and i + 1.
  norm_estimate: jax.Array  # (B,) running max of |α| + β terms, ~‖A‖.
  size: jax.Array  # (B,) int32: iterations done (rows of T filled).
  done: jax.Array  # (B,) bool: stopped on its residual.


def _num_blocks(num_rows: int) -> int:
  return -(-num_rows // BLOCK)


def _rows(basis: jax.Array, i: jax.Array) -> jax.Array:
  """Row i[b] of each problem's basis: (B, n). Slices, not a gather: a
  problem at a time (B is small), so XLA reads only the rows."""
  return jnp.stack([
      lax.dynamic_index_in_dim(
          lax.dynamic_index_in_dim(basis[b], i[b] // BLOCK, keepdims=False),
          i[b] % BLOCK, keepdims=False) for b in range(basis.shape[0])])


def _set_rows(basis: jax.Array, i: jax.Array, rows: jax.Array) -> jax.Array:
  """The basis with row i[b] of problem b set to rows[b], in place (an
  update slice a problem, where a scatter would copy the basis)."""
  zero = jnp.zeros((), i.dtype)
  for b in range(basis.shape[0]):
    basis = lax.dynamic_update_slice(
        basis, rows[b][None, None, None],
        (zero + b, i[b] // BLOCK, i[b] % BLOCK, zero))
  return basis


def _sum_squares(w: jax.Array) -> jax.Array:
  return jnp.sum(w * w, axis=-1)


def _project_out(basis: jax.Array, w: jax.Array,
                 last_row: jax.Array) -> jax.Array:
  """w minus its projection on rows 0..last_row, block by block (block MGS).

  Rows past a problem's filled ones are zero, so they project nothing, and
  one bound (the largest filled row of any problem) serves them all.
  """

  def body(b, w):
    block = basis[:, b]
    coeffs = jnp.einsum('pkn,pn->pk', block, w, precision=_HIGHEST)
    return w - jnp.einsum('pk,pkn->pn', coeffs, block, precision=_HIGHEST)

  return lax.fori_loop(0, last_row // BLOCK + 1, body, w)


def _orthogonalize(basis: jax.Array, w: jax.Array, last_row: jax.Array,
                   rows: jax.Array) -> jax.Array:
  """Full reorthogonalisation against rows 0..last_row.

  A second pass runs only when the first removed much of a row of w that
  is asked for (`rows`; DGKS criterion: the norm fell below 1/√2 of what it
  was), which is when rounding can leave it short of orthogonal; "twice is
  enough". Both passes are one loop, so the program holds one projection.
  """

  def again(carry):
    w, before, passes = carry
    dropped = rows & (_sum_squares(w) < 0.5 * before)
    return (passes == 0) | ((passes == 1) & jnp.any(dropped))

  def project(carry):
    w, _, passes = carry
    return _project_out(basis, w, last_row), _sum_squares(w), passes + 1

  w, _, _ = lax.while_loop(again, project,
                           (w, _sum_squares(w), jnp.asarray(0, jnp.int32)))
  return w


def _normalize(v: jax.Array) -> tuple[jax.Array, jax.Array]:
  norm = jnp.sqrt(_sum_squares(v))
  tiny = jnp.finfo(v.dtype).tiny
  return v / jnp.maximum(norm, tiny)[..., None], norm


def _hash_vectors(seed: jax.Array, salt: jax.Array, dim: int,
                  dtype) -> jax.Array:
  """Pseudo-random vectors, uniform in [-1, 1), one row per entry of `salt`.

  Used for the start vector and for restarts inside the loop: a few integer
  operations, much cheaper to compile than a PRNG draw (murmur3's 32-bit
  finaliser on index, salt and seed).
  """
  salt = jnp.asarray(salt).astype(jnp.uint32)[..., None]
  x = jnp.arange(dim, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
  x = x ^ (seed + salt * jnp.uint32(0x85EBCA6B))
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE35)
  x = x ^ (x >> 16)
  return (x >> 8).astype(dtype) * (2.0 / (1 << 24)) - 1.0


def seed_of(key: jax.Array) -> jax.Array:
  """A uint32 seed from a PRNG key (typed or raw), without a PRNG draw."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  words = jnp.ravel(key).astype(jnp.uint32)
  seed = jnp.uint32(0x811C9DC5)
  for i in range(words.shape[0]):
    seed = (seed ^ words[i]) * jnp.uint32(0x01000193)
  return seed


# Salts of the hash vectors: restarts use (iteration, problem, attempt);
# the start vector one of its own.
_START_SALT = 0x5EED
_ATTEMPTS = 2  # The Lanczos vector, then (on breakdown) a random one.


def _next_rows(basis: jax.Array, w: jax.Array, last_row: jax.Array,
               norm_floor: jax.Array, active: jax.Array, seed: jax.Array,
               salt: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The next Lanczos vectors and their couplings β from the residuals w.

  On breakdown (β ≤ `norm_floor`: the Krylov space is invariant) the
  coupling is zero and the next vector a pseudo-random one orthogonalised
  in a second attempt of the same loop, so T stays exact and
  block-diagonal and every Ritz value is still a true Ritz value of A.
  """

  def again(carry):
    _, _, redo, attempt = carry
    return (attempt == 0) | ((attempt < _ATTEMPTS) & jnp.any(redo))

  def attempt_once(carry):
    w, beta, redo, attempt = carry
    fresh, norm = _normalize(_orthogonalize(basis, w, last_row, redo))
    beta = jnp.where(attempt == 0, norm, beta)
    broke = redo & ~(norm > norm_floor)  # Also catches NaN.
    beta = jnp.where(broke, 0, beta)
    w = jnp.where(redo[:, None], fresh, w)
    w = lax.cond(jnp.any(broke), lambda w: jnp.where(
        broke[:, None], _hash_vectors(seed, salt * _ATTEMPTS + attempt,
                                      w.shape[-1], w.dtype), w),
                 lambda w: w, w)
    return w, beta, broke, attempt + 1

  w, beta, _, _ = lax.while_loop(
      again, attempt_once,
      (w, jnp.zeros(w.shape[:1], w.dtype), active, jnp.asarray(0, jnp.int32)))
  return w, beta


def _step(products: Products, seed: jax.Array, breakdown_tol: float, m: int,
          state: _State) -> _State:
  """One iteration of every active problem: extends its basis by a row."""
  basis, alphas, betas, norm_estimate, size, done = state
  active = ~done & (size < m)
  j = size
  v = _rows(basis, j)
  w = products(v, active).astype(v.dtype)
  alpha = jnp.sum(v * w, axis=-1)
  before = jnp.maximum(j - 1, 0)
  beta_prev = jnp.where(j > 0, jnp.take_along_axis(betas, before[:, None],
                                                   axis=1)[:, 0], 0)
  w = w - alpha[:, None] * v - beta_prev[:, None] * _rows(basis, before)
  # The norm of the new residual is part of the scale it is judged by, as
  # |α| + β + β_prev bounds a row of T; approximated by the first pass.
  floor = breakdown_tol * jnp.maximum(
      norm_estimate, jnp.abs(alpha) + beta_prev + jnp.sqrt(_sum_squares(w)))
  last_row = jnp.max(jnp.where(active, j, 0))
  salt = j * w.shape[0] + jnp.arange(w.shape[0])
  v_next, beta = _next_rows(basis, w, last_row, floor, active, seed, salt)
  # Inactive problems keep everything as it was.
  keep = lambda new, old: jnp.where(  # noqa: E731
      active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)
  problem = jnp.arange(w.shape[0])
  row = (j + 1) % (basis.shape[1] * BLOCK)
  basis = _set_rows(basis, row, keep(v_next, _rows(basis, row)))
  column = jnp.minimum(j, m - 1)
  alphas = alphas.at[problem, column].set(keep(alpha, alphas[problem,
                                                               column]))
  betas = betas.at[problem, column].set(keep(beta, betas[problem, column]))
  norm_estimate = keep(jnp.maximum(norm_estimate,
                                   jnp.abs(alpha) + beta + beta_prev),
                       norm_estimate)
  return _State(basis, alphas, betas, norm_estimate,
                size + active.astype(size.dtype), done)


class _Ritz(NamedTuple):
  """Top-k Ritz values, T's eigenvectors for them, and their residuals."""

  theta: jax.Array  # (k,) descending.
  s: jax.Array  # (m, k) eigenvectors of T (zero past the filled rows).
  residuals: jax.Array  # (k,)


def _ritz(alphas: jax.Array, betas: jax.Array, size: jax.Array,
          k: int) -> _Ritz:
  """Top-k Ritz pairs of the leading `size`×`size` block of one T."""
  m = alphas.shape[0]
  idx = jnp.arange(m)
  active = idx < size
  off = jnp.where(idx[:-1] + 1 < size, betas[:-1], 0)
  # Inactive diagonal entries sit below a Gershgorin lower bound of the
  # active block, so they never enter the top k.
  left = jnp.concatenate([jnp.zeros((1,), off.dtype), jnp.abs(off)])
  right = jnp.concatenate([jnp.abs(off), jnp.zeros((1,), off.dtype)])
  lower = jnp.min(jnp.where(active, alphas - left - right, jnp.inf))
  pad = lower - 1 - jnp.abs(lower)
  diag = jnp.where(active, alphas, pad)
  tri = jnp.diag(diag) + jnp.diag(off, 1) + jnp.diag(off, -1)
  evals, evecs = jnp.linalg.eigh(tri)
  s = evecs[:, ::-1][:, :k]
  last = jnp.maximum(size - 1, 0)
  return _Ritz(evals[::-1][:k], s, jnp.abs(betas[last] * s[last]))


def _stacked_ritz(state: _State, k: int) -> _Ritz:
  return jax.vmap(functools.partial(_ritz, k=k))(state.alphas, state.betas,
                                                state.size)


def _ritz_vectors(basis: jax.Array, s: jax.Array) -> jax.Array:
  """Unit Ritz vectors (B, k, dim) from T's eigenvectors s (B, m, k)."""
  rows = basis.reshape(basis.shape[0], -1, basis.shape[-1])[:, :s.shape[1]]
  vectors = jnp.einsum('pmk,pmn->pkn', s, rows, precision=_HIGHEST)
  return vectors / jnp.linalg.norm(vectors, axis=-1, keepdims=True)


def start_vectors(inits: Sequence[jax.Array | None], seed: jax.Array,
                  dim: int, dtype) -> jax.Array:
  """Unit start vectors, one row per problem: (len(inits), dim).

  Row b is the sum of the normalised rows of `inits[b]` ((dim,) or (j,
  dim)), or pseudo-random when it is None. A zero `inits[b]` gives a random
  start too, so callers can pass zeros on a first probe and keep one
  compiled shape. The random row is the same for every problem, so a
  problem starts where it would alone.
  """
  salts = jnp.full((len(inits),), _START_SALT)
  rand = _normalize(_hash_vectors(seed, salts, dim, dtype))[0]
  sums = []
  for init in inits:
    if init is None:
      sums.append(jnp.zeros((dim,), dtype))
    else:
      rows = _normalize(jnp.asarray(init, dtype).reshape(-1, dim))[0]
      sums.append(rows.sum(axis=0))
  v, norm = _normalize(jnp.stack(sums))
  return jnp.where((norm > jnp.sqrt(jnp.finfo(dtype).eps))[:, None], v, rand)


def _steps(step: Callable[[_S], _S], running: Callable[[_S], jax.Array],
           count: int, state: _S) -> _S:
  """Up to `count` steps while `running(state)`; a while loop, so the state
  (the basis above all) stays in place rather than passing through a
  conditional at every step."""

  def more(carry):
    i, state = carry
    return (i < count) & running(state)

  def one(carry):
    i, state = carry
    return i + 1, step(state)

  return lax.while_loop(more, one, (jnp.asarray(0, jnp.int32), state))[1]


def lanczos_stacked(products: Products, v0: jax.Array, seed: jax.Array, *,
                    num_iterations: int, k: int, tol: float | None,
                    check_every: int, return_vectors: bool,
                    breakdown_tol: float) -> LanczosResult:
  """Lanczos on B problems at once, from unit start vectors v0 (B, dim).

  Each iteration asks `products` for the products of every problem still
  running; a problem stops once its top-k residuals are ≤ tol·|θ| (checked
  every `check_every` iterations) or at `num_iterations`. Trace under jit.

  Returns:
    A `LanczosResult` whose fields have a leading axis of size B.
  """
  num_problems, dim = v0.shape
  m = num_iterations
  dtype = v0.dtype
  basis = jnp.zeros((num_problems, _num_blocks(m + 1), BLOCK, dim), dtype)
  zeros = jnp.zeros((num_problems, m), dtype)
  state = _State(basis.at[:, 0, 0].set(v0), zeros, zeros,
                 jnp.zeros((num_problems,), dtype),
                 jnp.zeros((num_problems,), jnp.int32),
                 jnp.zeros((num_problems,), bool))
  step = functools.partial(_step, products, seed, breakdown_tol, m)
  if tol is None:
    state = lax.fori_loop(0, m, lambda _, s: step(s), state)
    ritz = _stacked_ritz(state, k)
  else:
    running = lambda s: jnp.any(~s.done & (s.size < m))  # noqa: E731

    def block(carry):
      state, _ = carry
      state = _steps(step, running, check_every, state)
      ritz = _stacked_ritz(state, k)
      converged = (state.size >= k) & jnp.all(
          ritz.residuals <= tol * jnp.abs(ritz.theta), axis=1)
      return state._replace(done=state.done | converged), ritz

    # The last check's Ritz pairs are the result: T is diagonalised in one
    # place in the program.
    empty = jax.eval_shape(lambda s: _stacked_ritz(s, k), state)
    state, ritz = lax.while_loop(
        lambda carry: running(carry[0]), block,
        (state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), empty)))
  vectors = _ritz_vectors(state.basis, ritz.s) if return_vectors else None
  report_tol = DEFAULT_REPORT_TOL if tol is None else tol
  converged = jnp.all(ritz.residuals <= report_tol * jnp.abs(ritz.theta),
                      axis=1)
  return LanczosResult(ritz.theta, vectors, ritz.residuals, state.size,
                       converged)


def lanczos_from(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array,
                 seed: jax.Array, *, num_iterations: int, k: int,
                 tol: float | None, check_every: int, return_vectors: bool,
                 breakdown_tol: float) -> LanczosResult:
  """Lanczos from a unit start vector `v0` (see `lanczos`); trace under jit."""
  out = lanczos_stacked(
      lambda v, active: matvec(v[0])[None], v0[None], seed,
      num_iterations=num_iterations, k=k, tol=tol, check_every=check_every,
      return_vectors=return_vectors, breakdown_tol=breakdown_tol)
  return jax.tree.map(lambda x: x[0], out)


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
  second pass when the first cancelled much, see `_orthogonalize`) as one
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
    key: PRNG key seeding the pseudo-random start and restarts (default
      key 0).
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
  seed = seed_of(key)
  v0 = start_vectors([init_vector], seed, dim, dtype)[0]
  return _lanczos_jit(matvec, v0, seed, num_iterations=num_iterations, k=k,
                      tol=tol, check_every=check_every,
                      return_vectors=return_vectors,
                      breakdown_tol=breakdown_tol)
