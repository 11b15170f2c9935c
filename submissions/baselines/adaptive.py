"""Adam's moments with optional bias correction and a freezable preconditioner.

optax's `scale_by_adam` always corrects the bias; the paper's default Adam
does not, and frozen Adam holds the preconditioner fixed. This transform
covers both and keeps optax's state layout (`count`, `mu`, `nu`);
`with_learning_rate` follows it with the step −η, η held in the optimizer
state.

References:
  Kingma & Ba, 2015, Adam: A Method for Stochastic Optimization,
  arXiv:1412.6980.
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Eq. (1)-(2) and Sec. 3 (frozen Adam).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions import dynamics as dynamics_lib


class AdamMomentsState(NamedTuple):
  """State of `scale_by_adam_moments`, laid out as optax's ScaleByAdamState."""

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def adam_preconditioner(count: jax.Array, nu: Any, *, b1: float, b2: float,
                        eps: float, bias_correction: bool) -> Any:
  """The diagonal P with Adam's update equal to −η P⁻¹ m.

  Without bias correction P = sqrt(ν) + ε. With it, Adam's update is
  m̂ / (sqrt(ν̂) + ε) with m̂ = m / (1 − β1ᵗ) and ν̂ = ν / (1 − β2ᵗ), so
  P = (1 − β1ᵗ) (sqrt(ν̂) + ε). The paper's Eq. (2) prints the β1 factor
  inverted; this form is the one whose P⁻¹ m is the update actually taken
  (tests check that), and the two agree once β1ᵗ is negligible.

  Args:
    count: number of updates so far (t); the preconditioner of step t.
    nu: second-moment EMA, params-shaped.
    b1, b2, eps: Adam's hyperparameters.
    bias_correction: whether the update corrects the moments' bias.

  Returns:
    A params-shaped pytree of positive entries.
  """
  if not bias_correction:
    return jax.tree.map(lambda v: jnp.sqrt(v) + eps, nu)
  t = jnp.maximum(count, 1).astype(jnp.float32)
  c1, c2 = 1 - b1**t, 1 - b2**t
  return jax.tree.map(lambda v: c1 * (jnp.sqrt(v / c2) + eps), nu)


def scale_by_adam_moments(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-7,
    *,
    bias_correction: bool = False,
    freeze_step: int | None = None,
    initial_nu: Callable[[Any], Any] | None = None,
) -> optax.GradientTransformation:
  """Scales updates by Adam's moments: m / P, P from `adam_preconditioner`.

  Args:
    b1: decay of the first moment (EMA-style heavy-ball momentum).
    b2: decay of the second moment.
    eps: added to sqrt(ν) in P.
    bias_correction: correct both moments' bias, as in Kingma & Ba.
    freeze_step: when set, ν stops changing after this many updates, so the
      preconditioner is frozen from then on (the paper's frozen Adam).
    initial_nu: maps the params to the starting ν (zeros when None); with
      `freeze_step=0` this fixes a preconditioner saved from another run.

  Returns:
    A `GradientTransformation` whose state is an `AdamMomentsState`.
  """

  def init_fn(params):
    mu = jax.tree.map(jnp.zeros_like, params)
    # A distinct buffer from mu: the train step donates the state.
    nu = (jax.tree.map(jnp.zeros_like, params) if initial_nu is None
          else initial_nu(params))
    return AdamMomentsState(jnp.zeros([], jnp.int32), mu, nu)

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    if freeze_step is not None:
      keep = state.count >= freeze_step
      nu = jax.tree.map(lambda old, new: jnp.where(keep, old, new),
                        state.nu, nu)
    count = optax.safe_increment(state.count)
    p = adam_preconditioner(count, nu, b1=b1, b2=b2, eps=eps,
                            bias_correction=bias_correction)
    new_updates = jax.tree.map(lambda m, d: m / d, mu, p)
    return new_updates, AdamMomentsState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def with_learning_rate(transform: optax.GradientTransformation,
                       learning_rate: float | optax.Schedule
                       ) -> optax.GradientTransformation:
  """`transform`, then the step −η, with η held in the optimizer state.

  Built with `optax.inject_hyperparams`, so the harness reads η from the
  state and `learning_rate` may be a schedule; only η is injected, the
  transform's own constants stay as they are.

  Args:
    transform: the direction, e.g. `scale_by_adam_moments(...)`.
    learning_rate: η, or a schedule `step -> η`.

  Returns:
    A `GradientTransformation` whose state is optax's
    `InjectStatefulHyperparamsState` around `(transform's state, scale's
    state)`.
  """

  def descend(learning_rate):
    return optax.chain(transform, optax.scale_by_learning_rate(learning_rate))

  return optax.inject_hyperparams(descend)(learning_rate=learning_rate)


def ema_heavy_ball(hparams) -> dynamics_lib.Dynamics:
  """Adam's dynamics: EMA heavy-ball with β = β1 (threshold 38/η at 0.9)."""
  return dynamics_lib.Dynamics(momentum=dynamics_lib.Momentum.HEAVY_BALL,
                               style=dynamics_lib.Style.EMA,
                               beta=hparams['beta1'])


def preconditioner_from_state(optimizer_state, hparams, *, state_type: type,
                              bias_correction: bool) -> Any:
  """`adam_preconditioner` of the Adam-like sub-state of `optimizer_state`."""
  moments = optax.tree_utils.tree_get(optimizer_state, state_type.__name__)
  return adam_preconditioner(moments.count, moments.nu, b1=hparams['beta1'],
                             b2=hparams['beta2'], eps=hparams['eps'],
                             bias_correction=bias_correction)
