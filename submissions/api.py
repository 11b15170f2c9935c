"""The submission API: what the harness calls, in AlgoPerf's names and roles.

A submission is a Python module in one of two forms.

AlgoPerf form, the functions of AlgoPerf's `spec.py` with the same names,
parameters and roles, so an AlgoPerf JAX submission ports with few edits::

  init_optimizer_state(workload, model_params, model_state, hyperparameters,
                       rng) -> optimizer_state
  update_params(workload, current_param_container, current_params_types,
                model_state, hyperparameters, batch, loss_type,
                optimizer_state, eval_results, global_step, rng)
      -> (optimizer_state, params, model_state)       # or a 4th item:
                                                       # a dict of metrics
  get_batch_size(workload_name) -> int
  data_selection(workload, input_queue, optimizer_state,
                 current_param_container, model_state, hyperparameters,
                 global_step, rng) -> batch
  prepare_for_eval(...)  # optional; same parameters as update_params less
                         # `batch`; returns (optimizer_state, params, state)

Differences from AlgoPerf: batches carry a leading chunk axis (see
`workloads.base`), and `workload.loss_and_grad` returns the chunk-accumulated
loss and gradient, which is what `update_params` should differentiate.

Short form, a module exposing `make_optimizer(hparams) ->
optax.GradientTransformation`; the harness adapts it (see `short_form.py`).

Either form may add the AEoS hooks that the curvature probe reads::

  preconditioner(optimizer_state, hyperparameters) -> params-shaped pytree
      of the diagonal of P, or None when the method has none
  dynamics(hyperparameters) -> harness.stability.Dynamics

and `DEFAULT_HPARAMS` (a dict, used when no hyperparameters are given).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Iterator, Mapping

import jax

from harness import stability
from workloads import base

OptimizerState = Any
Params = Any


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

  def dynamics(self) -> stability.Dynamics | None:
    """The update's dynamics; None when the submission does not say."""
    return None
