"""Wide Residual Networks, with or without batch normalisation.

The network of Cohen et al. (2022), App. G.1: "four blocks per group, and a
channel multiplier of 10", i.e. WRN-28-10 (depth 6·4 + 4 = 28). Blocks are
pre-activation (BN → ReLU → conv3x3 → BN → ReLU → conv3x3) with a 1x1
projection of the activated input when the shape changes, as in the
init2winit implementation the paper's authors used. Without batch
normalisation ("un-normalized"), the normalisations are the identity and "a
learnable scalar multiplier (initialized to 1)" scales each residual branch.

Parameter counts (`jax.eval_shape`, 32x32x3 inputs; checked in
tests/test_workloads_large.py):

| network | classes | BN | parameters |
|---|---|---|---|
| WRN-28-10 | 100 | yes | 36,536,884 |
| WRN-28-10 | 10 | no | 36,461,254 |
| WRN-28-4 | 100 | yes | 5,872,180 |

The published WRN-28-10 count is 36.5M (Zagoruyko & Komodakis 2016,
Table 4); ours differs by a 1x1 rather than 3x3 shortcut convolution.

References:
  S. Zagoruyko and N. Komodakis, "Wide Residual Networks", BMVC 2016,
  arXiv:1605.07146.
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022), Appendix G.1.
  init2winit, `init2winit/model_lib/wide_resnet.py` (github.com/google/
  init2winit).
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_BASE_CHANNELS = (16, 32, 64)  # Per group, times the channel multiplier.


class ScalarMultiply(nn.Module):
  """Multiplies its input by one learnable scalar, initialised to 1."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.param('scale', nn.initializers.ones, ())
    return x * scale


def _identity(x: jax.Array) -> jax.Array:
  return x


class WideResNetBlock(nn.Module):
  """One pre-activation residual block.

  Attributes:
    channels: output channels.
    strides: of the first convolution and of the projection.
    norm: a BatchNorm constructor, or None for no normalisation (then the
      residual branch is scaled by a learnable scalar).
  """

  channels: int
  strides: tuple[int, int] = (1, 1)
  norm: Callable[..., nn.Module] | None = None

  def _normalize(self, name: str) -> Callable[[jax.Array], jax.Array]:
    return _identity if self.norm is None else self.norm(name=name)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, padding='SAME', use_bias=False)
    y = nn.relu(self._normalize('bn1')(x))
    if x.shape[-1] != self.channels or self.strides != (1, 1):
      x = conv(self.channels, (1, 1), self.strides, name='proj')(y)
    y = conv(self.channels, (3, 3), self.strides, name='conv1')(y)
    y = nn.relu(self._normalize('bn2')(y))
    y = conv(self.channels, (3, 3), name='conv2')(y)
    if self.norm is None:
      y = ScalarMultiply(name='residual_scale')(y)
    return x + y


class WideResNet(nn.Module):
  """WRN-(6·blocks_per_group + 4)-channel_multiplier for 32x32 images.

  Attributes:
    num_classes: width of the output layer.
    blocks_per_group: residual blocks in each of the three groups.
    channel_multiplier: the width factor k.
    use_batch_norm: BatchNorm (momentum 0.9, epsilon 1e-5) before every
      activation; otherwise identity and a scalar per residual branch.
  """

  num_classes: int
  blocks_per_group: int = 4
  channel_multiplier: int = 10
  use_batch_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    norm = None
    if self.use_batch_norm:
      norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                               momentum=0.9, epsilon=1e-5)
    x = nn.Conv(16, (3, 3), padding='SAME', use_bias=False,
                name='init_conv')(x)
    for group, base in enumerate(_BASE_CHANNELS):
      for block in range(self.blocks_per_group):
        strides = (2, 2) if group > 0 and block == 0 else (1, 1)
        x = WideResNetBlock(base * self.channel_multiplier, strides, norm,
                            name=f'group{group}_block{block}')(x)
    if norm is not None:
      x = norm(name='final_bn')(x)
    x = jnp.mean(nn.relu(x), axis=(1, 2))
    return nn.Dense(self.num_classes, name='head')(x)
