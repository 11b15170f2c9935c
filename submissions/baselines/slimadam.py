"""SlimAdam: Adam whose second moment of each kernel is its mean along
the fan-in (or fan-out) axes.

For a kernel (a leaf of two or more axes) with compressed axes K,

  m ← β1 m + (1 − β1) g,  ν ← β2 ν + (1 − β2) mean_K(g²),
  x ← x − η P⁻¹ m,  P = (1 − β1ᵗ) (sqrt(ν / (1 − β2ᵗ)) + ε),

with ν of size 1 along K and P broadcast over it: every entry of a fan-in
slice shares one second moment. Vectors (biases, scales) keep Adam's full
ν, so on vectors alone SlimAdam is Adam with bias correction (P is
`adaptive.adam_preconditioner`; m / P is Kalra et al.'s m̂ / (sqrt(ν̂) + ε)
up to rounding). With P frozen it is EMA heavy-ball with β = β1: the
threshold on λ1(P⁻¹H) is (2 + 2β1) / ((1 − β1) η), 38/η at β1 = 0.9.

Which axes: Kalra et al. choose them per layer from a signal-to-noise
analysis, or by layer type from a name table (their Table 1: fan-in for
attention queries and keys, a vision stem and the output head, fan-out
for values, attention outputs and MLP layers, none for norms). Here the
rule is one that needs no names: `compress='fan_in'` (the default) takes
every axis but the last, the fan-in of a Dense or Conv kernel in flax's
(..., in, out) layout as `jax.nn.initializers.variance_scaling` counts it;
`compress='fan_out'` takes the last axis.

References:
  Kalra et al., 2025, When Can You Get Away with Low Memory Adam?; code at
  https://github.com/dayal-kalra/low-memory-adam.
  Kingma & Ba, 2015, Adam: A Method for Stochastic Optimization,
  arXiv:1412.6980.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from submissions.baselines import adaptive

DEFAULT_HPARAMS = {'learning_rate': 1e-3, 'beta1': 0.9, 'beta2': 0.999,
                   'eps': 1e-7, 'compress': 'fan_in'}

# The axes whose second moments a kernel of `ndim` axes shares.
_COMPRESSED_AXES = {
    'fan_in': lambda ndim: tuple(range(ndim - 1)),
    'fan_out': lambda ndim: (ndim - 1,),
}


class SlimAdamState(NamedTuple):
  """State of `scale_by_slimadam`; `nu` is size 1 along compressed axes."""

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def compressed_axes(shape: tuple[int, ...], compress: str) -> tuple[int, ...]:
  """The axes of a leaf of `shape` whose second moment is averaged."""
  if compress not in _COMPRESSED_AXES:
    raise ValueError(f'compress must be one of {sorted(_COMPRESSED_AXES)}, '
                     f'got {compress!r}')
  return _COMPRESSED_AXES[compress](len(shape)) if len(shape) >= 2 else ()


def _mean_square(g: jax.Array, compress: str) -> jax.Array:
  return jnp.mean(jnp.square(g), axis=compressed_axes(g.shape, compress),
                  keepdims=True)


def scale_by_slimadam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7,
                      *, compress: str = 'fan_in'
                      ) -> optax.GradientTransformation:
  """Scales updates to m / P with SlimAdam's compressed second moment.

  Args:
    b1: decay of the first moment (EMA heavy-ball momentum).
    b2: decay of the second moment.
    eps: added to sqrt(ν̂) in P.
    compress: 'fan_in' or 'fan_out': which axes of each kernel share ν.

  Returns:
    A `GradientTransformation` whose state is a `SlimAdamState`.
  """

  def init_fn(params):
    mu = jax.tree.map(jnp.zeros_like, params)
    nu = jax.tree.map(lambda x: jnp.zeros_like(_mean_square(x, compress)),
                      params)
    return SlimAdamState(jnp.zeros([], jnp.int32), mu, nu)

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    mean_squares = jax.tree.map(lambda g: _mean_square(g, compress), updates)
    nu = optax.tree.update_moment(mean_squares, state.nu, b2, 1)
    count = optax.safe_increment(state.count)
    p = adaptive.adam_preconditioner(count, nu, b1=b1, b2=b2, eps=eps,
                                     bias_correction=True)
    new_updates = jax.tree.map(lambda m, d: m / d, mu, p)
    return new_updates, SlimAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(hparams) -> optax.GradientTransformation:
  return adaptive.with_learning_rate(
      scale_by_slimadam(hparams['beta1'], hparams['beta2'], hparams['eps'],
                        compress=hparams['compress']),
      hparams['learning_rate'])


def preconditioner(optimizer_state, hparams) -> Any:
  """Adam's bias-corrected P of the compressed ν, broadcast to the params."""
  moments = optax.tree_utils.tree_get(optimizer_state, 'SlimAdamState')
  p = adaptive.adam_preconditioner(
      moments.count, moments.nu, b1=hparams['beta1'], b2=hparams['beta2'],
      eps=hparams['eps'], bias_correction=True)
  return jax.tree.map(lambda d, m: jnp.broadcast_to(d, m.shape), p,
                      moments.mu)


dynamics = adaptive.ema_heavy_ball
