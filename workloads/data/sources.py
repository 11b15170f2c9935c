"""Loaders of image-classification data into host NumPy arrays.

Three sources, all returning an `ImageClassificationData` with uint8 images
shaped `(N, H, W, C)` and int32 labels:

* `load_bundled_fashion_mnist`: a small class-balanced Fashion-MNIST subset
  committed to the repository (needs nothing installed; see
  `bundled/README.txt`).
* `load_fashion_mnist_idx`: the full Fashion-MNIST from the IDX files of the
  Debian package `dataset-fashion-mnist`.
* `load_tfds`: CIFAR-10, CIFAR-100 or Fashion-MNIST prepared by TensorFlow
  Datasets. TensorFlow is imported only inside this function, never here.

Missing data raises `DataNotFoundError` with one message that says what is
missing and how to get it.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import os
from typing import Any

import numpy as np

DEFAULT_IDX_DIR = '/usr/share/datasets/fashion-mnist'
BUNDLED_FILE = 'fashion_mnist_subset.npz'
SPLITS = ('train', 'validation', 'test')

# Classes of the data sets `load_tfds` accepts.
TFDS_NUM_CLASSES = {'cifar10': 10, 'cifar100': 100, 'fashion_mnist': 10}

# IDX type codes (third magic byte) and their big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: np.dtype('>u1'), 0x09: np.dtype('>i1'),
               0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}
_GZIP_MAGIC = b'\x1f\x8b'
# File stems of the Fashion-MNIST (and MNIST) IDX release, by split.
_IDX_STEMS = {'train': 'train', 'test': 't10k'}
_IDX_VALIDATION_SIZE = 10_000


class DataNotFoundError(RuntimeError):
  """Data is not on this machine; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class LabeledArrays:
  """Images and their labels.

  Attributes:
    images: uint8, shaped `(N, H, W, C)`.
    labels: int32, shaped `(N,)`.
  """

  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if self.images.ndim != 4 or self.labels.ndim != 1:
      raise ValueError(
          f'expected images (N, H, W, C) and labels (N,), got '
          f'{self.images.shape} and {self.labels.shape}')
    if len(self.images) != len(self.labels):
      raise ValueError(f'{len(self.images)} images but {len(self.labels)} '
                       'labels')

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class ImageClassificationData:
  """The three splits of an image-classification data set.

  Attributes:
    train: examples to train on.
    validation: held-out examples for the target metric.
    test: the data set's test split.
    num_classes: number of classes; labels lie in `[0, num_classes)`.
    source: human-readable provenance (where the arrays were read from).
  """

  train: LabeledArrays
  validation: LabeledArrays
  test: LabeledArrays
  num_classes: int
  source: str

  def split(self, name: str) -> LabeledArrays:
    """The split called `name`, one of `SPLITS`."""
    if name not in SPLITS:
      raise ValueError(f'unknown split {name!r}; known splits: {SPLITS}')
    return getattr(self, name)


