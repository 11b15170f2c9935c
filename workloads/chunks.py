"""The chunk axis: host batches cut into chunks, and means over the chunks.

A batch is a pytree whose leaves share a leading *chunk* axis: every leaf is
`(num_chunks, chunk_size, ...)`. On the host, `padded_rows` and `chunked`
turn row arrays into that layout. On the device, `mean_loss_and_grad`
accumulates a chunk loss and its gradient over the chunks with `lax.scan`,
so memory stays that of one chunk for a batch of any size. Chunks are equal
in size, so the mean of the chunk means is the batch mean.

A run of several processes (hosts) loads each batch in parts: `Part`
names the examples of every batch that one process loads, so that no
process reads what another's devices hold.

Nothing here knows about workloads or models: it serves `workloads.base`
(the training loss) and `harness.curvature` (any JAX loss) alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = Any  # A pytree of arrays.
Batch = Any  # A pytree of arrays with a leading chunk axis.
State = Any  # A pytree threaded through the chunks in order.

# loss_fn(params, state, chunk, *loss_args[, rng]) -> (loss, state).
ChunkLossFn = Callable[..., tuple[jax.Array, State]]


@dataclasses.dataclass(frozen=True)
class Part:
  """The examples of every batch that one of `count` processes loads.

  A batch's examples form a `(num_chunks, chunk_size)` grid, example `i` of
  chunk `c` being example `c * chunk_size + i` of the batch. Each chunk's
  rows are split into `count` equal blocks and process `index` loads block
  `index` of every chunk; with `across_chunks` the batch's examples, in
  that order, are split instead, and the part is one block of them (the
  layout of a batch without a chunk axis, split along its examples).

  Attributes:
    index: the block this process loads.
    count: the number of blocks (processes).
    across_chunks: split the batch's examples rather than each chunk's.
  """

  index: int = 0
  count: int = 1
  across_chunks: bool = False

  def __post_init__(self):
    if not 0 <= self.index < self.count:
      raise ValueError(f'part {self.index} of {self.count} does not exist')

  @property
  def whole(self) -> bool:
    return self.count == 1

  def take(self, leaf: np.ndarray) -> np.ndarray:
    """This part of `leaf`, shaped `(num_chunks, chunk_size, ...)`.

    Works on index grids as on data, and returns views where NumPy can.

    Returns:
      `(num_chunks, chunk_size // count, ...)`, or with `across_chunks`
      `(1, num_chunks * chunk_size // count, ...)`.

    Raises:
      ValueError: `count` does not divide the rows to split.
    """
    if self.whole:
      return leaf
    if self.across_chunks:
      leaf = np.reshape(leaf, (1, -1) + np.shape(leaf)[2:])
    rows = np.shape(leaf)[1]
    if rows % self.count:
      raise ValueError(f'{rows} examples do not split into {self.count} '
                       'equal parts, one per process')
    size = rows // self.count
    return leaf[:, self.index * size:(self.index + 1) * size]

  def take_batch(self, batch: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """`take` of every leaf of a chunked batch."""
    return batch if self.whole else {k: self.take(v) for k, v in
                                     batch.items()}

  def positions(self, num_chunks: int, chunk_size: int) -> np.ndarray:
    """The batch positions (`c * chunk_size + i`) of this part's examples,
    shaped as `take` shapes data."""
    return self.take(np.arange(num_chunks * chunk_size).reshape(
        num_chunks, chunk_size))


WHOLE = Part()  # The whole batch: a run of one process.


def chunked(arrays: dict[str, np.ndarray],
            chunk_size: int) -> dict[str, np.ndarray]:
  """Every leaf `(n, ...)` as `(n // chunk_size, chunk_size, ...)`.

  Reshapes only: the leaves are views of `arrays` where NumPy can make them.

  Raises:
    ValueError: chunk_size does not divide n.
  """
  for key, value in arrays.items():
    if len(value) % chunk_size:
      raise ValueError(f'chunk_size {chunk_size} does not divide the '
                       f'{len(value)} rows of {key!r}')
  return {k: v.reshape(-1, chunk_size, *v.shape[1:])
          for k, v in arrays.items()}


def padded_rows(arrays: dict[str, np.ndarray],
                chunk_size: int) -> dict[str, np.ndarray]:
  """Zero rows appended so that `chunk_size` divides the row count.

  Returns `arrays` itself when it already does.
  """
  n = len(next(iter(arrays.values())))
  extra = -n % chunk_size
  if not extra:
    return arrays
  return {k: np.concatenate([v, np.zeros((extra,) + v.shape[1:], v.dtype)])
          for k, v in arrays.items()}


def num_chunks(batch: Batch) -> int:
  """Length of the leading chunk axis shared by all leaves of `batch`.

  Raises:
    ValueError: the leaves disagree on it.
  """
  sizes = {leaf.shape[0] for leaf in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(
        f'batch leaves must share one leading chunk axis, got sizes {sizes}')
  return sizes.pop()


def mean_loss_and_grad(
    loss_fn: ChunkLossFn, params: Params, batch: Batch, state: State = (), *,
    loss_args: Sequence[Any] = (), rng: jax.Array | None = None,
    scan_one_chunk: bool = False) -> tuple[tuple[jax.Array, State], Params]:
  """The mean of a chunk loss over a batch's chunks, and its gradient.

  The chunks are visited in order by a `lax.scan` that sums the losses and
  the gradients (with respect to `params`) and then divides by the number of
  chunks; the result is deterministic for a given batch. Call inside
  `jax.jit`.

  Args:
    loss_fn: `loss_fn(params, state, chunk, *loss_args)`, or with `rng`
      `loss_fn(params, state, chunk, *loss_args, chunk_rng)`, returning
      `(loss, new_state)`: the chunk's mean loss and the state after the
      chunk, which the next chunk receives (e.g. batch-norm running
      averages; `()` for a loss without state). `chunk` is `batch` with the
      chunk axis indexed away.
    params: the point, a pytree of arrays.
    batch: a pytree whose leaves share a leading chunk axis.
    state: the state the first chunk receives.
    loss_args: extra positional arguments, the same for every chunk.
    rng: None, or a key split into one key per chunk (passed unsplit when
      there is one chunk).
    scan_one_chunk: whether a batch of one chunk still goes through the
      scan; by default it is one plain call, with no loop for XLA to keep.

  Returns:
    `((loss, state), grad)`: the mean loss, in the dtype of a chunk loss;
    the state after the last chunk; the mean gradient, shaped like `params`.
  """
  count = num_chunks(batch)
  value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
  loss_args = tuple(loss_args)
  if count == 1 and not scan_one_chunk:
    chunk = jax.tree.map(lambda x: x[0], batch)
    rngs = () if rng is None else (rng,)
    return value_and_grad(params, state, chunk, *loss_args, *rngs)

  def body(carry, xs):
    loss_sum, grad_sum, state = carry
    chunk, rngs = xs
    (loss, state), grad = value_and_grad(params, state, chunk, *loss_args,
                                         *rngs)
    grad_sum = jax.tree.map(jnp.add, grad_sum, grad)
    return (loss_sum + loss, grad_sum, state), None

  rngs = () if rng is None else (jax.random.split(rng, count),)
  chunk0 = jax.tree.map(lambda x: x[0], batch)
  rngs0 = tuple(r[0] for r in rngs)
  loss_shape, _ = jax.eval_shape(loss_fn, params, state, chunk0, *loss_args,
                                 *rngs0)
  init = (jnp.zeros((), loss_shape.dtype),
          jax.tree.map(jnp.zeros_like, params), state)
  (loss_sum, grad_sum, state), _ = jax.lax.scan(body, init, (batch, rngs))
  scale = 1.0 / count
  return ((loss_sum * scale, state),
          jax.tree.map(lambda g: g * scale, grad_sum))
