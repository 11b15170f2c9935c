"""The submission API: what the harness calls, in AlgoPerf's names and roles.

A submission is a Python module in one of two forms.

AlgoPerf form: the functions of AlgoPerf's `spec.py` with the same names,
parameters and roles, so an AlgoPerf JAX submission ports with few edits.
`FUNCTIONS` below lists each function the harness may call, with its
parameters in the order it passes them and which form requires it. What
they return: `init_optimizer_state` the optimizer state; `update_params`
(optimizer_state, params, model_state), or those and a dict of metrics;
`get_batch_size` an int; `data_selection` a batch; the optional
`prepare_for_eval` (optimizer_state, params, model_state).

Batches reach an AlgoPerf-form module as AlgoPerf gives them: dicts of
arrays `(batch_size, ...)`, already on the devices and split along the first
axis (`harness.mesh.DataParallel.shard_examples`), so code written for
AlgoPerf's `jax_sharding_utils` runs unchanged on one device or several. It
differentiates `workload.model_fn` and `workload.loss_fn`, as AlgoPerf's
baselines do. In full-batch mode that batch is the whole training set in
one array; only the short form below accumulates over chunks.

Short form: a module exposing `make_optimizer(hparams) ->
optax.GradientTransformation`; the harness adapts it (see
`adapters.ShortFormSubmission`) and steps it on batches with a leading chunk
axis (see `workloads.base`), through `workload.loss_and_grad`, which
accumulates the loss and gradient over the chunks so that memory stays
bounded for a full batch of any size.

Either form may add the AEoS hooks that the curvature probe reads, also in
`FUNCTIONS`: `preconditioner` returns a params-shaped pytree of the diagonal
of P, or None when the method has none; `dynamics` returns a
`submissions.dynamics.Dynamics`. The probe takes the learning rate from the
optimizer state (`Submission.learning_rate`), so build the optimizer with
`optax.inject_hyperparams`. A module may also define `DEFAULT_HPARAMS` (a
dict, used when no hyperparameters are given).

What the harness receives is checked against this API: a function that
returns something else (a batch size that is no positive int, an update
that changes a parameter's shape) raises `SubmissionOutputError`, one line
naming the function and, for a pytree, the leaf.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from typing import Any, Iterator, Mapping

import jax
import numpy as np
import optax

from submissions import dynamics as dynamics_lib
from workloads import base

OptimizerState = Any
Params = Any


class Form(enum.Enum):
  """The two module forms of a submission."""

  ALGOPERF = 'AlgoPerf'
  SHORT = 'short'


@dataclasses.dataclass(frozen=True)
class Function:
  """A module-level function of a submission that the harness calls.

  Attributes:
    parameters: the names of its parameters, in the order the harness passes
      them (positionally, so a submission may name them as it likes).
    required_by: the form that must define it; None when optional in both.
  """

  parameters: tuple[str, ...]
  required_by: Form | None = None

  def positional(self, arguments: Mapping[str, Any]) -> tuple[Any, ...]:
    """`arguments` (by parameter name) as the positional tuple to pass."""
    if set(arguments) != set(self.parameters):
      raise TypeError(f'expected the arguments {self.parameters}, got '
                      f'{tuple(arguments)}')
    return tuple(arguments[name] for name in self.parameters)


# Every function the harness may call on a submission module. The AlgoPerf
# ones keep AlgoPerf's names and argument order.
FUNCTIONS: Mapping[str, Function] = {
    'init_optimizer_state': Function(
        ('workload', 'model_params', 'model_state', 'hyperparameters', 'rng'),
        Form.ALGOPERF),
    'update_params': Function(
        ('workload', 'current_param_container', 'current_params_types',
         'model_state', 'hyperparameters', 'batch', 'loss_type',
         'optimizer_state', 'eval_results', 'global_step', 'rng'),
        Form.ALGOPERF),
    'get_batch_size': Function(('workload_name',), Form.ALGOPERF),
    'data_selection': Function(
        ('workload', 'input_queue', 'optimizer_state',
         'current_param_container', 'model_state', 'hyperparameters',
         'global_step', 'rng'), Form.ALGOPERF),
    'prepare_for_eval': Function(
        ('workload', 'current_param_container', 'current_params_types',
         'model_state', 'hyperparameters', 'loss_type', 'optimizer_state',
         'eval_results', 'global_step', 'rng')),
    'make_optimizer': Function(('hparams',), Form.SHORT),
    'preconditioner': Function(('optimizer_state', 'hyperparameters')),
    'dynamics': Function(('hyperparameters',)),
}


_NUMBERS = (jax.Array, np.ndarray, np.number, float, int)


class LearningRateUnknown(Exception):
  """The optimizer state does not hold exactly one learning rate."""


class TrainingComplete(Exception):
  """Raised by `update_params` to end training before the budget.

  AlgoPerf's `spec.TrainingCompleteError` is this exception (a real
  `algoperf`'s is translated to it). The step that raised it made no
  update; the run ends with its final evaluation, as when the budget runs
  out, with status `training_complete` unless the target was reached.
  """


class SubmissionOutputError(TypeError):
  """A submission function returned what the API does not allow.

  The message is one line that names the function and, for a pytree, the
  leaf (as `jax.tree_util.keystr` writes its path), so that the author
  finds the fault without reading the harness's traceback.
  """


def leaf_spec(leaf: Any) -> str:
  """A leaf's dtype and shape as JAX prints them, e.g. 'float32[784,200]'.

  A leaf without both (a Python float, a string) is named by its type, which
  is what its author needs to see.
  """
  shape, dtype = getattr(leaf, 'shape', None), getattr(leaf, 'dtype', None)
  if shape is None or dtype is None:
    return f'a {type(leaf).__name__}'
  return f'{np.dtype(dtype).name}[{",".join(str(d) for d in shape)}]'


def _node_summary(tree: Any) -> str:
  count = len(jax.tree.leaves(tree))
  noun = 'leaf' if count == 1 else 'leaves'
  return f'{type(tree).__name__} with {count} {noun}'


def describe_mismatch(tree: Any, like: Any, *,
                      dtypes: bool = True) -> str | None:
  """Why `tree` is not a pytree shaped like `like`; None when it is.

  "Shaped like" is what the API asks of params, model state, updates and
  the preconditioner: the same structure, and at each path a leaf of the
  same shape (and dtype, when `dtypes`). Only shapes and dtypes are read,
  so `tree` and `like` may hold arrays, tracers or `jax.ShapeDtypeStruct`s
  and nothing is computed or copied.

  Returns:
    One line naming the first path that differs, e.g. "leaf ['b'] is
    float32[] where float32[3] was expected" or "the tree is None where a
    dict with 2 leaves was expected", or None.
  """
  got, got_def = jax.tree_util.tree_flatten_with_path(tree)
  want, want_def = jax.tree_util.tree_flatten_with_path(like)
  if got_def != want_def:
    return _structure_mismatch(tree, like, got, want)
  for (path, leaf), (_, ref) in zip(got, want):
    # A Python number has no shape: it is no array leaf of any shape.
    same_shape = getattr(leaf, 'shape', None) == np.shape(ref)
    same_dtype = not dtypes or getattr(leaf, 'dtype', None) == getattr(
        ref, 'dtype', None)
    if not (same_shape and same_dtype):
      return (f'leaf {jax.tree_util.keystr(path)} is {leaf_spec(leaf)} '
              f'where {leaf_spec(ref)} was expected')
  return None


def _structure_mismatch(tree: Any, like: Any, got: list, want: list) -> str:
  if tree is None or jax.tree_util.treedef_is_leaf(jax.tree.structure(tree)):
    what = 'None' if tree is None else leaf_spec(tree)
    return f'the tree is {what} where a {_node_summary(like)} was expected'
  got_paths = [jax.tree_util.keystr(p) for p, _ in got]
  want_paths = [jax.tree_util.keystr(p) for p, _ in want]
  got_set, want_set = set(got_paths), set(want_paths)
  missing = [p for p in want_paths if p not in got_set]
  extra = [p for p in got_paths if p not in want_set]
  if not (missing or extra):
    return (f'the tree is a {_node_summary(tree)} with the expected paths '
            f'in other containers: {_clip(jax.tree.structure(tree))} where '
            f'{_clip(jax.tree.structure(like))} was expected')
  parts = [f'lacks leaf {missing[0]}' if missing else '',
           f'has an unexpected leaf {extra[0]}' if extra else '']
  detail = ' and '.join(part for part in parts if part)
  return (f'the tree is a {_node_summary(tree)} that {detail}, where a '
          f'{_node_summary(like)} was expected')


def _clip(value: Any, width: int = 120) -> str:
  text = str(value)
  return text if len(text) <= width else text[:width - 3] + '...'


class Hyperparameters(Mapping[str, Any]):
  """Read-only hyperparameters with attribute and item access.

  AlgoPerf submissions read `hyperparameters.learning_rate`; optax-style code
  reads `hparams['learning_rate']`. Both work.
  """

  def __init__(self, values: Mapping[str, Any]):
    self._values = dict(values)

  def __getitem__(self, key: str) -> Any:
    return self._values[key]

  def __getattr__(self, key: str) -> Any:
    try:
      return self._values[key]
    except KeyError:
      raise AttributeError(
          f'no hyperparameter {key!r}; given: {sorted(self._values)}') from None

  def __iter__(self) -> Iterator[str]:
    return iter(self._values)

  def __len__(self) -> int:
    return len(self._values)

  def __repr__(self) -> str:
    return f'Hyperparameters({self._values!r})'

  def to_dict(self) -> dict[str, Any]:
    return dict(self._values)


@dataclasses.dataclass(frozen=True)
class StepOutput:
  """What one call of `update_params` produced."""

  optimizer_state: OptimizerState
  params: Params
  model_state: Any
  # Device scalars the submission chose to report, e.g. {'loss': ...}.
  metrics: Mapping[str, jax.Array]


class Submission(abc.ABC):
  """A loaded submission bound to its hyperparameters: what the runner calls.

  Both module forms are adapted to this one interface.
  """

  # Whether `data_selection` gets batches with the leading chunk axis of
  # `workloads.base`; AlgoPerf-form submissions get them without it.
  batches_have_chunk_axis: bool = True

  def __init__(self, name: str, hparams: Hyperparameters):
    self.name = name
    self.hparams = hparams

  @abc.abstractmethod
  def get_batch_size(self, workload_name: str) -> int | None:
    """Batch size to use, or None to keep the workload's default regime."""

  @abc.abstractmethod
  def init_optimizer_state(self, workload: base.Workload, params: Params,
                           model_state: Any, rng: jax.Array) -> OptimizerState:
    ...

  @abc.abstractmethod
  def data_selection(self, workload: base.Workload, input_queue: Iterator[Any],
                     optimizer_state: OptimizerState, params: Params,
                     model_state: Any, global_step: int,
                     rng: jax.Array) -> Any:
    ...

  @abc.abstractmethod
  def update_params(self, workload: base.Workload, params: Params,
                    model_state: Any, batch: Any,
                    optimizer_state: OptimizerState,
                    eval_results: list[tuple[int, dict[str, float]]],
                    global_step: int, rng: jax.Array) -> StepOutput:
    ...

  def prepare_for_eval(self, workload: base.Workload, params: Params,
                       model_state: Any, optimizer_state: OptimizerState,
                       eval_results: list[tuple[int, dict[str, float]]],
                       global_step: int, rng: jax.Array
                       ) -> tuple[OptimizerState, Params, Any]:
    del workload, eval_results, global_step, rng
    return optimizer_state, params, model_state

  def preconditioner(self, optimizer_state: OptimizerState) -> Params | None:
    """Diagonal of P as a params-shaped pytree; None when there is none."""
    del optimizer_state
    return None

  def dynamics(self) -> dynamics_lib.Dynamics | None:
    """The update's dynamics; None when the submission does not say."""
    return None

  def implements(self, hook: str) -> bool:
    """Whether the optional method `hook` (e.g. 'preconditioner') is the
    submission's own rather than this class's default.

    Set-up checks use it to trace a hook only when there is one: tracing
    `init_optimizer_state` for a hook that returns None would refuse a
    submission whose initialisation cannot be traced, for nothing.
    """
    return getattr(type(self), hook) is not getattr(Submission, hook)

  def learning_rate(self, optimizer_state: OptimizerState) -> float:
    """The learning rate held in the optimizer state.

    The state must hold exactly one numeric `learning_rate` (a dict key or
    a NamedTuple field anywhere in it), as `optax.inject_hyperparams` keeps
    it; so this works for either module form. For `inject_hyperparams` it
    is the η of the latest update: after n updates a schedule's value at
    step n − 1, and before any update the initial one (the value at step 0).

    Args:
      optimizer_state: the state `init_optimizer_state` or `update_params`
        returned.

    Returns:
      The shortest decimal of the float32 scalar held (the precision it
      trains with), so that η given as 2e-4 reads back as exactly 2e-4.

    Raises:
      LearningRateUnknown: when the state holds no `learning_rate` or
        several, with a one-line message saying why.
    """
    # A schedule's own state sits under the same key (inject_hyperparams'
    # `hyperparams_states`); only a number is a learning rate.
    found = optax.tree_utils.tree_get_all_with_path(
        optimizer_state, 'learning_rate',
        filtering=lambda _, value: isinstance(value, _NUMBERS))
    if not found:
      raise LearningRateUnknown(
          f'{self.name}: no `learning_rate` in the optimizer state; build '
          'the optimizer with optax.inject_hyperparams')
    if len(found) > 1:
      paths = ', '.join(jax.tree_util.keystr(path) for path, _ in found)
      raise LearningRateUnknown(
          f'{self.name}: several `learning_rate` entries in the optimizer '
          f'state, at {paths}')
    (path, value), = found
    if np.ndim(value) != 0:
      raise LearningRateUnknown(
          f'{self.name}: the optimizer state\'s learning rate at '
          f'{jax.tree_util.keystr(path)} has shape {np.shape(value)}, not a '
          'scalar')
    return float(str(np.float32(value)))
