"""The Workload abstraction: a fixed model, data set, loss, target and budget.

A workload is everything a submission may not change. Names and roles follow
AlgoPerf's `spec.Workload` (`init_model_fn`, `model_fn`, `loss_fn`,
`has_reached_validation_target`, `param_shapes`, `model_params_types`,
`step_hint`, ...) so that AlgoPerf submissions run here as written, and add
what the edge-of-stability measurements need: a training loss threshold
that defines "solution", a fixed curvature batch, and a batch regime (full
batch or minibatch).

Batches are dicts of arrays (`inputs`, `targets`, and optionally `weights`, a
0/1 mask for padding) with a leading *chunk* axis: every leaf has shape
`(num_chunks, chunk_size, ...)`. Gradients and losses are accumulated over the
chunks with `lax.scan` (see `workloads.chunks`), so memory stays bounded for a
full batch of any size and a minibatch is simply one chunk. The chunk axis is
never sharded; the example axis (axis 1) is split across devices. AlgoPerf-
form submissions get the same batches with the chunks merged, as AlgoPerf
gives them (`harness.mesh.DataParallel.shard_examples`); `model_fn` and
`loss_fn` take either one chunk or such a batch.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
import math
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import optax

from workloads import chunks
from workloads import param_types

Params = Any  # A pytree of arrays.
ModelState = Any  # Mutable model state (e.g. batch statistics); {} if none.
Batch = Mapping[str, jax.Array]
Metrics = dict[str, float]


class UnsupportedDropoutError(ValueError):
  """A dropout rate asked of a model that has no dropout, or in a form the
  model cannot take."""


class Tier(str, enum.Enum):
  """How much hardware a workload needs."""

  SMOKE = 'smoke'  # A CPU in minutes, on bundled data.
  SMALL = 'small'  # One GPU, CIFAR scale.
  FULL = 'full'  # Many accelerators: ImageNet, WMT.


class TargetSource(str, enum.Enum):
  """Where a workload's target and budget come from."""

  # `python -m harness.calibrate`, its record committed as
  # workloads/calibrations/<name>.json.
  CALIBRATED = 'calibrated'
  LITERATURE = 'literature'  # Published results, cited in the docstring.
  PROVISIONAL = 'provisional'  # An estimate, until calibrated.


class ForwardPassMode(str, enum.Enum):
  """As AlgoPerf's `spec.ForwardPassMode`."""

  TRAIN = 'train'
  EVAL = 'eval'


class LossType(str, enum.Enum):
  """As AlgoPerf's `spec.LossType`."""

  SOFTMAX_CROSS_ENTROPY = 'softmax_cross_entropy'
  MEAN_SQUARED_ERROR = 'mean_squared_error'


