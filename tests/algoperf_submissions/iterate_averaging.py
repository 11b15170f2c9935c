"""Heavy-ball SGD evaluated at an exponential moving average of its iterates.

In AlgoPerf's JAX submission form, with `prepare_for_eval`. Training steps
one sequence of parameters, the iterates x_t; the optimizer state keeps
them, with the average a_t = ema_decay * a_{t-1} + (1 - ema_decay) * x_t
(a_0 = x_0). `prepare_for_eval` hands the average to evaluation.

AlgoPerf's runner continues training from the state `prepare_for_eval`
returns, so after an evaluation `update_params` is given the average as its
params. As in AlgoPerf's schedule-free submission, what training needs is
kept in the optimizer state: `update_params` steps the iterate held there,
whichever params it is given, so a run continues exactly where its
training was, evaluated or not. Between evaluations the params are the
iterate itself.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import jax
import optax

from algoperf import jax_sharding_utils
from algoperf import spec


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
  """The iterate, its average and the momentum buffer, all at the start."""
  del workload, model_state, rng
  optimizer = optax.inject_hyperparams(optax.sgd)(
      learning_rate=hyperparameters.learning_rate,
      momentum=1.0 - hyperparameters.one_minus_beta1)
  state = {'iterate': model_params, 'average': model_params,
           'momentum': optimizer.init(model_params)}
  return state, optimizer.update


def train_step(workload: spec.Workload,
               opt_update_fn: Callable[..., Any],
               model_state: spec.ModelAuxiliaryState,
               optimizer_state: Dict[str, Any],
               batch: Dict[str, spec.Tensor],
               rng: spec.RandomState,
               ema_decay: float):
  """One momentum step of the iterate, then the average moved towards it.

  Returns:
    The new optimizer state, the new iterate and the new model state.
  """
  iterate = optimizer_state['iterate']

  def _loss_fn(params):
    logits, new_model_state = workload.model_fn(
        params, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
        update_batch_norm=True)
    loss_dict = workload.loss_fn(label_batch=batch['targets'],
                                 logits_batch=logits,
                                 mask_batch=batch.get('weights'))
    return (loss_dict['summed'] / loss_dict['n_valid_examples'],
            new_model_state)

  (_, new_model_state), grad = jax.value_and_grad(
      _loss_fn, has_aux=True)(iterate)
  updates, momentum = opt_update_fn(grad, optimizer_state['momentum'],
                                    iterate)
  iterate = optax.apply_updates(iterate, updates)
  average = jax.tree.map(lambda a, x: ema_decay * a + (1 - ema_decay) * x,
                         optimizer_state['average'], iterate)
  new_optimizer_state = {'iterate': iterate, 'average': average,
                         'momentum': momentum}
  return new_optimizer_state, iterate, new_model_state


def update_params(workload: spec.Workload,
                  current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree,
                  model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters,
                  batch: Dict[str, spec.Tensor],
                  loss_type: spec.LossType,
                  optimizer_state: spec.OptimizerState,
                  eval_results: List[Tuple[int, float]],
                  global_step: int,
                  rng: spec.RandomState) -> spec.UpdateReturn:
  """One step of the iterate in the optimizer state.

  `current_param_container` is not read: after an evaluation it is the
  average, which training does not step (see the module docstring).
  """
  del current_param_container, current_params_types, loss_type
  del eval_results, global_step
  optimizer_state, opt_update_fn = optimizer_state
  replicated = jax_sharding_utils.get_replicate_sharding()
  sharded = jax_sharding_utils.get_batch_dim_sharding()
  # Nothing is donated: the params the harness holds after an evaluation
  # are the average inside `optimizer_state`, one buffer in two places.
  jitted_train_step = jax.jit(
      train_step,
      static_argnums=(0, 1),
      in_shardings=(replicated, replicated, sharded, replicated, replicated),
      out_shardings=(replicated,) * 3)
  new_optimizer_state, new_params, new_model_state = jitted_train_step(
      workload, opt_update_fn, model_state, optimizer_state, batch, rng,
      hyperparameters.ema_decay)
  return (new_optimizer_state, opt_update_fn), new_params, new_model_state


def prepare_for_eval(workload: spec.Workload,
                     current_param_container: spec.ParameterContainer,
                     current_params_types: spec.ParameterTypeTree,
                     model_state: spec.ModelAuxiliaryState,
                     hyperparameters: spec.Hyperparameters,
                     loss_type: spec.LossType,
                     optimizer_state: spec.OptimizerState,
                     eval_results: List[Tuple[int, float]],
                     global_step: int,
                     rng: spec.RandomState) -> spec.UpdateReturn:
  """The average of the iterates as the params to evaluate; the optimizer
  state, which training continues from, unchanged."""
  del workload, current_param_container, current_params_types
  del hyperparameters, loss_type, eval_results, global_step, rng
  state, _ = optimizer_state
  return optimizer_state, state['average'], model_state


def get_batch_size(workload_name: str) -> int | None:
  """None: every workload's own batch regime."""
  del workload_name
  return None


def data_selection(workload: spec.Workload,
                   input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState,
                   current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState,
                   hyperparameters: spec.Hyperparameters,
                   global_step: int,
                   rng: spec.RandomState) -> Dict[str, spec.Tensor]:
  """The next batch of the queue, as the harness placed it."""
  del workload, optimizer_state, current_param_container, model_state
  del hyperparameters, global_step, rng
  return next(input_queue)
