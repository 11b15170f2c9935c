"""Adapters from the two submission module forms to `api.Submission`."""

from __future__ import annotations

import functools
import numbers
import types
from typing import Any, Callable, Mapping

import jax
import numpy as np
import optax

from submissions import api
from submissions import dynamics as dynamics_lib
from workloads import base


def _defines(module: types.ModuleType, name: str) -> bool:
  return callable(getattr(module, name, None))


def _call(module: types.ModuleType, name: str, **arguments: Any) -> Any:
  """Calls `module.<name>` with `arguments` in `api.FUNCTIONS` order."""
  return getattr(module, name)(*api.FUNCTIONS[name].positional(arguments))


def checked_batch_size(function: str, value: Any) -> int | None:
  """`value` if it is None or a positive int (a bool is no int here).

  Args:
    function: how the message names the call, e.g. "sub.get_batch_size('w')".
    value: what it returned.

  Raises:
    api.SubmissionOutputError: anything else, in one line.
  """
  is_int = isinstance(value, numbers.Integral) and not isinstance(
      value, (bool, np.bool_))
  if value is None or (is_int and value > 0):
    return None if value is None else int(value)
  raise api.SubmissionOutputError(
      f'{function} returned {value!r} ({type(value).__name__}), expected a '
      'positive int, or None to keep the workload\'s batch size')


def params_types(workload: base.Workload) -> Any:
  """The workload's parameter-type tree, which AlgoPerf passes as
  `current_params_types` (shaped like the params, a `ParameterType` at each
  leaf), so that a submission can build e.g. a weight-decay mask from it.

  None for a workload that does not type its parameters.
  """
  return getattr(workload, 'model_params_types', None)


class _HookMixin:
  """The AEoS hooks and batch size, read from the module when present."""

  name: str
  module: types.ModuleType
  hparams: api.Hyperparameters
  self_tuning: bool = False

  @property
  def module_hparams(self) -> api.Hyperparameters | None:
    """What the module's functions get as their hyperparameters: None
    under the self-tuning ruleset, as AlgoPerf passes them."""
    return None if self.self_tuning else self.hparams

  def implements(self, hook: str) -> bool:
    return _defines(self.module, hook)

  def preconditioner(self, optimizer_state):
    if not _defines(self.module, 'preconditioner'):
      return None
    return _call(self.module, 'preconditioner',
                 optimizer_state=optimizer_state,
                 hyperparameters=self.module_hparams)

  def dynamics(self) -> dynamics_lib.Dynamics | None:
    if not _defines(self.module, 'dynamics'):
      return None
    result = _call(self.module, 'dynamics', hyperparameters=self.module_hparams)
    if not isinstance(result, dynamics_lib.Dynamics):
      raise api.SubmissionOutputError(
          f'{self.name}.dynamics returned {type(result).__name__}, expected '
          'submissions.dynamics.Dynamics (or no dynamics function)')
    return result

  def get_batch_size(self, workload_name: str) -> int | None:
    if not _defines(self.module, 'get_batch_size'):
      return None
    return checked_batch_size(
        f'{self.name}.get_batch_size({workload_name!r})',
        _call(self.module, 'get_batch_size', workload_name=workload_name))


class ShortFormSubmission(_HookMixin, api.Submission):
  """Runs `make_optimizer(hparams)` as a jitted, donated optax step.

  The step is built and jitted once per workload and reused at every call,
  so the harness adds nothing to the step but a Python call.
  """

  def __init__(self, name: str, module: types.ModuleType,
               hparams: api.Hyperparameters, *, self_tuning: bool = False):
    super().__init__(name, hparams)
    self.module = module
    self.self_tuning = self_tuning
    self.optimizer = _call(module, 'make_optimizer',
                           hparams=self.module_hparams)
    if not isinstance(self.optimizer, optax.GradientTransformation):
      raise api.SubmissionOutputError(
          f'{name}.make_optimizer returned {type(self.optimizer).__name__}, '
          'expected optax.GradientTransformation')
    self._steps: dict[int, Callable[..., Any]] = {}

  def init_optimizer_state(self, workload, params, model_state, rng):
    del workload, model_state, rng
    return self.optimizer.init(params)

  def data_selection(self, workload, input_queue, optimizer_state, params,
                     model_state, global_step, rng):
    del workload, optimizer_state, params, model_state, global_step, rng
    return next(input_queue)

  def train_step(self, workload: base.Workload) -> Callable[..., Any]:
    """The jitted `(params, opt_state, model_state, batch, rng)` step."""
    key = id(workload)
    if key not in self._steps:
      self._steps[key] = jax.jit(
          functools.partial(optax_train_step, workload, self.optimizer,
                            name=f'{self.name}.make_optimizer(...).update'),
          donate_argnums=(0, 1))
    return self._steps[key]

  def update_params(self, workload, params, model_state, batch,
                    optimizer_state, eval_results, global_step, rng):
    del eval_results, global_step
    params, optimizer_state, model_state, metrics = self.train_step(workload)(
        params, optimizer_state, model_state, batch, rng)
    return api.StepOutput(optimizer_state, params, model_state, metrics)