@dataclasses.dataclass(frozen=True)
class BatchRegime:
  """How training batches are formed.

  Attributes:
    full_batch: every step uses the same `train_size` examples (the first ones
      of the training pool). Otherwise minibatches of `batch_size` examples are
      drawn by a seeded shuffle of the pool.
    train_size: number of training examples in use (the pool size in
      minibatch mode, the full batch in full-batch mode).
    batch_size: examples per step; equals `train_size` in full-batch mode.
    chunk_size: examples per accumulation chunk; must divide `batch_size`.
  """

  full_batch: bool
  train_size: int
  batch_size: int
  chunk_size: int

  def __post_init__(self):
    if self.full_batch and self.batch_size != self.train_size:
      raise ValueError(
          f'full-batch regime needs batch_size == train_size, got '
          f'{self.batch_size} and {self.train_size}')
    for name in ('train_size', 'batch_size', 'chunk_size'):
      if getattr(self, name) <= 0:
        raise ValueError(f'{name} must be positive, got {getattr(self, name)}')
    if self.batch_size % self.chunk_size:
      raise ValueError(
          f'chunk_size {self.chunk_size} must divide batch_size '
          f'{self.batch_size}')

  @property
  def num_chunks(self) -> int:
    return self.batch_size // self.chunk_size


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where a workload finds its data.

  Attributes:
    data_dir: TFDS data directory (TFDS_DATA_DIR when None), or the directory
      of a file-based source such as Fashion-MNIST IDX files.
    source: which of the workload's data sources to read; None picks its
      default (for Fashion-MNIST, the subset bundled with the package).
  """

  data_dir: str | None = None
  source: str | None = None


class Dataset(abc.ABC):
  """The batches a workload's data provides, as host (NumPy) dicts.

  Leaves have a leading chunk axis, as described in the module docstring.
  Each method takes the `chunks.Part` of every batch to load: a process of
  a run over several hosts loads only the examples its devices hold, the
  same examples as in the whole batch (`chunks.WHOLE`, a run of one
  process), so that the data a run trains on does not depend on how many
  processes load it.
  """

  @abc.abstractmethod
  def train_batches(self, regime: BatchRegime, seed: int,
                    part: chunks.Part = chunks.WHOLE) -> Iterator[Batch]:
    """Infinite iterator of training batches for the regime."""

  @abc.abstractmethod
  def fixed_batch(self, size: int, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> Batch:
    """The first `size` training examples, unaugmented, in chunks."""

  @abc.abstractmethod
  def eval_arrays(self, split: str, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> Batch:
    """A whole evaluation split as one padded dict with a chunk axis.

    Leaves are `(num_chunks, chunk_size, ...)` with 0/1 `weights` marking
    the padding, so one jitted scan evaluates the split.
    """

  def eval_batches(self, split: str, chunk_size: int) -> Iterator[Batch]:
    """One pass over an evaluation split: the chunks of `eval_arrays`, one
    per yield, without the chunk axis (padded, with `weights`)."""
    arrays = self.eval_arrays(split, chunk_size)  # Bad splits fail here.
    num_chunks = len(jax.tree.leaves(arrays)[0])
    return ({k: v[i] for k, v in arrays.items()} for i in range(num_chunks))

  @property
  @abc.abstractmethod
  def eval_splits(self) -> tuple[str, ...]:
    """Names of the splits `eval_batches` accepts, e.g. ('validation',)."""


class Workload(abc.ABC):
  """A fixed benchmark problem.

  Subclasses set the class attributes and implement the model and data;
  variants are small subclasses that override properties.
  """

  name: str = ''
  tier: Tier = Tier.SMOKE
  loss_type: LossType = LossType.SOFTMAX_CROSS_ENTROPY
  # The target, as in AlgoPerf: a validation metric and the value to reach.
  target_metric_name: str = 'accuracy'
  target_value: float = 0.0
  target_higher_is_better: bool = True
  target_source: TargetSource = TargetSource.PROVISIONAL
  # "Solution" for sharpness at solution: the first step with train loss below.
  train_loss_threshold: float = 0.1
  step_budget: int = 1000
  runtime_budget_s: float = 3600.0
  default_regime: BatchRegime
  curvature_batch_size: int = 5000
  eval_chunk_size: int = 1000
  # AlgoPerf's submissions log through this when it is not None.
  metrics_logger: Any = None

  def __init__(self, data: DataConfig = DataConfig()):
    self.data = data

  # ---- As AlgoPerf's `spec.Workload` ----

  @property
  def step_hint(self) -> int:
    """AlgoPerf's name for the step budget (schedules are sized by it)."""
    return self.step_budget

  @property
  def max_allowed_runtime_sec(self) -> float:
    """AlgoPerf's name for the runtime budget, in seconds."""
    return self.runtime_budget_s

  @functools.cached_property
  def _abstract_params(self) -> Params:
    """Shapes and dtypes of the initial parameters, without allocating
    them; computed once, on first use."""
    params, _ = jax.eval_shape(self.init_model_fn, jax.random.key(0))
    return params

  @functools.cached_property
  def param_shapes(self) -> Any:
    """The parameter tree with a `ShapeTuple` at each leaf, as AlgoPerf's
    `param_shapes` (submissions size their optimizer state from it)."""
    return param_types.param_shapes(self._abstract_params)

  @functools.cached_property
  def model_params_types(self) -> Any:
    """The parameter tree with a `ParameterType` at each leaf, as
    AlgoPerf's `model_params_types`."""
    return param_types.param_types(self._abstract_params)

  def attach_metrics_logger(self, metrics_logger: Any) -> None:
    """As AlgoPerf's: the logger submissions find in `metrics_logger`."""
    self.metrics_logger = metrics_logger

  # ---- Model ----

  @abc.abstractmethod
  def init_model_fn(self, rng: jax.Array) -> tuple[Params, ModelState]:
    """Returns freshly initialised parameters and model state."""

  @abc.abstractmethod
  def model_fn(self, params: Params,
               augmented_and_preprocessed_input_batch: Batch,
               model_state: ModelState, mode: ForwardPassMode,
               rng: jax.Array | None, update_batch_norm: bool,
               dropout_rate: float | None = None
               ) -> tuple[jax.Array, ModelState]:
    """Logits for one chunk (leaves without the chunk axis).

    `dropout_rate` is AlgoPerf's: None means the model's own rate. A model
    without dropout refuses a non-zero rate (`without_dropout`).
    """

  @property
  @abc.abstractmethod
  def num_classes(self) -> int:
    """Width of the output layer."""

  # ---- Data ----

  @abc.abstractmethod
  def dataset(self, regime: BatchRegime) -> Dataset:
    """Loads (or opens) the workload's data for a batch regime."""

  # ---- Loss ----

  def loss_fn(self, label_batch: jax.Array, logits_batch: jax.Array,
              mask_batch: jax.Array | None = None,
              label_smoothing: float = 0.0) -> dict[str, jax.Array]:
    """Per-example and summed loss, as AlgoPerf's `loss_fn`.

    Returns:
      A dict with `summed`, `n_valid_examples` and `per_example`.
    """
    one_hot = jax.nn.one_hot(label_batch, self.num_classes)
    per_example = _LOSSES[self.loss_type](logits_batch, one_hot,
                                          label_smoothing)
    if mask_batch is not None:
      per_example = per_example * mask_batch
      n_valid = mask_batch.sum()
    else:
      n_valid = jnp.asarray(per_example.shape[0], per_example.dtype)
    return {'summed': per_example.sum(), 'n_valid_examples': n_valid,
            'per_example': per_example}

  def chunk_loss(self, params: Params, model_state: ModelState, chunk: Batch,
                 rng: jax.Array | None, *, mode: ForwardPassMode,
                 update_batch_norm: bool) -> tuple[jax.Array, ModelState]:
    """Mean loss over one chunk, and the model state after it."""
    logits, new_state = self.model_fn(params, chunk, model_state, mode, rng,
                                      update_batch_norm)
    out = self.loss_fn(chunk['targets'], logits, chunk.get('weights'))
    return out['summed'] / jnp.maximum(out['n_valid_examples'], 1), new_state

  def curvature_loss(self, params: Params, model_state: ModelState,
                     chunk: Batch) -> jax.Array:
    """Mean loss of one chunk, as the curvature probe measures its Hessian.

    The Hessian measured is that of the loss the training step
    differentiates, so the forward pass is in TRAIN mode: batch
    normalisation uses the statistics of this chunk, not the running
    averages. Measuring must not change the model, so the running averages
    are not updated (`update_batch_norm=False`). No rng is passed, so
    dropout is off and the loss is a deterministic function of `params`.
    """
    loss, _ = self.chunk_loss(params, model_state, chunk, None,
                              mode=ForwardPassMode.TRAIN,
                              update_batch_norm=False)
    return loss

  def loss_and_grad(
      self, params: Params, model_state: ModelState, batch: Batch,
      rng: jax.Array
  ) -> tuple[tuple[jax.Array, ModelState], Params]:
    """Training loss and its gradient, averaged over the batch's chunks.

    The model state is threaded through the chunks in order, each chunk
    gets its own split of `rng`, and a batch of one chunk (a minibatch) is
    one plain call; see `chunks.mean_loss_and_grad`. Call inside `jax.jit`.
    """
    loss_fn = functools.partial(self.chunk_loss, mode=ForwardPassMode.TRAIN,
                                update_batch_norm=True)
    return chunks.mean_loss_and_grad(loss_fn, params, batch, model_state,
                                     rng=rng)

  def eval_chunk(self, params: Params, model_state: ModelState,
                 chunk: Batch) -> dict[str, jax.Array]:
    """Summed loss, correct predictions and example count of one chunk."""
    logits, _ = self.model_fn(params, chunk, model_state, ForwardPassMode.EVAL,
                              None, False)
    weights = chunk.get('weights')
    if weights is None:
      weights = jnp.ones(logits.shape[0], logits.dtype)
    out = self.loss_fn(chunk['targets'], logits, weights)
    correct = (jnp.argmax(logits, -1) == chunk['targets']) * weights
    return {'loss': out['summed'], 'correct': correct.sum(),
            'count': weights.sum()}

  def extra_eval_metrics(self, params: Params, model_state: ModelState,
                         dataset: Dataset, split: str) -> Metrics:
    """Metrics that a summed chunk scan cannot give (e.g. BLEU of decoded
    translations); names without the split prefix. None by default."""
    del params, model_state, dataset, split
    return {}

  @staticmethod
  def finalize_eval(totals: Mapping[str, float]) -> Metrics:
    """Turns summed `eval_chunk` outputs into mean metrics."""
    count = max(float(totals['count']), 1.0)
    accuracy = float(totals['correct']) / count
    return {'loss': float(totals['loss']) / count, 'accuracy': accuracy,
            'error': 1.0 - accuracy}

  # ---- Targets ----

  def has_reached_validation_target(self, eval_result: Metrics) -> bool:
    value = eval_result[f'validation/{self.target_metric_name}']
    if self.target_higher_is_better:
      return value >= self.target_value
    return value <= self.target_value

  def describe(self) -> dict[str, Any]:
    """The workload's fixed settings, for run records and listings."""
    return {
        'name': self.name,
        'tier': self.tier.value,
        'loss_type': self.loss_type.value,
        'target_metric': f'validation/{self.target_metric_name}',
        'target_value': self.target_value,
        'target_higher_is_better': self.target_higher_is_better,
        'train_loss_threshold': self.train_loss_threshold,
        'step_budget': self.step_budget,
        'runtime_budget_s': self.runtime_budget_s,
        'default_regime': dataclasses.asdict(self.default_regime),
        'curvature_batch_size': self.curvature_batch_size,
    }


