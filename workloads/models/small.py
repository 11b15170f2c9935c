"""The fully-connected network and the CNN of Cohen et al. (2022), App. G.1.

References:
  Cohen et al., 2022, Adaptive Gradient Methods at the Edge of Stability,
  arXiv:2207.14484, Appendix G.1.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

# "Weights are initialized with variance 1/fan_in"; biases are zero.
fan_in_normal = nn.initializers.variance_scaling(1.0, 'fan_in', 'normal')


class FullyConnected(nn.Module):
  """An MLP: `len(widths)` hidden layers, then a linear output layer.

  The paper's network has 5 hidden layers of width 200 and tanh.
  """

  num_classes: int
  widths: Sequence[int] = (200,) * 5
  activation: Callable[[jax.Array], jax.Array] = nn.tanh

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train
    x = x.reshape((x.shape[0], -1))
    for width in self.widths:
      x = self.activation(
          nn.Dense(width, kernel_init=fan_in_normal)(x))
    return nn.Dense(self.num_classes, kernel_init=fan_in_normal)(x)


class ConvNet(nn.Module):
  """(conv → ReLU → 3x3 max-pool, stride 2) × 3, then FC 512 → 256 → out.

  Conv layers: 64 filters 5x5 'valid', 96 filters 3x3 'valid', 128 filters
  3x3 'same'. Pooling windows are unpadded ('VALID'), which the paper leaves
  unstated; on 28x28 inputs the last pooled map is 1x1, on 32x32 it is 2x2.
  """

  num_classes: int
  conv_layers: Sequence[tuple[int, int, str]] = (
      (64, 5, 'VALID'), (96, 3, 'VALID'), (128, 3, 'SAME'))
  dense_widths: Sequence[int] = (512, 256)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train
    for features, kernel, padding in self.conv_layers:
      x = nn.Conv(features, (kernel, kernel), padding=padding,
                  kernel_init=fan_in_normal)(x)
      x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2), padding='VALID')
    x = x.reshape((x.shape[0], -1))
    for width in self.dense_widths:
      x = nn.relu(nn.Dense(width, kernel_init=fan_in_normal)(x))
    return nn.Dense(self.num_classes, kernel_init=fan_in_normal)(x)
