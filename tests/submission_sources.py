"""Source text shared by the tests' small AlgoPerf-form submission files.

Each test writes its own `init_optimizer_state` and `update_params`; the
data functions are the same everywhere: the harness's batch size and the
next batch of the queue. The text is indented as the tests' own sources
are, so `textwrap.dedent(own + NEXT_BATCH)` gives a module.
"""

# The mean training loss of a batch, as AlgoPerf's baselines compute it
# from `model_fn` and `loss_fn`; the module imports `spec` from algoperf.
MEAN_LOSS = '''
    def _mean_loss(workload, params, model_state, batch, rng):
      logits, model_state = workload.model_fn(
          params, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
          update_batch_norm=True)
      out = workload.loss_fn(batch['targets'], logits, batch.get('weights'))
      return out['summed'] / out['n_valid_examples'], model_state
    '''

# `_step`, a jitted optax step on the workload's gradient that returns the
# loss; the module defines `_OPTIMIZER` (and imports functools, jax, optax
# and algoperf's spec).
OPTAX_STEP = MEAN_LOSS + '''
    @functools.partial(jax.jit, static_argnums=0)
    def _step(workload, params, opt_state, model_state, batch, rng):
      (loss, model_state), grads = jax.value_and_grad(
          functools.partial(_mean_loss, workload), has_aux=True)(
              params, model_state, batch, rng)
      updates, opt_state = _OPTIMIZER.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, model_state, loss
    '''

# `OPTAX_STEP` as the submission's update.
OPTAX_UPDATE = OPTAX_STEP + '''
    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      params, opt_state, model_state, loss = _step(
          workload, current_param_container, optimizer_state, model_state,
          batch, rng)
      return opt_state, params, model_state, {'loss': loss}
    '''

NEXT_BATCH = '''
    def get_batch_size(workload_name):
      return None

    def data_selection(workload, input_queue, optimizer_state,
                       current_param_container, model_state, hyperparameters,
                       global_step, rng):
      return next(input_queue)
    '''
