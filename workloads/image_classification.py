"""Image classification workloads on Fashion-MNIST, CIFAR-10 and CIFAR-100.

Each registered workload is a small subclass that sets a few class
attributes; the docstring of each justifies its target and budget.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax

from workloads import base
from workloads.data import in_memory
from workloads.data import sources
from workloads.models import small


def _bundled(data_dir: str | None) -> sources.ImageClassificationData:
  del data_dir
  return sources.load_bundled_fashion_mnist()


def _idx(data_dir: str | None) -> sources.ImageClassificationData:
  if data_dir is None:
    return sources.load_fashion_mnist_idx()
  return sources.load_fashion_mnist_idx(data_dir)


def _tfds(name: str, data_dir: str | None) -> sources.ImageClassificationData:
  return sources.load_tfds(name, data_dir=data_dir)


# Data set name -> source name -> loader(data_dir). The first is the default.
DATA_SOURCES: dict[str, dict[str, Callable[[str | None], Any]]] = {
    'fashion_mnist': {
        'bundled': _bundled,
        'idx': _idx,
        'tfds': functools.partial(_tfds, 'fashion_mnist'),
    },
    'cifar10': {'tfds': functools.partial(_tfds, 'cifar10')},
    'cifar100': {'tfds': functools.partial(_tfds, 'cifar100')},
}

_NUM_CLASSES = {'fashion_mnist': 10, 'cifar10': 10, 'cifar100': 100}


class ImageClassificationWorkload(base.Workload):
  """A Flax classifier trained on an in-memory image data set."""

  dataset_name: str = 'fashion_mnist'
  augment: Callable[..., Any] | None = None

  @property
  def num_classes(self) -> int:
    return _NUM_CLASSES[self.dataset_name]

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return (28, 28, 1) if self.dataset_name == 'fashion_mnist' else (32, 32, 3)

  def build_model(self) -> nn.Module:
    raise NotImplementedError

  @functools.cached_property
  def model(self) -> nn.Module:
    return self.build_model()

  def init_model_fn(self, rng):
    dummy = jax.numpy.zeros((1, *self.input_shape), jax.numpy.float32)
    variables = self.model.init(rng, dummy)
    params = variables.pop('params')
    return params, dict(variables)

  def model_fn(self, params, augmented_and_preprocessed_input_batch,
               model_state, mode, rng, update_batch_norm, dropout_rate=None):
    """Logits; these models have no dropout, so a non-zero
    `dropout_rate` is refused (`base.without_dropout`)."""
    del rng
    base.check_no_dropout(self.name, dropout_rate)  # Before any compute.
    logits, new_state = self._apply(
        params, augmented_and_preprocessed_input_batch['inputs'],
        model_state, mode, update_batch_norm)
    return base.without_dropout(self.name, dropout_rate, logits), new_state

  def _apply(self, params, inputs, model_state, mode, update_batch_norm):
    train = mode == base.ForwardPassMode.TRAIN
    variables = {'params': params, **model_state}
    if train and model_state:
      # Batch statistics of this batch; the running averages are returned
      # updated only when asked (the curvature probe does not ask).
      logits, new_state = self.model.apply(
          variables, inputs, train=True, mutable=list(model_state))
      return logits, dict(new_state) if update_batch_norm else model_state
    return self.model.apply(variables, inputs, train=train), model_state

  def dataset(self, regime: base.BatchRegime) -> base.Dataset:
    loaders = DATA_SOURCES[self.dataset_name]
    source = self.data.source or next(iter(loaders))
    if source not in loaders:
      raise ValueError(
          f'data source {source!r} is not available for {self.name}; known: '
          f'{sorted(loaders)}')
    data = _load_cached(self.dataset_name, source, self.data.data_dir)
    augment = None if regime.full_batch else self.augment
    return in_memory.InMemoryDataset(data, train_size=regime.train_size,
                                     augment=augment)


@functools.lru_cache(maxsize=4)
def _load_cached(dataset_name: str, source: str, data_dir: str | None):
  return DATA_SOURCES[dataset_name][source](data_dir)


class _FC(ImageClassificationWorkload):

  def build_model(self) -> nn.Module:
    return small.FullyConnected(num_classes=self.num_classes)


class _CNN(ImageClassificationWorkload):

  def build_model(self) -> nn.Module:
    return small.ConvNet(num_classes=self.num_classes)


_FULL_BATCH_5K = base.BatchRegime(full_batch=True, train_size=5000,
                                  batch_size=5000, chunk_size=1000)


class FashionMnistFC(_FC):
  """The paper's FC network on 5,000 Fashion-MNIST images, full batch.

  Target and budget calibrated (`python -m harness.calibrate`; record
  workloads/calibrations/fmnist_fc.json, with every run's curve and the
  command). Of 3 search points each of AdamW, NAdamW, Nesterov and
  heavy-ball over 500 steps, AdamW's best (η 2.8e-4, β1 0.82, β2 0.99)
  peaked at 0.8585; rerun with 5 seeds it peaked at 0.8525-0.8585 by steps
  100-150, and validation accuracy falls after that as the network
  overfits the 5,000 images. Target: their median, 0.8535. Budget: twice
  the slowest rerun's steps (150) and submission time to reach it on
  2 CPU cores: 300 steps, 21 s.
  """

  name = 'fmnist_fc'
  tier = base.Tier.SMOKE
  dataset_name = 'fashion_mnist'
  target_value = 0.8535
  target_source = base.TargetSource.CALIBRATED
  train_loss_threshold = 0.1
  step_budget = 300
  runtime_budget_s = 21.0
  default_regime = _FULL_BATCH_5K
  curvature_batch_size = 5000


class FashionMnistFCMSE(FashionMnistFC):
  """As `fmnist_fc` with the MSE loss on one-hot targets (Cohen et al. 2021).

  Target and budget calibrated (`python -m harness.calibrate`; record
  workloads/calibrations/fmnist_fc_mse.json). The search's best was NAdamW
  (η 2.8e-4, β1 0.82, β2 0.99) at 0.8725; rerun with 5 seeds it peaked at
  0.866-0.871, three of them at the last step of the 500 searched, so the
  target is bounded by the calibration's step count rather than by a
  plateau. Target: the median, 0.87. Budget: twice the slowest rerun's
  steps (500) and submission time to reach it on 2 CPU cores: 1,000 steps,
  78 s. Train-loss threshold 0.05: half the squared error is far smaller
  than the cross-entropy at equal fit.
  """

  name = 'fmnist_fc_mse'
  loss_type = base.LossType.MEAN_SQUARED_ERROR
  target_value = 0.87
  step_budget = 1000
  runtime_budget_s = 78.0
  train_loss_threshold = 0.05


class FashionMnistFCReLU(FashionMnistFC):
  """`fmnist_fc` with ReLU instead of tanh; same data.

  A held-out-style variant (Dahl et al., 2023, arXiv:2306.07179): one
  property of a registered workload changed, to check that a submission's
  tuning transfers. Target and budget calibrated on their own
  (`python -m harness.calibrate`; record
  workloads/calibrations/fmnist_fc_relu.json): the search's best was NAdamW
  (η 6.4e-4, β1 0.90, β2 0.999) at 0.8635; rerun with 5 seeds it peaked at
  0.8595-0.867 by steps 100-275. Target: the median, 0.8645. Budget: twice
  the slowest rerun's steps (175) and submission time to reach it on
  2 CPU cores: 350 steps, 32 s.
  """

  name = 'fmnist_fc_relu'
  tier = base.Tier.SMOKE
  target_value = 0.8645
  step_budget = 350
  runtime_budget_s = 32.0

  def build_model(self) -> nn.Module:
    return small.FullyConnected(num_classes=self.num_classes,
                                activation=nn.relu)


class FashionMnistCNN(_CNN):
  """The paper's CNN on 5,000 Fashion-MNIST images, full batch.

  Tier small: a full-batch step of this CNN on 5,000 images takes about
  10 s on 2 CPU cores, so it is a one-GPU workload despite its data.
  Target: validation accuracy 0.86, provisional until measured on a GPU:
  the FC network plateaus at 0.85-0.86 on this subset, and the target asks
  the convolutions to beat it. Budget: 1,000 steps, one hour.
  """

  name = 'fmnist_cnn'
  tier = base.Tier.SMALL
  dataset_name = 'fashion_mnist'
  target_value = 0.86
  step_budget = 1000
  runtime_budget_s = 3600.0
  default_regime = _FULL_BATCH_5K
  curvature_batch_size = 5000


class Cifar10FC(_FC):
  """The paper's FC network on a 5,000-image CIFAR-10 subset (its Fig. 1).

  Target: validation accuracy 0.40, provisional until measured (CIFAR
  cannot be read offline here): MLPs trained on a few thousand CIFAR-10
  images generalise to about 0.40-0.45, and Cohen et al. (2021) train this
  network for thousands of full-batch steps. Budget: 5,000 steps, one hour
  on one GPU.
  """

  name = 'cifar10_fc'
  tier = base.Tier.SMALL
  dataset_name = 'cifar10'
  target_value = 0.40
  step_budget = 5000
  runtime_budget_s = 3600.0
  default_regime = _FULL_BATCH_5K
  curvature_batch_size = 5000


class Cifar10FCMSE(Cifar10FC):
  """`cifar10_fc` with MSE on one-hot targets, as Cohen et al. (2021)."""

  name = 'cifar10_fc_mse'
  loss_type = base.LossType.MEAN_SQUARED_ERROR
  train_loss_threshold = 0.05


class Cifar10CNN(_CNN):
  """The paper's CNN on a 5,000-image CIFAR-10 subset (its Fig. 4, left).

  Target: validation accuracy 0.50, provisional until measured: small CNNs
  trained on 5k CIFAR-10 images generalise to about 0.5-0.6. Budget: 2,000
  steps (the paper's Fig. 4 run length).
  """

  name = 'cifar10_cnn'
  tier = base.Tier.SMALL
  dataset_name = 'cifar10'
  target_value = 0.50
  step_budget = 2000
  runtime_budget_s = 3600.0
  default_regime = _FULL_BATCH_5K
  curvature_batch_size = 5000


class Cifar100FC(_FC):
  """The FC network on a 5,000-image CIFAR-100 subset.

  Target: validation accuracy 0.12, provisional until measured: with about
  50 examples a class an MLP generalises to roughly 0.12-0.15. Budget: 5,000
  steps, one hour.
  """

  name = 'cifar100_fc'
  tier = base.Tier.SMALL
  dataset_name = 'cifar100'
  target_value = 0.12
  step_budget = 5000
  runtime_budget_s = 3600.0
  default_regime = _FULL_BATCH_5K
  curvature_batch_size = 5000
