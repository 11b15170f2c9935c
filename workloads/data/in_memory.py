"""A `Dataset` over image-classification arrays held in host memory.

Images are standardised per channel once, at construction, with the mean and
standard deviation of the whole train split, and kept as float32; labels are
int32. Batches are dicts of NumPy arrays with a leading chunk axis, as
`workloads.base` describes. The only per-step host work is the minibatch
gather (and the optional augmentation); full-batch training yields one
prebuilt batch forever. A process given a `chunks.Part` gathers only that
part of each batch; the data order and the augmentation's draws are the
whole batch's, so every example is the same however many processes load.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterator

import numpy as np

from workloads import base
from workloads import chunks
from workloads.data import sources

# (rng, images (N, H, W, C), positions, batch_size) -> augmented images of
# the same shape and dtype: the images are the examples at `positions` of a
# batch of `batch_size`, and take those examples' draws (`cifar_augment`).
Augment = Callable[[np.random.Generator, np.ndarray, np.ndarray, int],
                   np.ndarray]

_STATS_CHUNK = 8192  # Images per step when computing the channel statistics.


@dataclasses.dataclass(frozen=True)
class Normalization:
  """Per-channel standardisation `(x - mean) / std`.

  Attributes:
    mean: float32 `(C,)`, in the images' units (0..255 for uint8).
    std: float32 `(C,)`, positive.
  """

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def of(cls, images: np.ndarray) -> Normalization:
    """The channel mean and std of `images` (N, H, W, C), in float64 sums."""
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), _STATS_CHUNK):
      chunk = images[start:start + _STATS_CHUNK].astype(np.float64)
      total += chunk.sum(axis=(0, 1, 2))
      squares += np.square(chunk).sum(axis=(0, 1, 2))
    count = max(images.size // images.shape[-1], 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    return cls(mean.astype(np.float32),
               np.maximum(std, 1e-6).astype(np.float32))

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """Standardised float32 images."""
    return (images.astype(np.float32) - self.mean) / self.std


def cifar_augment(rng: np.random.Generator, images: np.ndarray,
                  positions: np.ndarray | None = None,
                  batch_size: int | None = None, *,
                  padding: int = 4) -> np.ndarray:
  """Random crop from zero padding and random horizontal flip, per image.

  The standard CIFAR augmentation: pad `padding` zeros on every side, crop
  back to the original size at a uniformly drawn offset, and mirror left to
  right with probability 1/2. One vectorised gather for the whole batch.

  Args:
    rng: source of the offsets and flips.
    images: `(N, H, W, C)`, any dtype.
    positions: the images' places in a batch of `batch_size`, or None when
      they are the whole batch. The draws are made for the whole batch and
      each image takes its own, so a part of a batch is augmented as the
      same images are in the whole.
    batch_size: the whole batch's size; needed with `positions`.
    padding: zero pixels added on each side before cropping.

  Returns:
    Augmented images, same shape and dtype.
  """
  n, h, w = images.shape[:3]
  drawn = n if positions is None else batch_size
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding),
                           (0, 0)))
  dy = rng.integers(0, 2 * padding + 1, size=drawn)
  dx = rng.integers(0, 2 * padding + 1, size=drawn)
  flip = rng.random(drawn) < 0.5
  if positions is not None:
    dy, dx, flip = dy[positions], dx[positions], flip[positions]
  rows = dy[:, None] + np.arange(h)
  cols = np.where(flip[:, None], np.arange(w)[::-1], np.arange(w)) + dx[:, None]
  return padded[np.arange(n)[:, None, None], rows[:, :, None],
                cols[:, None, :]]


def _read_only(array: np.ndarray) -> np.ndarray:
  array.flags.writeable = False
  return array


class InMemoryDataset(base.Dataset):
  """Batches from an `ImageClassificationData` held in memory.

  Attributes:
    train_size: examples in the training pool, the first of the train split;
      also what the 'train' evaluation split covers.
    num_classes: from the data.
    source: the data's provenance string.
    normalization: the standardisation applied to every split.
  """

  def __init__(self, data: sources.ImageClassificationData, train_size: int,
               *, normalization: Normalization | None = None,
               augment: Augment | None = None):
    """Standardises the images once.

    Args:
      data: the splits.
      train_size: size of the training pool; at most the train split's size.
      normalization: the standardisation; None means the channel statistics
        of the whole train split.
      augment: applied to minibatch inputs (standardised float32, so zero
        padding pads with the channel mean); never to full batches,
        `fixed_batch` or evaluation.

    Raises:
      ValueError: train_size is not in [1, len(data.train)].
    """
    if not 0 < train_size <= len(data.train):
      raise ValueError(f'train_size {train_size} must be in [1, '
                       f'{len(data.train)}], the size of the train split')
    self.train_size = train_size
    self.num_classes = data.num_classes
    self.source = data.source
    self.augment = augment
    self.normalization = normalization or Normalization.of(data.train.images)
    self._splits = {}
    for split in sources.SPLITS:
      arrays = data.split(split)
      size = train_size if split == 'train' else len(arrays)
      self._splits[split] = {
          'inputs': _read_only(self.normalization(arrays.images[:size])),
          'targets': _read_only(arrays.labels[:size].astype(np.int32)),
      }
    self._eval_cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}

  @property
  def eval_splits(self) -> tuple[str, ...]:
    return sources.SPLITS

  def _prefix(self, size: int, chunk_size: int,
              part: chunks.Part) -> dict[str, np.ndarray]:
    """`part` of the first `size` training examples, chunked (views, no
    copies)."""
    if size % chunk_size:
      raise ValueError(f'chunk_size {chunk_size} must divide {size}')
    train = self._splits['train']
    return part.take_batch(
        chunks.chunked({k: v[:size] for k, v in train.items()}, chunk_size))

  def train_batches(self, regime: base.BatchRegime, seed: int,
                    part: chunks.Part = chunks.WHOLE
                    ) -> Iterator[base.Batch]:
    """Infinite training batches; see `workloads.base.BatchRegime`.

    Full batch: the same (read-only) dict object every step. Minibatch: each
    epoch a permutation of the pool, `batch_size` examples per step, the
    remainder dropped; reproducible for a given seed. Only `part` of each
    batch is gathered.

    Raises:
      ValueError: the regime's train_size differs from this dataset's, or
        batch_size exceeds it.
    """
    if regime.train_size != self.train_size:
      raise ValueError(
          f'regime train_size {regime.train_size} differs from the dataset '
          f'train_size {self.train_size}; build the dataset with the '
          "regime's train_size so 'train' evaluation covers the pool")
    if regime.full_batch:
      return itertools.repeat(self._prefix(regime.train_size,
                                           regime.chunk_size, part))
    if regime.batch_size > regime.train_size:
      raise ValueError(f'batch_size {regime.batch_size} exceeds train_size '
                       f'{regime.train_size}')
    return self._minibatches(regime, seed, part)

  def _minibatches(self, regime: base.BatchRegime, seed: int,
                   part: chunks.Part) -> Iterator[base.Batch]:
    order_rng, augment_rng = np.random.default_rng(seed).spawn(2)
    inputs, targets = (self._splits['train'][k] for k in ('inputs', 'targets'))
    steps = regime.train_size // regime.batch_size
    grid = part.positions(regime.num_chunks, regime.chunk_size)
    positions = grid.reshape(-1)
    while True:
      order = order_rng.permutation(regime.train_size)
      for step in range(steps):
        idx = order[step * regime.batch_size:(step + 1) * regime.batch_size]
        idx = idx[positions]
        batch_inputs = inputs[idx]
        if self.augment is not None:
          batch_inputs = self.augment(augment_rng, batch_inputs, positions,
                                      regime.batch_size)
        yield {'inputs': batch_inputs.reshape(grid.shape +
                                              batch_inputs.shape[1:]),
               'targets': targets[idx].reshape(grid.shape)}

  def fixed_batch(self, size: int, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """The first `size` examples of the training pool, unaugmented, chunked.

    Raises:
      ValueError: size exceeds train_size (the curvature batch must be
        examples trained on), or chunk_size does not divide size.
    """
    if not 0 < size <= self.train_size:
      raise ValueError(f'fixed batch size {size} must be in [1, '
                       f'{self.train_size}] (the train_size)')
    return self._prefix(size, chunk_size, part)

  def _split(self, split: str) -> dict[str, np.ndarray]:
    if split not in self._splits:
      raise ValueError(f'unknown split {split!r}; known splits: '
                       f'{self.eval_splits}')
    return self._splits[split]

  def eval_arrays(self, split: str, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """A whole split as one padded, chunked dict (for one jitted `lax.map`).

    Leaves are shaped `(num_chunks, chunk_size, ...)`: `inputs`, `targets`
    and float32 `weights`, 1 for real examples and 0 for the zero padding
    that fills the last chunk. Cached per (split, chunk_size); read-only;
    `part` of it is a view.

    Raises:
      ValueError: unknown split or non-positive chunk_size.
    """
    arrays = self._split(split)
    if chunk_size <= 0:
      raise ValueError(f'chunk_size must be positive, got {chunk_size}')
    key = (split, chunk_size)
    if key not in self._eval_cache:
      weights = np.ones(len(arrays['targets']), np.float32)
      leaves = chunks.padded_rows({**arrays, 'weights': weights}, chunk_size)
      self._eval_cache[key] = {
          k: _read_only(v)
          for k, v in chunks.chunked(leaves, chunk_size).items()}
    return part.take_batch(self._eval_cache[key])