def optax_train_step(workload: base.Workload,
                     optimizer: optax.GradientTransformation, params,
                     opt_state, model_state, batch, rng, *,
                     name: str = 'optimizer.update'):
  """One optimizer step on the batch; call under `jax.jit`.

  Args:
    workload, optimizer, params, opt_state, model_state, batch, rng: the
      step's inputs.
    name: how error messages name the optimizer's update function.

  Returns:
    New params, optimizer state and model state, and metrics: the loss at
    the params before the update (the probe measures the gradient norm).

  Raises:
    api.SubmissionOutputError: the updates are not shaped like the params.
      Checked on shapes while tracing, so it costs the compiled step
      nothing; without it a scalar update would broadcast silently.
  """
  (loss, model_state), grads = workload.loss_and_grad(params, model_state,
                                                      batch, rng)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  mismatch = api.describe_mismatch(updates, params, dtypes=False)
  if mismatch:
    raise api.SubmissionOutputError(
        f'{name} returned updates that are not shaped like the params: '
        f'{mismatch}')
  params = optax.apply_updates(params, updates)
  return params, opt_state, model_state, {'loss': loss}


class AlgoPerfSubmission(_HookMixin, api.Submission):
  """Calls the AlgoPerf-form functions of a module."""

  batches_have_chunk_axis = False

  def __init__(self, name: str, module: types.ModuleType,
               hparams: api.Hyperparameters, *, self_tuning: bool = False):
    super().__init__(name, hparams)
    self.module = module
    self.self_tuning = self_tuning

  def init_optimizer_state(self, workload, params, model_state, rng):
    return _call(self.module, 'init_optimizer_state', workload=workload,
                 model_params=params, model_state=model_state,
                 hyperparameters=self.module_hparams, rng=rng)

  def data_selection(self, workload, input_queue, optimizer_state, params,
                     model_state, global_step, rng):
    return _call(self.module, 'data_selection', workload=workload,
                 input_queue=input_queue, optimizer_state=optimizer_state,
                 current_param_container=params, model_state=model_state,
                 hyperparameters=self.module_hparams, global_step=global_step,
                 rng=rng)

  def update_params(self, workload, params, model_state, batch,
                    optimizer_state, eval_results, global_step, rng):
    try:
      out = _call(self.module, 'update_params', workload=workload,
                  current_param_container=params,
                  current_params_types=params_types(workload),
                  model_state=model_state, hyperparameters=self.module_hparams,
                  batch=batch, loss_type=workload.loss_type,
                  optimizer_state=optimizer_state, eval_results=eval_results,
                  global_step=global_step, rng=rng)
    except Exception as e:  # pylint: disable=broad-except
      if _is_installed_training_complete(e):
        raise api.TrainingComplete(str(e)) from e
      raise
    if not isinstance(out, tuple) or len(out) not in (3, 4):
      raise api.SubmissionOutputError(
          f'{self.name}.update_params returned {_shape_of_return(out)}, '
          'expected (optimizer_state, params, model_state) or those and a '
          'metrics dict')
    metrics = out[3] if len(out) == 4 else {}
    if not isinstance(metrics, Mapping):
      raise api.SubmissionOutputError(
          f'{self.name}.update_params returned metrics of type '
          f'{type(metrics).__name__}, expected a dict of scalars')
    return api.StepOutput(out[0], out[1], out[2], metrics)

  def prepare_for_eval(self, workload, params, model_state, optimizer_state,
                       eval_results, global_step, rng):
    if not _defines(self.module, 'prepare_for_eval'):
      return optimizer_state, params, model_state
    out = _call(self.module, 'prepare_for_eval', workload=workload,
                current_param_container=params,
                current_params_types=params_types(workload),
                model_state=model_state, hyperparameters=self.module_hparams,
                loss_type=workload.loss_type,
                optimizer_state=optimizer_state, eval_results=eval_results,
                global_step=global_step, rng=rng)
    if not isinstance(out, tuple) or len(out) != 3:
      raise api.SubmissionOutputError(
          f'{self.name}.prepare_for_eval returned {_shape_of_return(out)}, '
          'expected (optimizer_state, params, model_state)')
    return out


def _is_installed_training_complete(error: Exception) -> bool:
  """Whether `error` is the `TrainingCompleteError` of an installed
  `algoperf` (ours subclasses `api.TrainingComplete` already)."""
  kind = type(error)
  return (kind.__name__ == 'TrainingCompleteError' and
          kind.__module__ == 'algoperf.spec' and
          not isinstance(error, api.TrainingComplete))


def _shape_of_return(out: Any) -> str:
  """'a tuple of 2', 'None', 'a list': what a malformed return looks like."""
  if isinstance(out, tuple):
    return f'a tuple of {len(out)}'
  return 'None' if out is None else f'a {type(out).__name__}'
