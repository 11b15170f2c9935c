"""Sharpness probes: top Hessian eigenvalues of a loss, compiled once."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from harness.curvature import _block_lanczos
from harness.curvature import _lanczos
from harness.curvature import _operators
from harness.curvature import _settings
from harness.curvature._operators import Batch, HvpMode, LossFn, Params
from harness.curvature._settings import LanczosMethod


class SharpnessResult(NamedTuple):
  """What a sharpness probe measured.

  Attributes:
    eigenvalues: (k,) top eigenvalues of H, or of P^-1/2 H P^-1/2 when a
      preconditioner is given, descending.
    eigenvectors: None unless asked for; else a params-shaped pytree whose
      leaves carry a leading axis of size k (row i is the unit Ritz vector of
      `eigenvalues[i]`). With a preconditioner they are eigenvectors of the
      symmetric P^-1/2 H P^-1/2 (those of P⁻¹H are P^-1/2 times them). They
      are the right `init_vectors` for the next probe.
    residuals: (k,) residual norms ‖A y − θ y‖ of the Ritz pairs.
    num_hvps: Hessian-vector products used (int32 scalar).
    converged: whether every residual is ≤ tol·|θ| (bool scalar; tol is
      1e-3 when no early stopping was asked for).
    loss: the batch-mean loss at params.
    grad_norm: the Euclidean norm of its gradient.
  """

  eigenvalues: jax.Array
  eigenvectors: Params | None
  residuals: jax.Array
  num_hvps: jax.Array
  converged: jax.Array
  loss: jax.Array
  grad_norm: jax.Array


class JointSharpness(NamedTuple):
  """λ(H) and λ(P^-1/2 H P^-1/2) measured together; see `joint_sharpness`.

  Attributes:
    raw: the top eigenvalues of H, as a `SharpnessResult`.
    preconditioned: those of P^-1/2 H P^-1/2 (same eigenvalues as P⁻¹H).
  """

  raw: SharpnessResult
  preconditioned: SharpnessResult


def _flat_init(init_vectors: Any, params: Params, dim: int,
               dtype) -> jax.Array | None:
  """Init vectors as (j, dim): a params pytree, a stacked one, or flat."""
  if init_vectors is None:
    return None
  p_leaves, p_struct = jax.tree.flatten(params)
  i_leaves, i_struct = jax.tree.flatten(init_vectors)
  if i_struct == p_struct:
    shapes = [(jnp.shape(i), jnp.shape(p)) for i, p in zip(i_leaves, p_leaves)]
    if all(i == p for i, p in shapes):
      return ravel_pytree(init_vectors)[0].astype(dtype)[None]
    stacked = all(len(i) == len(p) + 1 and i[1:] == p for i, p in shapes)
    if stacked and len({i[0] for i, _ in shapes}) == 1:
      return jax.vmap(lambda t: ravel_pytree(t)[0])(init_vectors).astype(dtype)
  if len(i_leaves) == 1 and jnp.ndim(i_leaves[0]) in (1, 2):
    flat = jnp.asarray(i_leaves[0], dtype)
    if flat.shape[-1] == dim:
      return flat.reshape(-1, dim)
  raise ValueError(
      'init_vectors must be a params-shaped pytree, one whose leaves have a '
      f'leading axis, or a flat ({dim},) / (j, {dim}) array; got structure '
      f'{i_struct} with shapes {[jnp.shape(x) for x in i_leaves]}')


def _sharpness(loss_fn: LossFn, config: _settings.Config, params: Params,
               batch: Batch,
               preconditioners: tuple[_operators.Preconditioner | None, ...],
               init_vectors: tuple[Any, ...], key: jax.Array | None,
               loss_args: tuple[Any, ...]) -> tuple[SharpnessResult, ...]:
  """One result per preconditioner (None: H itself), from one linearisation
  and stacked Lanczos recurrences."""
  dtype = config.dtype
  if dtype is None:
    dtype = jnp.promote_types(ravel_pytree(params)[0].dtype, jnp.float32)
  if config.block:  # The block's rows are k copies of the one problem.
    preconditioners = preconditioners * config.k
  batch_products = config.batch_products
  if batch_products is None:  # Measured no cheaper on a CPU.
    batch_products = jax.default_backend() != 'cpu'
  op = _operators.hessian_operators(
      loss_fn, params, preconditioners, batch=batch, loss_args=loss_args,
      mode=config.hvp_mode, dtype=dtype, batch_products=batch_products)
  m = config.num_iterations
  if not 1 <= config.k <= m <= op.dim:
    raise ValueError(
        f'need 1 <= k <= num_iterations <= number of parameters, got '
        f'k={config.k}, num_iterations={m}, parameters={op.dim}')
  breakdown_tol = config.breakdown_tol
  if breakdown_tol is None:
    breakdown_tol = 10 * float(jnp.finfo(dtype).eps)
  if key is None:
    key = jax.random.key(config.seed)  # A constant of the compiled program.
  seed = _lanczos.seed_of(key)
  inits = [_flat_init(init, params, op.dim, dtype) for init in init_vectors]
  settings = dict(k=config.k, tol=config.tol, check_every=config.check_every,
                  return_vectors=config.return_vectors,
                  breakdown_tol=breakdown_tol)
  if config.block:
    v0 = _block_lanczos.start_block(inits[0], seed, config.k, op.dim, dtype)
    out = _block_lanczos.block_lanczos(
        op.batched, v0, seed, num_iterations=m // config.k, **settings)
    out = jax.tree.map(lambda x: x[None], out)
  else:
    v0 = _lanczos.start_vectors(inits, seed, op.dim, dtype)
    out = _lanczos.lanczos_stacked(op.products, v0, seed, num_iterations=m,
                                   **settings)
  grad_norm = optax.tree.norm(op.grad)
  results = []
  for b in range(len(init_vectors)):
    vectors = None
    if out.eigenvectors is not None:
      vectors = jax.vmap(op.unravel)(out.eigenvectors[b])
    results.append(SharpnessResult(
        out.eigenvalues[b], vectors, out.residuals[b], out.num_matvecs[b],
        out.converged[b], op.loss, grad_norm))
  return tuple(results)


def _compiler_options(top_level: bool) -> dict[str, Any] | None:
  """XLA options for the probe's program, which only a call from the host
  (not inside another trace) may pass.

  On a CPU, XLA's fusion emitters compile each of the probe's hundred or so
  small fusions separately; without them the program compiled in 1.65 s
  instead of 2.5 s and ran as fast (BENCHMARKS.md, compile option).
  """
  if top_level and jax.default_backend() == 'cpu':
    return {'xla_cpu_use_fusion_emitters': False}
  return None


def _from_host(tree: Any) -> bool:
  """Whether a call with `tree` comes from the host, not from a trace."""
  return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


@functools.cache
def _one_shot(top_level: bool) -> Any:
  """One jitted function for every `sharpness` call (one for calls inside
  another trace): the loss function and the settings are static arguments,
  so jit's cache keys a compilation on them (the loss by identity) and on
  the arguments' shapes, dtypes and shardings. A repeated call with the
  same loss, settings and shapes compiles nothing; a different loss or
  shape never reuses a compilation."""
  return jax.jit(_sharpness, static_argnums=(0, 1),
                 compiler_options=_compiler_options(top_level))


class SharpnessFn:
  """A compiled sharpness probe; see `make_sharpness_fn`.

  Attributes:
    jitted: the underlying `jax.jit` function, with signature
      `(params, batch, preconditioner, init_vectors, key, loss_args)`
      (for `.lower(...)`, `.trace(...)` or cache inspection).
    jitted_joint: the same for `joint`, with `init_vectors` a pair.
  """

  def __init__(self, loss_fn: LossFn, config: _settings.Config,
               validate: bool):
    self._config = config
    self._validate = validate

    def single(params, batch, preconditioner, init_vectors, key, loss_args):
      return _sharpness(loss_fn, config, params, batch, (preconditioner,),
                        (init_vectors,), key, loss_args)[0]

    def joint(params, batch, preconditioner, init_vectors, key, loss_args):
      return JointSharpness(*_sharpness(
          loss_fn, config, params, batch, (None, preconditioner),
          tuple(init_vectors), key, loss_args))

    options = _compiler_options(top_level=True)
    self.jitted = jax.jit(single, compiler_options=options)
    self.jitted_joint = jax.jit(joint, compiler_options=options)
    # Inside another trace a jit takes no compiler options.
    self._nested = jax.jit(single), jax.jit(joint)

  def _checked(self, preconditioner: Any, params: Params) -> Any:
    preconditioner = _operators.as_preconditioner(preconditioner)
    if self._validate and preconditioner is not None:
      preconditioner.validate(params)
    return preconditioner

  def __call__(self, params: Params, batch: Batch = None,
               preconditioner: Any = None, init_vectors: Any = None, *,
               key: jax.Array | None = None,
               loss_args: Sequence[Any] = ()) -> SharpnessResult:
    """Runs the probe.

    Args:
      params: the point, a pytree of arrays (may be sharded/replicated).
      batch: None (the loss closes over its data), or a pytree whose leaves
        have a leading chunk axis `(num_chunks, chunk_size, ...)`; its example
        axis (1) may be sharded across devices.
      preconditioner: None (sharpness of H), a params-shaped pytree giving
        the diagonal of P (entries > 0), or a `Preconditioner`.
      init_vectors: warm start: None, or the previous result's
        `eigenvectors` (a stacked pytree), a params-shaped pytree, or flat
        (dim,) / (j, dim). Zeros give a random start; use
        `initial_vectors(params)` on the first probe to compile only once.
      key: PRNG key for the random start; None for a key made from `seed`
        inside the compiled program (no transfer).
      loss_args: extra positional arguments for `loss_fn` (e.g. model
        state), traced, so new values do not recompile.

    Returns:
      A `SharpnessResult`.

    Raises:
      ValueError: if the preconditioner does not match params or has entries
        that are not finite and > 0 (checked on the host when `validate`).
    """
    jitted = self.jitted if _from_host(params) else self._nested[0]
    return jitted(params, batch, self._checked(preconditioner, params),
                       init_vectors, key, tuple(loss_args))

  def joint(self, params: Params, batch: Batch, preconditioner: Any,
            init_vectors: tuple[Any, Any] = (None, None), *,
            key: jax.Array | None = None,
            loss_args: Sequence[Any] = ()) -> JointSharpness:
    """λ(H) and λ(P^-1/2 H P^-1/2) at one point, in one compiled call.

    The gradient is linearised once; the two Lanczos recurrences advance
    together and each stops on its own residual. While both run, their
    products are one batched call on stacked tangents (`batch_products`,
    the default on an accelerator) or two products in one loop (the
    default on a CPU, where batching saves nothing). The result is what two
    calls would give, from one linearisation and one compiled program.

    Args:
      params, batch, key, loss_args: as in `__call__`.
      preconditioner: P, a params-shaped pytree of its diagonal or a
        `Preconditioner` (not None).
      init_vectors: warm starts of the two problems, (raw, preconditioned),
        each in a form `__call__` takes.

    Returns:
      A `JointSharpness`.

    Raises:
      ValueError: as `__call__`.
    """
    preconditioner = self._checked(preconditioner, params)
    if preconditioner is None:
      raise ValueError('joint needs a preconditioner; call the probe itself '
                       'for H alone')
    if self._config.block:
      raise ValueError('joint advances two single-vector recurrences; make '
                       'the probe with method="single" or "auto"')
    jitted = self.jitted_joint if _from_host(params) else self._nested[1]
    return jitted(params, batch, preconditioner, tuple(init_vectors), key,
                  tuple(loss_args))

  def initial_vectors(self, params: Params) -> Params:
    """Zero warm-start vectors shaped like a result's `eigenvectors`."""
    k = self._config.k
    return jax.tree.map(lambda p: jnp.zeros((k,) + jnp.shape(p), p.dtype),
                        params)


