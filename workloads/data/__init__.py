"""Image-classification data: loaders (`sources`) and an in-memory Dataset."""

from workloads.data.in_memory import Augment
from workloads.data.in_memory import cifar_augment
from workloads.data.in_memory import InMemoryDataset
from workloads.data.in_memory import Normalization
from workloads.data.sources import DataNotFoundError
from workloads.data.sources import ImageClassificationData
from workloads.data.sources import LabeledArrays
from workloads.data.sources import load_bundled_fashion_mnist
from workloads.data.sources import load_fashion_mnist_idx
from workloads.data.sources import load_tfds
from workloads.data.sources import read_idx

__all__ = [
    'Augment',
    'DataNotFoundError',
    'ImageClassificationData',
    'InMemoryDataset',
    'LabeledArrays',
    'Normalization',
    'cifar_augment',
    'load_bundled_fashion_mnist',
    'load_fashion_mnist_idx',
    'load_tfds',
    'read_idx',
]