def _labeled(images: np.ndarray, labels: np.ndarray) -> LabeledArrays:
  """Casts to the canonical dtypes; adds a channel axis to (N, H, W) images."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  return LabeledArrays(images.astype(np.uint8, copy=False),
                       np.asarray(labels).astype(np.int32, copy=False))


def _split_off_validation(images: np.ndarray, labels: np.ndarray,
                          validation_size: int
                          ) -> tuple[LabeledArrays, LabeledArrays]:
  """The first N - validation_size examples, and the last validation_size."""
  if not 0 <= validation_size < len(labels):
    raise ValueError(f'validation_size must be in [0, {len(labels)}), got '
                     f'{validation_size}')
  cut = len(labels) - validation_size
  return (_labeled(images[:cut], labels[:cut]),
          _labeled(images[cut:], labels[cut:]))


# ---- Bundled subset ----


def load_bundled_fashion_mnist() -> ImageClassificationData:
  """The committed Fashion-MNIST subset, read as a package resource.

  10,000 train, 2,000 validation and 2,000 test examples, classes balanced in
  every split; see `bundled/README.txt`.
  """
  resource = importlib.resources.files(__package__) / 'bundled' / BUNDLED_FILE
  try:
    with resource.open('rb') as f, np.load(f) as npz:
      arrays = {key: npz[key] for key in npz.files}
  except FileNotFoundError:
    raise DataNotFoundError(
        f'the bundled Fashion-MNIST subset {resource} is missing; it is part '
        'of the repository (regenerate it with `python -m '
        'scripts.make_fashion_mnist_subset` from the repository root)'
    ) from None
  splits = {name: _labeled(arrays[f'{name}_images'], arrays[f'{name}_labels'])
            for name in SPLITS}
  return ImageClassificationData(
      **splits, num_classes=10,
      source=f'bundled Fashion-MNIST subset {BUNDLED_FILE} (seed '
      f'{int(arrays["seed"])}, from Debian dataset-fashion-mnist)')


# ---- IDX files ----


def parse_idx(data: bytes) -> np.ndarray:
  """Decodes the bytes of one (uncompressed) IDX file.

  Args:
    data: the file's bytes: two zero bytes, a type code, the number of
      dimensions, that many big-endian uint32 sizes, then the values.

  Returns:
    The array, in native byte order.

  Raises:
    ValueError: bad magic number, unknown type code, or a size mismatch.
  """
  if len(data) < 4 or data[:2] != b'\0\0':
    raise ValueError(f'not an IDX file: bad magic number {data[:4].hex()}')
  dtype = _IDX_DTYPES.get(data[2])
  if dtype is None:
    raise ValueError(f'not an IDX file: unknown type code {data[2]:#04x}')
  ndim = data[3]
  header_size = 4 + 4 * ndim
  if ndim == 0 or len(data) < header_size:
    raise ValueError(f'IDX header truncated or without dimensions (ndim '
                     f'{ndim}, {len(data)} bytes)')
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, offset=4))
  expected = header_size + int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise ValueError(f'IDX shape {shape} of {dtype} needs {expected} bytes, '
                     f'the file has {len(data)}')
  values = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
  return values.astype(dtype.newbyteorder('='))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an IDX file, gzipped or not (told apart by content, not name)."""
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] == _GZIP_MAGIC:
    data = gzip.decompress(data)
  try:
    return parse_idx(data)
  except ValueError as e:
    raise ValueError(f'{path}: {e}') from None


def _idx_missing(what: str) -> str:
  return (f'Fashion-MNIST IDX {what}. Install the files with `apt-get install '
          f'dataset-fashion-mnist` (they go to {DEFAULT_IDX_DIR}), or pass the '
          'directory that holds them.')


def find_idx_file(directory: str | os.PathLike[str], stem: str) -> str:
  """Path of `stem` in `directory`, plain or with a `.gz` suffix.

  Raises:
    DataNotFoundError: neither exists.
  """
  for name in (stem, stem + '.gz'):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  raise DataNotFoundError(_idx_missing(f'file {stem}[.gz] not found in '
                                       f'{directory}'))


