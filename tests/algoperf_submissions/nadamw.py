"""NAdamW in AlgoPerf's JAX submission form.

NAdam (Dozat, 2016: Adam with Nesterov's look-ahead on the first moment)
with decoupled weight decay (Loshchilov & Hutter, 2019), a learning rate
that warms up linearly from 0 for `warmup_factor * workload.step_hint`
steps and then decays along a cosine to 0 at `step_hint`, and optional
clipping of the gradient's global norm (`grad_clip`).

`label_smoothing` and `dropout_rate` reach the jitted step as traced,
replicated arguments, so that changing either between trials reuses the
compiled step's code path. The schedule runs inside
`optax.inject_hyperparams`, so the optimizer state holds the learning rate
of each update under `learning_rate`, where the harness reads it.

Hyperparameters: `nadamw_search_space.json` beside this file, one point per
trial.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from algoperf import jax_sharding_utils
from algoperf import spec

# Keeps the clipping factor finite when the gradient is exactly zero.
_GRAD_CLIP_EPS = 1e-6
# Minibatches for the workloads this submission was sized for; any other
# keeps its workload's batch regime.
_BATCH_SIZES = {'fmnist_fc': 250}


class ScaleByNadamState(NamedTuple):
  """NAdam's moment estimates and the number of updates made."""

  count: chex.Array
  mu: optax.Updates
  nu: optax.Updates


def scale_by_nadam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                   eps_root: float = 0.0) -> optax.GradientTransformation:
  """Rescales gradients by NAdam's bias-corrected moment estimates.

  Args:
    b1: decay of the first moment (momentum).
    b2: decay of the second moment.
    eps: added to the root of the second moment, outside the root.
    eps_root: added to the second moment, inside the root.

  Returns:
    The transformation; its updates are to be scaled by the negated
    learning rate.
  """

  def init_fn(params: optax.Params) -> ScaleByNadamState:
    return ScaleByNadamState(count=jnp.zeros([], jnp.int32),
                             mu=jax.tree.map(jnp.zeros_like, params),
                             nu=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates: optax.Updates, state: ScaleByNadamState,
                params: optax.Params | None = None
                ) -> Tuple[optax.Updates, ScaleByNadamState]:
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g),
                      state.nu, updates)
    count = optax.safe_int32_increment(state.count)
    # Nesterov's look-ahead: the first moment one step on, were the
    # gradient to stay as it is; it is what NAdam steps along.
    mu_ahead = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, mu, updates)
    mu_correction = 1 - b1**count
    nu_correction = 1 - b2**count
    step = jax.tree.map(
        lambda m, v: (m / mu_correction) /
        (jnp.sqrt(v / nu_correction + eps_root) + eps), mu_ahead, nu)
    return step, ScaleByNadamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def nadamw(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9,
           b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0,
           weight_decay: float = 0.0) -> optax.GradientTransformation:
  """NAdam with weight decay decoupled from the gradient's moments.

  The decay is added to NAdam's step before the learning rate scales it,
  so it shrinks the weights by `learning_rate * weight_decay` of
  themselves per update, whatever the gradient's scale.
  """
  return optax.chain(
      scale_by_nadam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
      optax.add_decayed_weights(weight_decay),
      optax.scale_by_learning_rate(learning_rate))


def warmup_cosine_schedule(hyperparameters: spec.Hyperparameters,
                           step_hint: int) -> optax.Schedule:
  """Linear warmup from 0, then a cosine decay to 0 at `step_hint`."""
  peak = hyperparameters.learning_rate
  warmup_steps = int(hyperparameters.warmup_factor * step_hint)
  warmup = optax.linear_schedule(init_value=0.0, end_value=peak,
                                 transition_steps=max(warmup_steps, 1))
  cosine = optax.cosine_decay_schedule(
      init_value=peak, decay_steps=max(step_hint - warmup_steps, 1))
  return optax.join_schedules([warmup, cosine], boundaries=[warmup_steps])


