"""Held-out-style variants that do not belong to a larger family module.

A variant is a small subclass that overrides one property of a registered
workload, to check that a submission's tuning transfers (AlgoPerf's
"workload variants"). The other families keep theirs beside them:
`cifar_wrn.Cifar100WRN28x4` (width), `wmt.WmtTransformerPostLN`
(LayerNorm placement), `imagenet.ImagenetResNet50B2048` (batch size).

References:
  G. Dahl et al., "Benchmarking Neural Network Training Algorithms",
  arXiv:2306.07179 (2023) (on workload variants).
"""

from __future__ import annotations

import flax.linen as nn

from workloads import base
from workloads import image_classification
from workloads.models import small


class FashionMnistFCReLU(image_classification.FashionMnistFC):
  """`fmnist_fc` with ReLU instead of tanh; same data, target and budget.

  Target and budget inherited from `fmnist_fc` (a ReLU MLP fits the 5,000
  images at least as fast as the tanh one, so they stay as demanding).
  """

  name = 'fmnist_fc_relu'
  tier = base.Tier.SMOKE

  def build_model(self) -> nn.Module:
    return small.FullyConnected(num_classes=self.num_classes,
                                activation=nn.relu)