def count_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or of `jax.ShapeDtypeStruct`s.

  Only shapes are read, so the tree of `jax.eval_shape(init_model_fn, rng)`
  counts a model without allocating it.
  """
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def without_dropout(name: str, dropout_rate: float | jax.Array | None,
                    logits: jax.Array) -> jax.Array:
  """`logits` of a model that has no dropout, refusing a non-zero rate.

  A rate known in Python (None, or a number) is checked by
  `check_no_dropout`: a non-zero one raises. A rate traced by `jax.jit`
  (AlgoPerf's baselines pass it as a jitted argument) has no value yet, so
  a non-zero one turns the logits into NaN instead of being ignored;
  callers that know the rate up front should check it with
  `check_no_dropout` first.

  Raises:
    UnsupportedDropoutError: a non-zero rate known in Python.
  """
  check_no_dropout(name, dropout_rate)
  if isinstance(dropout_rate, jax.core.Tracer):
    return jnp.where(dropout_rate == 0, logits, jnp.nan)
  return logits


def check_no_dropout(name: str, dropout_rate: float | jax.Array | None
                     ) -> None:
  """Raises `UnsupportedDropoutError` for a non-zero rate on workload
  `name`, whose model has no dropout; a traced rate passes (see
  `without_dropout`)."""
  if dropout_rate is None or isinstance(dropout_rate, jax.core.Tracer):
    return
  if float(dropout_rate) != 0.0:
    raise UnsupportedDropoutError(
        f'workload {name} has no dropout; got dropout_rate={dropout_rate}, '
        'use 0 or None')


def _cross_entropy(logits, one_hot, label_smoothing):
  # `optax.smooth_labels` is plain arithmetic, so a traced rate works.
  targets = optax.smooth_labels(one_hot, label_smoothing)
  return -jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1)


def _mean_squared_error(logits, one_hot, label_smoothing):
  del label_smoothing
  # Cohen et al. (2021): half the squared distance to the one-hot target.
  return 0.5 * jnp.sum(jnp.square(logits - one_hot), axis=-1)


_LOSSES: dict[LossType, Callable[..., jax.Array]] = {
    LossType.SOFTMAX_CROSS_ENTROPY: _cross_entropy,
    LossType.MEAN_SQUARED_ERROR: _mean_squared_error,
}
