"""ResNet-50 (v1.5, bottleneck blocks) for ImageNet, as AlgoPerf's.

The architecture of AlgoPerf's `imagenet_resnet` JAX workload (itself the
Flax ImageNet example): a 7x7 stride-2 stem, 3x3 max-pool, four stages of
(3, 4, 6, 3) bottleneck blocks with the stride on the 3x3 convolution
("v1.5"), a projection shortcut where the shape changes, global average
pooling and a dense classifier. BatchNorm has momentum 0.9 and epsilon 1e-5;
the last BatchNorm of each residual branch starts with scale 0
(`bn_init_scale`), and the classifier's kernel is normal with stddev 0.01.

Parameter count: 25,557,032 trainable parameters with 1,000 classes (the
published ResNet-50 count, He et al. 2016; torchvision's is the same),
checked by `jax.eval_shape` in tests/test_workloads_large.py. BatchNorm
running averages (53,120 numbers) are model state, not parameters.

References:
  K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image
  Recognition", CVPR 2016, arXiv:1512.03385.
  AlgoPerf, `algoperf/workloads/imagenet_resnet/imagenet_jax/models.py`
  (github.com/mlcommons/algorithmic-efficiency).
  Flax, `examples/imagenet/models.py` (github.com/google/flax).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class BottleneckBlock(nn.Module):
  """1x1 → 3x3 (strided) → 1x1 (4x channels), plus the shortcut."""

  filters: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  strides: tuple[int, int] = (1, 1)
  bn_init_scale: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.constant(self.bn_init_scale))(y)
    if residual.shape != y.shape or self.strides != (1, 1):
      residual = self.conv(self.filters * 4, (1, 1), self.strides,
                           name='Conv_proj')(residual)
      residual = self.norm(name='BatchNorm_proj')(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """A bottleneck ResNet; `ResNet50` fixes the stage sizes.

  Attributes:
    num_classes: width of the output layer.
    stage_sizes: blocks per stage.
    num_filters: filters of the first stage (doubled per stage).
    bn_init_scale: initial scale of each branch's last BatchNorm.
    dtype: computation dtype (parameters stay float32).
  """

  num_classes: int
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  num_filters: int = 64
  bn_init_scale: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, dtype=self.dtype)
    x = conv(self.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
             name='Conv_init')(x)
    x = nn.relu(norm(name='BatchNorm_init')(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, block_size in enumerate(self.stage_sizes):
      for j in range(block_size):
        strides = (2, 2) if i > 0 and j == 0 else (1, 1)
        x = BottleneckBlock(self.num_filters * 2**i, conv=conv, norm=norm,
                            strides=strides,
                            bn_init_scale=self.bn_init_scale)(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(),
                 dtype=self.dtype)(x)
    return jnp.asarray(x, jnp.float32)


ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3))