def make_sharpness_fn(loss_fn: LossFn, *, k: int = 1,
                      num_iterations: int = 20, tol: float | None = None,
                      check_every: int = 2, return_vectors: bool = False,
                      dtype: Any = None,
                      hvp_mode: HvpMode | str = HvpMode.AUTO,
                      breakdown_tol: float | None = None, seed: int = 0,
                      method: LanczosMethod | str = LanczosMethod.AUTO,
                      batch_products: bool | None = None,
                      validate: bool = True) -> SharpnessFn:
  """Builds a sharpness probe compiled once and reused at every call.

  The returned `SharpnessFn` is called as
  `fn(params, batch, preconditioner, init_vectors) -> SharpnessResult`.
  Calls with arrays of the same shapes, dtypes and shardings (and the same
  None-ness of `batch`, `preconditioner` and `init_vectors`) reuse one
  compilation. Nothing in it pins a device: with params replicated and the
  batch's example axis sharded over a mesh, the products run sharded and the
  Lanczos vectors stay replicated.

  Args:
    loss_fn: `loss_fn(params, *loss_args)` when called without a batch, else
      `loss_fn(params, chunk, *loss_args)` returning the chunk's mean loss.
    k: number of top eigenvalues.
    num_iterations: maximum Lanczos iterations (= Hessian-vector products).
    tol: if set, stop once every top-k residual ≤ tol·|θ| (checked every
      `check_every` iterations on the device).
    check_every: iterations between residual checks.
    return_vectors: also return the top-k eigenvectors (for warm starts).
    dtype: dtype of the Lanczos basis; None for the params' (≥ float32).
    hvp_mode: an `HvpMode`: 'jvp', 'linearize' or 'auto' (linearize when the
      batch is a single chunk, whose residuals then fit in memory).
    breakdown_tol: relative β below which Lanczos restarts (default
      10·eps).
    seed: seed of the default PRNG key for the random start vector.
    method: a `LanczosMethod`: 'single', 'block' (k ≥ 2; `joint` then
      refuses) or 'auto'.
    batch_products: how `joint` takes the two problems' products: in one
      batched call (True), one after the other in a loop (False: as fast on
      a CPU, where batching saves nothing, and quicker to compile), or None
      for False on a CPU and True on an accelerator.
    validate: check the preconditioner on the host before each call.

  Returns:
    A `SharpnessFn`.

  References:
    J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
    arXiv:2207.14484 (2022): preconditioned sharpness λ1(P^-1/2 H P^-1/2).
    Z. Yao et al., "PyHessian: Neural Networks Through the Lens of the
    Hessian", IEEE BigData (2020), arXiv:1912.07145.
  """
  config = _settings.checked_config(
      k=k, num_iterations=num_iterations, tol=tol, check_every=check_every,
      return_vectors=return_vectors, dtype=dtype, hvp_mode=hvp_mode,
      breakdown_tol=breakdown_tol, seed=seed, method=method,
      batch_products=batch_products)
  return SharpnessFn(loss_fn, config, validate)


