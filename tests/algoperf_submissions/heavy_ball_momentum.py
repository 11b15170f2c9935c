"""Heavy-ball momentum in AlgoPerf's JAX submission form.

Written from AlgoPerf's documented API (`algoperf/spec.py`): module-level
imports of `algoperf.spec` and `algoperf.jax_sharding_utils`, a step jitted
with replicated and batch-sharded inputs, weight decay masked to the
parameters whose `current_params_types` entry is not a bias. Its tuning
search space, in AlgoPerf's min/max and feasible_points form, is
`heavy_ball_momentum_search_space.json` beside this file.

`SEEN` keeps what `update_params` was given, for the tests to read.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import jax
import optax

from algoperf import jax_sharding_utils
from algoperf import spec

DEFAULT_HPARAMS = {'learning_rate': 0.05, 'one_minus_beta1': 0.1,
                   'weight_decay': 1e-4}
SEEN: Dict[str, Any] = {}


def _decay_mask(params_types: spec.ParameterTypeTree | None,
                params: spec.ParameterContainer) -> Any:
  """True where weight decay applies: every leaf but the biases."""
  if params_types is None:
    return jax.tree.map(lambda _: True, params)
  return jax.tree.map(lambda t: t != spec.ParameterType.BIAS, params_types)


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
  del model_state, rng
  mask = _decay_mask(getattr(workload, 'model_params_types', None),
                     model_params)
  optimizer = optax.chain(
      optax.add_decayed_weights(hyperparameters.weight_decay, mask),
      optax.inject_hyperparams(optax.sgd)(
          learning_rate=hyperparameters.learning_rate,
          momentum=1.0 - hyperparameters.one_minus_beta1))
  return optimizer.init(model_params), optimizer.update


def _train_step(workload, update_fn, model_state, optimizer_state, params,
                batch, rng):
  def loss_fn(p):
    logits, new_model_state = workload.model_fn(
        p, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
        update_batch_norm=True)
    losses = workload.loss_fn(label_batch=batch['targets'],
                              logits_batch=logits,
                              mask_batch=batch.get('weights'))
    return losses['summed'] / losses['n_valid_examples'], new_model_state

  (loss, new_model_state), grad = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  updates, optimizer_state = update_fn(grad, optimizer_state, params)
  return (optimizer_state, optax.apply_updates(params, updates),
          new_model_state, loss)


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
  del hyperparameters, eval_results
  SEEN['current_params_types'] = current_params_types
  SEEN['loss_type'] = loss_type
  SEEN['steps'] = global_step + 1
  optimizer_state, update_fn = optimizer_state
  replicated = jax_sharding_utils.get_replicate_sharding()
  sharded = jax_sharding_utils.get_batch_dim_sharding()
  step = jax.jit(
      _train_step, static_argnums=(0, 1),
      in_shardings=(replicated, replicated, replicated, sharded, replicated),
      out_shardings=(replicated, replicated, replicated, replicated))
  optimizer_state, params, model_state, loss = step(
      workload, update_fn, model_state, optimizer_state,
      current_param_container, batch, rng)
  SEEN['loss'] = loss
  return (optimizer_state, update_fn), params, model_state


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