def _read_idx_split(directory: str | os.PathLike[str],
                    split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 28, 28) and labels (N,) of the IDX 'train' or 'test' files."""
  stem = _IDX_STEMS[split]
  images_path = find_idx_file(directory, f'{stem}-images-idx3-ubyte')
  labels_path = find_idx_file(directory, f'{stem}-labels-idx1-ubyte')
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(f'{images_path}: expected uint8 (N, H, W) images, got '
                     f'{images.dtype} {images.shape}')
  if labels.ndim != 1 or len(labels) != len(images):
    raise ValueError(f'{labels_path}: expected {len(images)} labels, got '
                     f'shape {labels.shape}')
  if labels.size and not 0 <= labels.min() <= labels.max() < 10:
    raise ValueError(f'{labels_path}: labels outside [0, 10)')
  return images, labels


def load_fashion_mnist_idx(
    directory: str | os.PathLike[str] = DEFAULT_IDX_DIR
) -> ImageClassificationData:
  """The full Fashion-MNIST from IDX files.

  Train is the first 50,000 of the 60,000 IDX training examples, validation
  the last 10,000, test the 10,000 of `t10k`.

  Args:
    directory: holds `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

  Raises:
    DataNotFoundError: the directory or a file is missing.
    ValueError: a file is not a valid IDX file of the expected shape.
  """
  if not os.path.isdir(directory):
    raise DataNotFoundError(_idx_missing(f'directory {directory} is missing'))
  train, validation = _split_off_validation(
      *_read_idx_split(directory, 'train'), _IDX_VALIDATION_SIZE)
  test = _labeled(*_read_idx_split(directory, 'test'))
  return ImageClassificationData(
      train, validation, test, num_classes=10,
      source=f'Fashion-MNIST IDX files in {os.fspath(directory)}')


# ---- TensorFlow Datasets ----


def _tfds_missing_message(name: str, where: str,
                          how_to: str | None = None) -> str:
  message = (
      f'TFDS data set {name!r} is not prepared in {where}. On a machine with '
      f'internet run `tfds build {name} --data_dir=DIR` (or python -c "import '
      f"tensorflow_datasets as tfds; tfds.builder('{name}', "
      "data_dir='DIR').download_and_prepare()\"), copy DIR to this machine, "
      'and pass --data_dir=DIR or set TFDS_DATA_DIR=DIR.')
  return f'{message} {how_to}' if how_to else message


def prepared_builder(name: str, data_dir: str | None, *,
                     how_to: str | None = None) -> Any:
  """The TFDS builder of `name`, checked to be prepared; never downloads.

  Imports TensorFlow Datasets (and so TensorFlow): a caller that keeps
  TensorFlow off the accelerators hides them first.

  Args:
    name: TFDS name, with its config if any (e.g. 'wmt17_translate/de-en').
    data_dir: TFDS data directory; None means the `TFDS_DATA_DIR`
      environment variable as set now, else TFDS's default
      (~/tensorflow_datasets).
    how_to: what else preparing this data set takes, added to the message
      (e.g. a manual download).

  Raises:
    DataNotFoundError: not prepared there; the message says how to prepare
      it and how to point at it.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # TFDS reads TFDS_DATA_DIR once, at its import; read it now instead.
  data_dir = data_dir or os.environ.get('TFDS_DATA_DIR') or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except (AssertionError, OSError, tfds.core.DatasetNotFoundError):
    where = data_dir or 'the default TFDS data dir'
    raise DataNotFoundError(
        _tfds_missing_message(name, where, how_to)) from None
  if not builder.is_prepared():
    raise DataNotFoundError(
        _tfds_missing_message(name, builder.data_dir, how_to))
  return builder


def _read_tfds_split(builder: Any, split: str) -> LabeledArrays:
  """All of a prepared TFDS split as NumPy arrays, in the stored order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    ds = builder.as_dataset(split=split, as_supervised=True,
                            shuffle_files=False).batch(10_000)
    parts = list(tfds.as_numpy(ds))
  except (AssertionError, OSError, tf.errors.NotFoundError):
    raise DataNotFoundError(
        _tfds_missing_message(builder.name, builder.data_dir)
        + f' (split {split!r} could not be read)') from None
  if not parts:
    raise ValueError(f'TFDS {builder.name} split {split!r} is empty')
  return _labeled(np.concatenate([p[0] for p in parts]),
                  np.concatenate([p[1] for p in parts]))


def load_tfds(name: str, *, data_dir: str | None = None,
              validation_size: int = 5000) -> ImageClassificationData:
  """A TFDS image data set, read whole into memory; never downloads.

  Train is the first N - validation_size examples of TFDS 'train',
  validation the last validation_size, test is TFDS 'test'.

  Args:
    name: one of `TFDS_NUM_CLASSES` ('cifar10', 'cifar100', 'fashion_mnist').
    data_dir: TFDS data directory; None means the `TFDS_DATA_DIR` environment
      variable as set now, else TFDS's default (~/tensorflow_datasets).
    validation_size: examples held out of the end of TFDS 'train'.

  Raises:
    DataNotFoundError: the data set is not prepared in the data directory.
    ValueError: unknown name, or validation_size not below the train size.
  """
  if name not in TFDS_NUM_CLASSES:
    raise ValueError(f'unknown TFDS data set {name!r}; known: '
                     f'{sorted(TFDS_NUM_CLASSES)}')
  builder = prepared_builder(name, data_dir)
  full_train = _read_tfds_split(builder, 'train')
  train, validation = _split_off_validation(
      full_train.images, full_train.labels, validation_size)
  return ImageClassificationData(
      train, validation, _read_tfds_split(builder, 'test'),
      num_classes=TFDS_NUM_CLASSES[name],
      source=f'TFDS {name} {builder.version} in {builder.data_dir}')