def sharpness(loss_fn: LossFn, params: Params, *, batch: Batch = None,
              k: int = 1, preconditioner: Any = None,
              num_iterations: int = 20, tol: float | None = None,
              init_vectors: Any = None, return_vectors: bool = False,
              dtype: Any = None, seed: int = 0,
              hvp_mode: HvpMode | str = HvpMode.AUTO, check_every: int = 2,
              method: LanczosMethod | str = LanczosMethod.AUTO,
              loss_args: Sequence[Any] = ()) -> SharpnessResult:
  """Top-k eigenvalues of the loss Hessian (or preconditioned Hessian).

  Computes λ1 ≥ … ≥ λk of H, the Hessian of the batch-mean loss at `params`,
  or of P^-1/2 H P^-1/2 (same eigenvalues as P⁻¹H) when `preconditioner` is
  given, by Lanczos with full reorthogonalisation on Hessian-vector products
  (forward-over-reverse). The first call with a loss function, settings and
  argument shapes compiles; later calls with the same ones reuse that
  compilation (the loss is told apart by identity, so define it once rather
  than as a new lambda at every call). `make_sharpness_fn` gives the same
  probe as an object to keep.

  Args:
    loss_fn: `loss_fn(params, *loss_args)`, or `loss_fn(params, chunk,
      *loss_args)` when `batch` is given.
    params: the point, a pytree of arrays. For a float64 Hessian pass
      float64 params with `jax_enable_x64` on.
    batch: None, or a pytree whose leaves have a leading chunk axis
      `(num_chunks, chunk_size, ...)`; H is the mean over chunks.
    k: number of top eigenvalues.
    preconditioner: None; a params-shaped pytree with the diagonal of P
      (finite entries > 0, else ValueError); or a `Preconditioner` for a
      non-diagonal P (implements `apply_inv_sqrt(tree) -> P^-1/2 tree`).
    num_iterations: maximum Lanczos iterations (= Hessian-vector products).
    tol: if set, stop early once every top-k residual ≤ tol·|θ|.
    init_vectors: warm start (e.g. a previous result's `eigenvectors`): a
      stacked or single params-shaped pytree, or flat (dim,) / (j, dim).
    return_vectors: also return the eigenvectors, as a params-shaped pytree
      with a leading axis of size k.
    dtype: dtype of the Lanczos basis; None for the params' (≥ float32).
    seed: seed of the random start vector.
    hvp_mode: 'jvp', 'linearize' or 'auto' (see `HvpMode`).
    check_every: iterations between residual checks when `tol` is set.
    method: 'single', 'block' or 'auto' (see `LanczosMethod`).
    loss_args: extra positional arguments for `loss_fn`.

  Returns:
    A `SharpnessResult`.

  Raises:
    ValueError: on a preconditioner that does not match `params` or has
      entries that are not finite and > 0, or inconsistent sizes.

  Example:
    >>> loss = lambda w: jnp.sum(jnp.array([1.0, 3.0]) * w ** 2) / 2
    >>> float(sharpness(loss, jnp.ones(2), num_iterations=2).eigenvalues[0])
    3.0

  References:
    C. Lanczos (1950); G. H. Golub and C. F. Van Loan, "Matrix Computations";
    J. Cohen et al., arXiv:2207.14484 (2022); Z. Yao et al., PyHessian (2020).
  """
  config = _settings.checked_config(
      k=k, num_iterations=num_iterations, tol=tol, check_every=check_every,
      return_vectors=return_vectors, dtype=dtype, hvp_mode=hvp_mode,
      breakdown_tol=None, seed=seed, method=method)
  preconditioner = _operators.as_preconditioner(preconditioner)
  if preconditioner is not None:
    preconditioner.validate(params)
  one_shot = _one_shot(_from_host(params))
  return one_shot(loss_fn, config, params, batch, (preconditioner,),
                  (init_vectors,), None, tuple(loss_args))[0]


