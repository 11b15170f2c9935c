"""Baseline submissions, one small module each, selectable by name.

Each module defines `make_optimizer(hparams)`, `DEFAULT_HPARAMS`, the AEoS
hooks `dynamics(hparams)` and (for preconditioned methods)
`preconditioner(optimizer_state, hparams)`, and ships its tuning search space
as `<name>_search_space.json` beside it.

Each optimizer holds its learning rate in its state, where the harness reads
it: `optax.inject_hyperparams` injects η alone, and the other
hyperparameters stay static Python floats, so the arithmetic is optax's own
(as a float32 array β1 would round 1 − β1 differently and change Adam's
update in the last bit).
"""