def init_optimizer_state(workload: spec.Workload,
                         model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState,
                         hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
  """NAdamW's state, sized from the workload's parameter shapes."""
  del model_params, model_state, rng
  optimizer = optax.inject_hyperparams(nadamw)(
      learning_rate=warmup_cosine_schedule(hyperparameters,
                                           workload.step_hint),
      b1=1.0 - hyperparameters.one_minus_beta1,
      b2=hyperparameters.beta2,
      eps=1e-8,
      weight_decay=hyperparameters.weight_decay)
  params_zeros_like = jax.tree.map(lambda s: jnp.zeros(s.shape_tuple),
                                   workload.param_shapes)
  optimizer_state = optimizer.init(params_zeros_like)
  return jax_sharding_utils.replicate(optimizer_state), optimizer.update


def train_step(workload: spec.Workload,
               opt_update_fn: Callable[..., Any],
               model_state: spec.ModelAuxiliaryState,
               optimizer_state: spec.OptimizerState,
               current_param_container: spec.ParameterContainer,
               batch: Dict[str, spec.Tensor],
               rng: spec.RandomState,
               grad_clip: float | None,
               label_smoothing: float,
               dropout_rate: float):
  """One update on the batch; jitted by `update_params`.

  Returns:
    The new optimizer state, params and model state, the mean training
    loss before the update and the gradient's global norm before clipping.
  """

  def _loss_fn(params):
    logits, new_model_state = workload.model_fn(
        params, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
        update_batch_norm=True, dropout_rate=dropout_rate)
    loss_dict = workload.loss_fn(label_batch=batch['targets'],
                                 logits_batch=logits,
                                 mask_batch=batch.get('weights'),
                                 label_smoothing=label_smoothing)
    mean_loss = loss_dict['summed'] / loss_dict['n_valid_examples']
    return mean_loss, new_model_state

  (loss, new_model_state), grad = jax.value_and_grad(
      _loss_fn, has_aux=True)(current_param_container)
  grad_norm = optax.tree.norm(grad)
  if grad_clip is not None:
    scale = jnp.minimum(1.0, grad_clip / (grad_norm + _GRAD_CLIP_EPS))
    grad = jax.tree.map(lambda g: g * scale, grad)
  updates, new_optimizer_state = opt_update_fn(grad, optimizer_state,
                                               current_param_container)
  updated_params = optax.apply_updates(current_param_container, updates)
  return new_optimizer_state, updated_params, new_model_state, loss, grad_norm


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
  """One NAdamW step on the batch, split over the devices by example."""
  del current_params_types, loss_type, eval_results
  optimizer_state, opt_update_fn = optimizer_state
  grad_clip = getattr(hyperparameters, 'grad_clip', None)
  replicated = jax_sharding_utils.get_replicate_sharding()
  sharded = jax_sharding_utils.get_batch_dim_sharding()
  jitted_train_step = jax.jit(
      train_step,
      static_argnums=(0, 1),
      donate_argnums=(2, 3, 4),
      in_shardings=(replicated, replicated, replicated, sharded, replicated,
                    replicated, replicated, replicated),
      out_shardings=(replicated,) * 5)
  new_optimizer_state, new_params, new_model_state, loss, grad_norm = (
      jitted_train_step(workload, opt_update_fn, model_state, optimizer_state,
                        current_param_container, batch, rng, grad_clip,
                        hyperparameters.label_smoothing,
                        hyperparameters.dropout_rate))
  if global_step % 100 == 0 and workload.metrics_logger is not None:
    workload.metrics_logger.append_scalar_metrics(
        {'loss': loss, 'grad_norm': grad_norm}, global_step)
  return (new_optimizer_state, opt_update_fn), new_params, new_model_state


def get_batch_size(workload_name: str) -> int | None:
  """The minibatch size for `workload_name`; None keeps its regime."""
  return _BATCH_SIZES.get(workload_name)


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
