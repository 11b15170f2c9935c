"""Adam in AlgoPerf's JAX form, for the harness-overhead benchmark.

The step is jitted once, at module level, so that the benchmark's bare loop
can call the very same compiled update: what the two loops differ by is
then only what the harness adds around `update_params`. The optimizer's
update function travels in the optimizer state, as in AlgoPerf's baselines.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterator, List, Tuple

import jax
import optax

from algoperf import spec

DEFAULT_HPARAMS = {'learning_rate': 1e-3}


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3))
def train_step(workload: spec.Workload, update_fn: Any,
               params: spec.ParameterContainer, opt_state: Any,
               model_state: spec.ModelAuxiliaryState,
               batch: Dict[str, spec.Tensor]):
  """One Adam step on the batch's mean loss; returns the loss before it."""

  def mean_loss(p):
    logits, _ = workload.model_fn(p, batch, model_state,
                                  spec.ForwardPassMode.TRAIN, None,
                                  update_batch_norm=False)
    out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
    return out['summed'] / out['n_valid_examples']

  loss, grads = jax.value_and_grad(mean_loss)(params)
  updates, opt_state = update_fn(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
  del workload, model_state, rng
  optimizer = optax.adam(hyperparameters.learning_rate)
  return optimizer.init(model_params), optimizer.update


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
  del current_params_types, hyperparameters, loss_type, eval_results
  del global_step, rng
  opt_state, update_fn = optimizer_state
  params, opt_state, loss = train_step(workload, update_fn,
                                       current_param_container, opt_state,
                                       model_state, batch)
  return (opt_state, update_fn), params, model_state, {'loss': loss}


def get_batch_size(workload_name: str) -> int | None:
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
  del workload, optimizer_state, current_param_container, model_state
  del hyperparameters, global_step, rng
  return next(input_queue)