def joint_sharpness(loss_fn: LossFn, params: Params, preconditioner: Any, *,
                    batch: Batch = None, k: int = 1,
                    num_iterations: int = 20, tol: float | None = None,
                    init_vectors: tuple[Any, Any] = (None, None),
                    return_vectors: bool = False, dtype: Any = None,
                    seed: int = 0, hvp_mode: HvpMode | str = HvpMode.AUTO,
                    check_every: int = 2, batch_products: bool | None = None,
                    loss_args: Sequence[Any] = ()) -> JointSharpness:
  """Top-k eigenvalues of H and of P^-1/2 H P^-1/2 together.

  What `sharpness` gives without and with `preconditioner`, from one
  linearisation of the gradient and two Lanczos recurrences advanced
  together, each stopping on its own residual (see `SharpnessFn.joint`).
  Compiled once per loss, settings and shapes, like `sharpness`.

  Args:
    loss_fn, params, batch, k, num_iterations, tol, return_vectors, dtype,
      seed, hvp_mode, check_every, loss_args: as in `sharpness`.
    batch_products: as in `make_sharpness_fn`.
    preconditioner: P: a params-shaped pytree with its diagonal, or a
      `Preconditioner`.
    init_vectors: warm starts (raw, preconditioned), each as in `sharpness`.

  Returns:
    A `JointSharpness`.

  Raises:
    ValueError: as `sharpness`, or no preconditioner.

  Example:
    >>> loss = lambda w: jnp.sum(jnp.array([1.0, 3.0]) * w ** 2) / 2
    >>> both = joint_sharpness(loss, jnp.ones(2), jnp.array([1.0, 4.0]),
    ...                        num_iterations=2)
    >>> [round(float(r.eigenvalues[0]), 4) for r in both]  # H, P^-1/2 H P^-1/2
    [3.0, 1.0]
  """
  config = _settings.checked_config(
      k=k, num_iterations=num_iterations, tol=tol, check_every=check_every,
      return_vectors=return_vectors, dtype=dtype, hvp_mode=hvp_mode,
      breakdown_tol=None, seed=seed, batch_products=batch_products)
  preconditioner = _operators.as_preconditioner(preconditioner)
  if preconditioner is None:
    raise ValueError('joint_sharpness needs a preconditioner; use sharpness '
                     'for H alone')
  preconditioner.validate(params)
  return JointSharpness(*_one_shot(_from_host(params))(
      loss_fn, config, params, batch, (None, preconditioner),
      tuple(init_vectors), None, tuple(loss_args)))
