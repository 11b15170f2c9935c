"""What a submission's step must keep the same: the shapes of the run.

A submission that changes a parameter's dtype or shape, lets a scalar
update broadcast, or returns its outputs in the wrong order does not fail
where it went wrong: it fails steps later inside XLA, or trains on a silently
different model. `StepContract` records the params and model state as the
run starts and checks what `data_selection` and `update_params` return
against them, naming the function and the leaf.

The checks read only pytree structure, shapes and dtypes, which every
`jax.Array` carries on the host: they never wait for the device or copy
data, so the runner may call them at every synchronisation step. For
ResNet-50 (161 parameter and 106 batch-statistics leaves) a `check_output`
that passes takes about 0.26 ms, two pytree flattens and two tuple
comparisons (best of 15 x 200 calls on 2 shared CPU cores, measured once;
the tests assert behaviour only, never time).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, Mapping

import jax
import numpy as np

from submissions import api

# One class for every "the submission returned something the API does not
# allow": the adapters raise it too (a malformed return tuple, a bad batch
# size), so a runner catches one type.
SubmissionOutputError = api.SubmissionOutputError

_ORDER = ('optimizer_state', 'params', 'model_state')
# The fastest way to read both from every leaf (a C-level getter, no lambda).
_SHAPE_DTYPE = operator.attrgetter('shape', 'dtype')


@dataclasses.dataclass(frozen=True)
class _Signature:
  """A pytree's structure and its leaves' (shape, dtype), for fast equality.

  Comparing a tree's treedef and one tuple of leaf metadata is a few C-level
  comparisons per leaf; the per-leaf diagnosis runs only on a mismatch.
  """

  tree: Any
  treedef: Any
  specs: tuple[tuple[tuple[int, ...], Any], ...]

  @classmethod
  def of(cls, tree: Any) -> _Signature:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return cls(jax.tree.map(_shape_dtype, tree), treedef,
               tuple((np.shape(x), _dtype(x)) for x in leaves))

  def matches(self, tree: Any) -> bool:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if treedef != self.treedef:
      return False
    try:
      return tuple(map(_SHAPE_DTYPE, leaves)) == self.specs
    except AttributeError:  # A leaf that is no array (a Python float).
      return False

  def mismatch(self, tree: Any) -> str | None:
    if self.matches(tree):
      return None
    return api.describe_mismatch(tree, self.tree) or (
        'the leaves differ from the run\'s initial ones')


def _dtype(x: Any) -> Any:
  # Not `x.dtype or ...`: a NumPy dtype without fields is falsy.
  dtype = getattr(x, 'dtype', None)
  return np.result_type(x) if dtype is None else dtype


def _shape_dtype(x: Any) -> jax.ShapeDtypeStruct:
  # Metadata only, so the contract holds no reference to device buffers.
  return jax.ShapeDtypeStruct(np.shape(x), _dtype(x))


_CHUNKED = ('num_chunks', 'chunk_size')
_EXAMPLES = ('batch_size',)


@dataclasses.dataclass(frozen=True)
class StepContract:
  """The params and model state a run starts with, as shapes and dtypes.

  Build it with `of` after initialisation (and placement), then call
  `check_batch` and `check_output` with what the submission returned.
  Both raise `SubmissionOutputError` with a one-line message, and cost
  well under a millisecond for a ResNet-50-sized tree (see the module
  docstring).
  """

  params: _Signature
  model_state: _Signature
  # The leading axes every batch leaf has: (num_chunks, chunk_size), or
  # (batch_size,) for a submission that takes batches without chunks.
  batch_axes: tuple[str, ...] = _CHUNKED

  @classmethod
  def of(cls, params: Any, model_state: Any, *,
         chunk_axis: bool = True) -> StepContract:
    return cls(_Signature.of(params), _Signature.of(model_state),
               _CHUNKED if chunk_axis else _EXAMPLES)

  def check_batch(self, batch: Any, step: int) -> None:
    """Checks what `data_selection` returned: a dict of arrays.

    Every leaf must be an array with the leading `batch_axes`, the same
    for all leaves.
    """
    problem = _batch_problem(batch, self.batch_axes)
    if problem:
      raise SubmissionOutputError(
          f'data_selection returned {problem} at step {step}; it must '
          f'return a batch, a dict of arrays shaped ({_axes(self.batch_axes)}'
          ', ...) such as next(input_queue)')

  def check_output(self, out: Any, step: int) -> None:
    """Checks what `update_params` returned against the run's start.

    The params and model state must keep their structure, and every leaf
    its shape and dtype; the metrics must be a dict of scalars.
    """
    if not isinstance(out, api.StepOutput):
      raise SubmissionOutputError(
          f'update_params returned {type(out).__name__} at step {step}, '
          'expected submissions.api.StepOutput')
    if not self.params.matches(out.params):
      raise SubmissionOutputError(self._params_message(out, step))
    problem = self.model_state.mismatch(out.model_state)
    if problem:
      raise SubmissionOutputError(
          f'update_params returned a model_state unlike the initial one at '
          f'step {step}: {problem}; the model state keeps its structure, '
          'shapes and dtypes')
    problem = _metrics_problem(out.metrics)
    if problem:
      raise SubmissionOutputError(
          f'update_params returned metrics {problem} at step {step}; '
          'metrics are a dict of scalars, e.g. {"loss": loss}')

  def check_prepared(self, prepared: Any, step: int) -> None:
    """Checks what `prepare_for_eval` returned: (optimizer_state, params,
    model_state), the params and model state shaped as at the start."""
    if not isinstance(prepared, tuple) or len(prepared) != 3:
      raise SubmissionOutputError(
          f'prepare_for_eval returned {type(prepared).__name__} at step '
          f'{step}, expected (optimizer_state, params, model_state)')
    for name, signature, tree in (('params', self.params, prepared[1]),
                                  ('model_state', self.model_state,
                                   prepared[2])):
      problem = signature.mismatch(tree)
      if problem:
        raise SubmissionOutputError(
            f'prepare_for_eval returned {name} unlike the initial ones at '
            f'step {step}: {problem}; training goes on from what it '
            'returns, so it keeps their structure, shapes and dtypes')

  def _params_message(self, out: api.StepOutput, step: int) -> str:
    """Names the leaf that changed, or the position the params came back in:
    params found in another slot are outputs returned in the wrong order."""
    elsewhere = [name for name in _ORDER if name != 'params' and
                 self.params.matches(getattr(out, name))]
    if elsewhere:
      return (f'update_params returned the params in the {elsewhere[0]} '
              f'position at step {step}: the outputs are in the wrong order; '
              'return (optimizer_state, params, model_state), or those and a '
              'metrics dict')
    problem = self.params.mismatch(out.params)
    return (f'update_params returned params unlike the initial ones at step '
            f'{step}: {problem}; params keep their structure, shapes and '
            'dtypes')


def _axes(names: tuple[str, ...]) -> str:
  return ', '.join(names)


def _batch_problem(batch: Any, axes: tuple[str, ...]) -> str | None:
  if batch is None:
    return 'None'
  if not isinstance(batch, Mapping) or not batch:
    return (f'an empty {type(batch).__name__}' if isinstance(batch, Mapping)
            else f'a {type(batch).__name__}')
  leading = None
  for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
    shape = getattr(leaf, 'shape', None)
    where = f'leaf {jax.tree_util.keystr(path)}'
    if shape is None or getattr(leaf, 'dtype', None) is None:
      return f'a batch whose {where} is {api.leaf_spec(leaf)}, not an array'
    if len(shape) < len(axes):
      return (f'a batch whose {where} is {api.leaf_spec(leaf)}, without the '
              f'({_axes(axes)}) axes')
    if leading is None:
      leading = shape[:len(axes)]
    elif shape[:len(axes)] != leading:
      return (f'a batch whose {where} is {api.leaf_spec(leaf)} where the '
              f'others lead with {leading}')
  return None


def _metrics_problem(metrics: Any) -> str | None:
  if not isinstance(metrics, Mapping):
    return f'of type {type(metrics).__name__}'
  for name, value in metrics.items():
    if np.shape(value) != ():
      return f'[{name!r}] of shape {np.shape(value)}, not a scalar'
  return None
