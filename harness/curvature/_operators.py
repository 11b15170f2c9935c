"""Gradients, Hessian-vector products and preconditioners on any JAX loss.

A loss is either `loss_fn(params, *loss_args)` (closing over its data) or,
when a `batch` is given, `loss_fn(params, chunk, *loss_args)` where every leaf
of `batch` has a leading chunk axis `(num_chunks, chunk_size, ...)` and
`chunk` is one slice along it. The batch loss is the mean of the chunk losses
(chunks are equal in size, so the mean of chunk means is the batch mean), and
gradients and Hessian-vector products are accumulated over the chunks with
`lax.scan`, so memory stays that of one chunk.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import typing
from typing import Any, Callable, NamedTuple, Sequence

import jax
from jax import lax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from workloads import chunks

Params = Any  # A pytree of arrays.
Batch = Any  # A pytree of arrays with a leading chunk axis, or None.
LossFn = Callable[..., jax.Array]


class HvpMode(str, enum.Enum):
  """How Hessian-vector products are formed inside Lanczos.

  Attributes:
    JVP: forward-over-reverse `jax.jvp(jax.grad(loss))` at every product; the
      primal forward and backward passes are recomputed each time. Memory is
      that of one chunk.
    LINEARIZE: `jax.linearize(jax.grad(loss))` once, then only the tangent
      computation at every product. Keeps the residuals (activations) of the
      whole batch in memory, all chunks together.
    AUTO: LINEARIZE when the batch is one chunk (or there is no batch, the
      data being closed over), JVP otherwise.
  """

  JVP = 'jvp'
  LINEARIZE = 'linearize'
  AUTO = 'auto'


def _stateless(loss_fn: LossFn) -> chunks.ChunkLossFn:
  """`loss_fn(params, chunk, *args)` as a chunk loss with an empty state."""
  return lambda params, state, chunk, *args: (loss_fn(params, chunk, *args),
                                              state)


def _mean_loss_and_grad(loss_fn: LossFn, batch: Batch,
                        loss_args: Sequence[Any]) -> Callable[[Params], Any]:
  """params -> (loss, grad) of the batch-mean loss, scanning over chunks."""
  if batch is None:
    value_and_grad = jax.value_and_grad(loss_fn)
    return lambda params: value_and_grad(params, *loss_args)

  def fn(params):
    (loss, _), grad = chunks.mean_loss_and_grad(
        _stateless(loss_fn), params, batch, loss_args=loss_args)
    return loss, grad

  return fn


def loss_and_grad(loss_fn: LossFn, params: Params, *, batch: Batch = None,
                  loss_args: Sequence[Any] = ()) -> tuple[jax.Array, Params]:
  """The batch-mean loss and its gradient.

  Args:
    loss_fn: `loss_fn(params, *loss_args)` if `batch` is None, else
      `loss_fn(params, chunk, *loss_args)` returning one chunk's mean loss.
    params: the point, a pytree of arrays.
    batch: None, or a pytree whose leaves have a leading chunk axis.
    loss_args: extra positional arguments for `loss_fn` (e.g. model state).

  Returns:
    `(loss, grad)`, `grad` shaped like `params`.
  """
  return _mean_loss_and_grad(loss_fn, batch, tuple(loss_args))(params)


def hvp(loss_fn: LossFn, params: Params, tangent: Params, *,
        batch: Batch = None, loss_args: Sequence[Any] = ()) -> Params:
  """Hessian-vector product H·tangent by forward-over-reverse differentiation.

  The product is `jax.jvp(grad(loss), (params,), (tangent,))`; over a chunked
  batch it is the mean of the per-chunk products, accumulated by `lax.scan`.

  Args:
    loss_fn: as in `loss_and_grad`.
    params: the point.
    tangent: a pytree shaped like `params`.
    batch: None, or a pytree whose leaves have a leading chunk axis.
    loss_args: extra positional arguments for `loss_fn`.

  Returns:
    H·tangent, shaped like `params`.
  """
  grad_fn = _mean_loss_and_grad(loss_fn, batch, tuple(loss_args))
  _, (_, out) = jax.jvp(grad_fn, (params,), (tangent,))
  return out


@typing.runtime_checkable
class Preconditioner(typing.Protocol):
  """Extension point for a symmetric positive definite preconditioner P.

  Preconditioned sharpness is λ1(P^-1/2 H P^-1/2), so Lanczos only needs
  P^-1/2 applied to a params-shaped pytree. Anything with these three
  methods is a Preconditioner, by structure: a submission builds its own
  (e.g. `submissions.eigenbasis.EigenbasisPreconditioner`, for Shampoo and
  SOAP) without importing the harness, and a class may also subclass this
  one to inherit `validate` and `norm`. `DiagonalPreconditioner` is the
  diagonal special case. To be passed to a compiled sharpness function an
  implementation must be a registered pytree (e.g. via
  `jax.tree_util.register_dataclass`) whose array state is in its leaves.
  """

  @abc.abstractmethod
  def apply_inv_sqrt(self, tree: Params) -> Params:
    """Returns P^-1/2 · tree for a params-shaped pytree."""

  def validate(self, params: Params) -> None:
    """Raises ValueError if the preconditioner does not fit `params`."""
    del params

  def norm(self) -> jax.Array | None:
    """‖P‖_F, recorded with each probe; None when it is not known."""
    return None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DiagonalPreconditioner(Preconditioner):
  """P = diag(diagonal), with `diagonal` a params-shaped pytree of entries > 0.

  Attributes:
    diagonal: the diagonal of P, a pytree with the structure and leaf shapes
      of the parameters.
  """

  diagonal: Params

  def apply_inv_sqrt(self, tree: Params) -> Params:
    return jax.tree.map(lambda v, d: v * lax.rsqrt(d).astype(v.dtype), tree,
                        self.diagonal)

  def validate(self, params: Params) -> None:
    validate_diagonal(self.diagonal, params)

  def norm(self) -> jax.Array:
    return optax.tree.norm(self.diagonal)


@jax.jit
def _bad_entry_counts(leaves: list[jax.Array]) -> jax.Array:
  return jnp.stack([jnp.sum(~(jnp.isfinite(d) & (d > 0))) for d in leaves])


def validate_diagonal(diagonal: Params, params: Params) -> None:
  """Checks that `diagonal` matches `params` and has finite entries > 0.

  The value check needs concrete arrays; under a trace it is skipped.

  Raises:
    ValueError: naming the problem (structure, leaf shape, or the leaf with
      entries that are not finite and > 0).
  """
  p_struct = jax.tree.structure(params)
  d_struct = jax.tree.structure(diagonal)
  if p_struct != d_struct:
    raise ValueError(
        f'preconditioner structure does not match params: expected '
        f'{p_struct}, got {d_struct}')
  d_leaves = jax.tree_util.tree_flatten_with_path(diagonal)[0]
  for (path, d), p in zip(d_leaves, jax.tree.leaves(params)):
    name = jax.tree_util.keystr(path) or '<root>'
    if jnp.shape(d) != jnp.shape(p):
      raise ValueError(
          f'preconditioner leaf {name} has shape {jnp.shape(d)}, params leaf '
          f'has shape {jnp.shape(p)}')
  concrete = [(path, d) for path, d in d_leaves
              if not isinstance(d, jax.core.Tracer)]
  if not concrete:
    return
  # One compiled reduction, one small transfer: bad entries per leaf.
  counts = _bad_entry_counts([d for _, d in concrete])
  if isinstance(counts, jax.core.Tracer):  # Called inside another trace.
    return
  counts = jax.device_get(counts)
  for (path, d), count in zip(concrete, counts):
    if count:
      name = jax.tree_util.keystr(path) or '<root>'
      raise ValueError(
          f'preconditioner diagonal must be finite and > 0 everywhere: leaf '
          f'{name} has {int(count)} bad entries (min '
          f'{float(jax.device_get(jnp.min(d)))!r})')


def as_preconditioner(preconditioner: Any) -> Preconditioner | None:
  """None stays None; a Preconditioner is kept; other pytrees are diagonals."""
  if preconditioner is None or isinstance(preconditioner, Preconditioner):
    return preconditioner
  return DiagonalPreconditioner(preconditioner)


class FlatOperator(NamedTuple):
  """A symmetric operator on flat vectors, with what was computed on the way.

  Attributes:
    matvec: flat vector (dim,) -> flat vector (dim,), in the basis dtype.
    dim: number of parameters.
    unravel: flat vector -> params-shaped pytree.
    loss: the batch-mean loss at params.
    grad: its gradient, shaped like params.
  """

  matvec: Callable[[jax.Array], jax.Array]
  dim: int
  unravel: Callable[[jax.Array], Params]
  loss: jax.Array
  grad: Params


class StackedOperators(NamedTuple):
  """P_b^-1/2 H P_b^-1/2 for several P_b, sharing one linearisation of the
  gradient; `products` applies them to a stack of flat vectors at once.

  Attributes:
    products: (vectors (B, dim), active (B,) bool) -> (B, dim): the
      products of the active problems, zeros in the rows of the others.
    batched: vectors (B, dim) -> (B, dim), the batched product of all.
    dim: number of parameters.
    unravel: flat vector -> params-shaped pytree.
    loss: the batch-mean loss at params.
    grad: its gradient, shaped like params.
  """

  products: Callable[[jax.Array, jax.Array], jax.Array]
  batched: Callable[[jax.Array], jax.Array]
  dim: int
  unravel: Callable[[jax.Array], Params]
  loss: jax.Array
  grad: Params


def resolve_mode(mode: HvpMode | str, batch: Batch) -> HvpMode:
  """Turns AUTO into JVP or LINEARIZE for this batch."""
  mode = HvpMode(mode)
  if mode is not HvpMode.AUTO:
    return mode
  if batch is None or chunks.num_chunks(batch) == 1:
    return HvpMode.LINEARIZE
  return HvpMode.JVP


def _gradient_tangent_map(loss_fn: LossFn, params: Params, batch: Batch,
                          loss_args: Sequence[Any], mode: HvpMode | str
                          ) -> tuple[jax.Array, Params, Callable[[Params],
                                                                  Params]]:
  """The loss, its gradient, and tangent -> H·tangent at `params`."""
  grad_fn = _mean_loss_and_grad(loss_fn, batch, tuple(loss_args))
  if resolve_mode(mode, batch) is HvpMode.LINEARIZE:
    (loss, grad), lin = jax.linearize(grad_fn, params)
    return loss, grad, lambda t: lin(t)[1]
  loss, grad = grad_fn(params)
  return loss, grad, lambda t: jax.jvp(grad_fn, (params,), (t,))[1][1]


def hessian_operators(loss_fn: LossFn, params: Params,
                      preconditioners: Sequence[Preconditioner | None], *,
                      batch: Batch = None, loss_args: Sequence[Any] = (),
                      mode: HvpMode | str = HvpMode.AUTO,
                      dtype: Any = None,
                      batch_products: bool = True) -> StackedOperators:
  """v_b -> P_b^-1/2 H P_b^-1/2 v_b for every P_b (H alone where P_b is
  None), on flat vectors, from one linearisation of the gradient.

  Call inside `jax.jit`: with LINEARIZE the linearisation is traced once and
  reused by every product; with JVP a batched product recomputes the primal
  once for all the stacked tangents.

  `products` either batches (one call on the stacked tangents while every
  problem runs, the running problems' products one after another once some
  have stopped: two copies of the tangent map in the program) or always
  takes them one after another in a loop (one copy, no batching), which is
  as fast where a batched product costs what its single products cost, as
  on a CPU, and compiles faster (BENCHMARKS.md).

  Args:
    loss_fn: as in `loss_and_grad`.
    params: the point.
    preconditioners: one entry per problem, None or a `Preconditioner`.
    batch: None, or a pytree whose leaves have a leading chunk axis.
    loss_args: extra positional arguments for `loss_fn`.
    mode: an `HvpMode` (or its value).
    dtype: dtype of the flat vectors; None for the params' dtype (at least
      float32).
    batch_products: batched products (True) or one after another.

  Returns:
    A `StackedOperators`.
  """
  flat_params, unravel = ravel_pytree(params)
  if dtype is None:
    dtype = jnp.promote_types(flat_params.dtype, jnp.float32)
  loss, grad, tree_hvp = _gradient_tangent_map(loss_fn, params, batch,
                                               loss_args, mode)
  scales = [(lambda t: t) if p is None else p.apply_inv_sqrt
            for p in preconditioners]
  into = [lambda v, s=s: s(unravel(v.astype(flat_params.dtype)))
          for s in scales]
  out_of = [lambda t, s=s: ravel_pytree(s(t))[0].astype(dtype)
            for s in scales]

  def batched(vectors):
    tangents = jax.tree.map(lambda *t: jnp.stack(t),
                            *[f(v) for f, v in zip(into, vectors)])
    products = jax.vmap(tree_hvp)(tangents)
    return jnp.stack([f(jax.tree.map(lambda x, b=b: x[b], products))
                      for b, f in enumerate(out_of)])

  def one_by_one(vectors, active):
    def body(_, problem):
      i, v, run = problem
      product = lambda v: lax.switch(  # noqa: E731
          i, out_of, tree_hvp(lax.switch(i, into, v)))
      return None, lax.cond(run, product, jnp.zeros_like, v)

    problems = (jnp.arange(len(scales)), vectors, active)
    return lax.scan(body, None, problems)[1]

  def products(vectors, active):
    if len(scales) == 1:
      return out_of[0](tree_hvp(into[0](vectors[0])))[None]
    if not batch_products:
      return one_by_one(vectors, active)
    return lax.cond(jnp.all(active), lambda v, _: batched(v), one_by_one,
                    vectors, active)

  return StackedOperators(products, batched, flat_params.size, unravel, loss,
                          grad)


def hessian_operator(loss_fn: LossFn, params: Params, *, batch: Batch = None,
                     loss_args: Sequence[Any] = (),
                     preconditioner: Preconditioner | None = None,
                     mode: HvpMode | str = HvpMode.AUTO,
                     dtype: Any = None) -> FlatOperator:
  """v -> P^-1/2 H P^-1/2 v on flat vectors (H alone when P is None).

  Call inside `jax.jit`: with LINEARIZE the linearisation is traced once and
  reused by every product.

  Args:
    loss_fn: as in `loss_and_grad`.
    params: the point.
    batch: None, or a pytree whose leaves have a leading chunk axis.
    loss_args: extra positional arguments for `loss_fn`.
    preconditioner: None or a `Preconditioner`.
    mode: an `HvpMode` (or its value).
    dtype: dtype of the flat vectors; None for the params' dtype (at least
      float32).

  Returns:
    A `FlatOperator`.
  """
  op = hessian_operators(loss_fn, params, [preconditioner], batch=batch,
                         loss_args=loss_args, mode=mode, dtype=dtype)
  matvec = lambda v: op.products(v[None], jnp.ones((1,), bool))[0]
  return FlatOperator(matvec, op.dim, op.unravel, op.loss, op.grad)
