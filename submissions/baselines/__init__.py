"""Baseline submissions, one small module each, selectable by name.

Each module defines `make_optimizer(hparams)`, `DEFAULT_HPARAMS`, the AEoS
hooks `dynamics(hparams)` and (for preconditioned methods)
`preconditioner(optimizer_state, hparams)`, and ships its tuning search space
as `<name>_search_space.json` beside it.
"""
