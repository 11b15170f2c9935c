"""Heavy-ball SGD with decoupled weight decay on the weights, not the biases.

In AlgoPerf's JAX submission form. Which parameters decay is decided at
every update from `current_params_types`, the parameter-type tree AlgoPerf
passes beside the parameters: weights (dense, convolution, embedding and
attention kernels) decay, while biases and normalisation scales and
offsets do not. Without that tree, or with one that does not describe the
parameters, `update_params` raises rather than guess a mask: decaying a
bias or a normalisation scale changes the model that is trained, silently.

`SEEN['decay_mask']` keeps the mask of the latest update, for the tests to
read.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import jax
import optax

from algoperf import jax_sharding_utils
from algoperf import spec

_NOT_DECAYED = frozenset({
    spec.ParameterType.BIAS,
    spec.ParameterType.BATCH_NORM_SCALE,
    spec.ParameterType.BATCH_NORM_BIAS,
    spec.ParameterType.LAYER_NORM_SCALE,
    spec.ParameterType.LAYER_NORM_BIAS,
    spec.ParameterType.ATTENTION_BIAS,
})
SEEN: Dict[str, Any] = {}


def decay_mask(current_params_types: spec.ParameterTypeTree,
               params: spec.ParameterContainer) -> Any:
  """True at each parameter that weight decay applies to.

  Raises:
    ValueError: `current_params_types` is None, or not shaped like the
      params.
    TypeError: a leaf of it is no `spec.ParameterType`.
  """
  if current_params_types is None:
    raise ValueError(
        'masked_weight_decay needs current_params_types, the tree of '
        'spec.ParameterType beside the params, to exempt biases from weight '
        'decay; got None')
  types_structure = jax.tree.structure(current_params_types)
  params_structure = jax.tree.structure(params)
  if types_structure != params_structure:
    raise ValueError(
        'current_params_types is not shaped like the params: '
        f'{types_structure} where {params_structure} was expected')
  for path, kind in jax.tree_util.tree_flatten_with_path(
      current_params_types)[0]:
    if not isinstance(kind, spec.ParameterType):
      raise TypeError(
          f'current_params_types{jax.tree_util.keystr(path)} is '
          f'{kind!r}, not a spec.ParameterType')
  return jax.tree.map(lambda kind: kind not in _NOT_DECAYED,
                      current_params_types)


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
  """The momentum buffer; the decay needs no state of its own."""
  del workload, model_state, rng
  optimizer = optax.inject_hyperparams(optax.sgd)(
      learning_rate=hyperparameters.learning_rate,
      momentum=1.0 - hyperparameters.one_minus_beta1)
  return optimizer.init(model_params), optimizer.update


def train_step(workload: spec.Workload,
               opt_update_fn: Callable[..., Any],
               model_state: spec.ModelAuxiliaryState,
               optimizer_state: spec.OptimizerState,
               current_param_container: spec.ParameterContainer,
               batch: Dict[str, spec.Tensor],
               rng: spec.RandomState,
               decay_rates: Any,
               learning_rate: float):
  """One momentum step plus the decay; jitted by `update_params`.

  `decay_rates` holds each parameter's weight decay (0 where it has none),
  so the step shrinks each parameter by `learning_rate` times its rate of
  itself, apart from the momentum of the gradient.
  """

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
      _loss_fn, has_aux=True)(current_param_container)
  updates, new_optimizer_state = opt_update_fn(grad, optimizer_state,
                                               current_param_container)
  updates = jax.tree.map(lambda u, p, rate: u - learning_rate * rate * p,
                         updates, current_param_container, decay_rates)
  updated_params = optax.apply_updates(current_param_container, updates)
  return new_optimizer_state, updated_params, new_model_state


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
  """One step, decaying the parameters `current_params_types` calls
  weights."""
  del loss_type, eval_results, global_step
  mask = decay_mask(current_params_types, current_param_container)
  SEEN['decay_mask'] = mask
  decay_rates = jax.tree.map(
      lambda decays: hyperparameters.weight_decay if decays else 0.0, mask)
  optimizer_state, opt_update_fn = optimizer_state
  replicated = jax_sharding_utils.get_replicate_sharding()
  sharded = jax_sharding_utils.get_batch_dim_sharding()
  jitted_train_step = jax.jit(
      train_step,
      static_argnums=(0, 1),
      in_shardings=(replicated, replicated, replicated, sharded, replicated,
                    replicated, replicated),
      out_shardings=(replicated,) * 3)
  new_optimizer_state, new_params, new_model_state = jitted_train_step(
      workload, opt_update_fn, model_state, optimizer_state,
      current_param_container, batch, rng, decay_rates,
      hyperparameters.learning_rate)
  return (new_optimizer_state, opt_update_fn), new_params, new_model_state


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
