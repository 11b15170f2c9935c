"""Source text shared by the tests' small AlgoPerf-form submission files.

Each test writes its own `init_optimizer_state` and `update_params`; the
data functions are the same everywhere: the harness's batch size and the
next batch of the queue. The text is indented as the tests' own sources
are, so `textwrap.dedent(own + NEXT_BATCH)` gives a module.
"""

NEXT_BATCH = '''
    def get_batch_size(workload_name):
      return None

    def data_selection(workload, input_queue, optimizer_state,
                       current_param_container, model_state, hyperparameters,
                       global_step, rng):
      return next(input_queue)
    '''
