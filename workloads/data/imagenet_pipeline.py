"""A streaming ImageNet `Dataset`: TFDS `imagenet2012` through tf.data.

ImageNet does not fit in host memory, so batches are decoded on the fly by
tf.data (TensorFlow runs only here, on the host; the JAX step sees NumPy).
Preprocessing is AlgoPerf's and the Flax ImageNet example's:

* training: a random crop covering 8%-100% of the image with aspect ratio
  in [3/4, 4/3] (`sample_distorted_bounding_box`, falling back to the
  centre crop after 10 failed attempts), bicubic resize to 224x224, random
  horizontal flip;
* evaluation, the curvature batch and the 'train' evaluation split: the
  central 224/256 of the shorter side, bicubic resize to 224x224.

Images are shipped as uint8 `(224, 224, 3)` (a quarter of the float32 bytes
to the device; the model standardises them with the ImageNet channel mean
and standard deviation), labels as int32. Randomness is stateless, keyed by
the seed and the example's position in the stream, so a seed reproduces
the batches.

Full-batch training over 1.28M images is not supported (ValueError).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator

import numpy as np

from workloads import base
from workloads import chunks
from workloads.data import sources
from workloads.data import streaming

TFDS_NAME = 'imagenet2012'
SPLITS = ('train', 'validation')

HOW_TO_PREPARE = (
    'ImageNet needs a manual download before the build: register at '
    'https://image-net.org, download ILSVRC2012_img_train.tar and '
    'ILSVRC2012_img_val.tar, and put both in DIR/downloads/manual/ (the build '
    'needs about 300 GB free).')


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """Image sizes and augmentation ranges.

  Attributes:
    image_size: side of the square network input.
    resize_size: evaluation crops the central image_size/resize_size.
    area_range: fraction of the image a training crop covers.
    aspect_ratio_range: width/height of a training crop.
  """

  image_size: int = 224
  resize_size: int = 256
  area_range: tuple[float, float] = (0.08, 1.0)
  aspect_ratio_range: tuple[float, float] = (0.75, 4.0 / 3.0)


def _to_uint8(tf: Any, image: Any) -> Any:
  return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def _resize(tf: Any, image: Any, size: int) -> Any:
  return tf.image.resize(image, [size, size],
                         method=tf.image.ResizeMethod.BICUBIC)


def _center_crop(tf: Any, jpeg: Any, prep: Preprocessing) -> Any:
  shape = tf.io.extract_jpeg_shape(jpeg)
  side = tf.cast(prep.image_size / prep.resize_size * tf.cast(
      tf.minimum(shape[0], shape[1]), tf.float32), tf.int32)
  window = tf.stack([(shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2,
                     side, side])
  image = tf.io.decode_and_crop_jpeg(jpeg, window, channels=3)
  return _resize(tf, image, prep.image_size)


def _random_crop(tf: Any, jpeg: Any, seed: Any, prep: Preprocessing) -> Any:
  shape = tf.io.extract_jpeg_shape(jpeg)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
      min_object_covered=0.1, aspect_ratio_range=prep.aspect_ratio_range,
      area_range=prep.area_range, max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  window = tf.stack([begin[0], begin[1], size[0], size[1]])
  failed = tf.reduce_all(tf.equal(size[:2], shape[:2]))
  return tf.cond(
      failed, lambda: _center_crop(tf, jpeg, prep),
      lambda: _resize(tf, tf.io.decode_and_crop_jpeg(jpeg, window,
                                                     channels=3),
                      prep.image_size))


def _eval_example(tf: Any, prep: Preprocessing, example: Any) -> Any:
  image = _center_crop(tf, example['image'], prep)
  return {'inputs': _to_uint8(tf, image),
          'targets': tf.cast(example['label'], tf.int32)}


def _train_example(tf: Any, prep: Preprocessing, seed: int, index: Any,
                   example: Any) -> Any:
  key = tf.random.experimental.stateless_fold_in(
      tf.constant([seed, 0x1A9E], tf.int64), index)
  crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(
      key, 2))
  image = _random_crop(tf, example['image'], crop_key, prep)
  image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
  return {'inputs': _to_uint8(tf, image),
          'targets': tf.cast(example['label'], tf.int32)}


class ImagenetDataset(base.Dataset):
  """Streams ImageNet from a prepared TFDS `imagenet2012`.

  Attributes:
    builder: the TFDS builder.
    preprocessing: sizes and augmentation ranges.
    num_eval_train_examples: size of the 'train' evaluation split (the
      first training examples, evaluation preprocessing), as AlgoPerf's
      50,000.
    max_shuffle_buffer: cap on the shuffle buffer (16 batches otherwise,
      as AlgoPerf), in encoded JPEGs of about 110 kB each.
  """

  def __init__(self, builder: Any, *,
               preprocessing: Preprocessing = Preprocessing(),
               num_eval_train_examples: int = 50_000,
               max_shuffle_buffer: int = 100_000):
    self.builder = builder
    self.preprocessing = preprocessing
    self.num_eval_train_examples = num_eval_train_examples
    self.max_shuffle_buffer = max_shuffle_buffer
    self._cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}

  @classmethod
  def open(cls, data_dir: str | None, **kwargs) -> ImagenetDataset:
    """Opens the prepared data set in `data_dir` (or TFDS_DATA_DIR, see
    `streaming.tfds_data_dir`).

    Raises:
      DataNotFoundError: imagenet2012 is not prepared there; the message
        gives the manual download steps.
    """
    streaming.import_tensorflow()
    builder = sources.prepared_builder(
        TFDS_NAME, streaming.tfds_data_dir(data_dir), how_to=HOW_TO_PREPARE)
    return cls(builder, **kwargs)

  @property
  def eval_splits(self) -> tuple[str, ...]:
    return SPLITS

  def _read(self, split: str, *, shuffle_seed: int | None = None) -> Any:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return self.builder.as_dataset(
        split=split, shuffle_files=shuffle_seed is not None,
        decoders={'image': tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))

  def _eval_stream(self, split: str, size: int | None) -> Any:
    tf = streaming.import_tensorflow()
    ds = self._read(split)
    if size is not None:
      ds = ds.take(size)
    return ds.map(functools.partial(_eval_example, tf, self.preprocessing),
                  num_parallel_calls=tf.data.AUTOTUNE)

  def train_batches(self, regime: base.BatchRegime, seed: int,
                    part: chunks.Part = chunks.WHOLE
                    ) -> Iterator[base.Batch]:
    """Endless shuffled, augmented batches of `regime.batch_size`.

    Every process decodes the whole batch and keeps `part` of it: the
    examples of a batch are those of one shuffled stream, whichever
    process trains on them.

    Raises:
      ValueError: a full-batch regime.
    """
    if regime.full_batch:
      raise ValueError('ImageNet streams from disk; full-batch training '
                       '(1.28M images per step) is not supported. Use a '
                       'minibatch regime.')
    tf = streaming.import_tensorflow()
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    buffer = min(16 * regime.batch_size, self.max_shuffle_buffer)
    ds = self._read('train', shuffle_seed=seed).repeat().shuffle(
        buffer, seed=seed).enumerate()
    ds = ds.map(functools.partial(_train_example, tf, self.preprocessing,
                                  seed), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(regime.batch_size, drop_remainder=True).prefetch(2)
    return (part.take_batch(chunks.chunked(batch, regime.chunk_size))
            for batch in tfds.as_numpy(ds))

  def _materialise(self, split: str, size: int | None) -> dict[str, Any]:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    parts = list(tfds.as_numpy(self._eval_stream(split, size).batch(1024)))
    if not parts:
      raise ValueError(f'ImageNet split {split!r} is empty')
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if size is not None and len(arrays['targets']) < size:
      raise ValueError(f'asked for {size} examples of ImageNet {split!r}, it '
                       f'has {len(arrays["targets"])}')
    return arrays

  def fixed_batch(self, size: int, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """The first `size` training examples (file order), centre-cropped."""
    key = ('fixed', size)
    if key not in self._cache:
      self._cache[key] = self._materialise('train', size)
    return part.take_batch(chunks.chunked(self._cache[key], chunk_size))

  def _split_arrays(self, split: str) -> dict[str, np.ndarray]:
    if split not in SPLITS:
      raise ValueError(f'unknown split {split!r}; known splits: {SPLITS}')
    key = (split, 0)
    if key not in self._cache:
      size = self.num_eval_train_examples if split == 'train' else None
      arrays = self._materialise(split, size)
      arrays['weights'] = np.ones(len(arrays['targets']), np.float32)
      self._cache[key] = arrays
    return self._cache[key]

  def eval_arrays(self, split: str, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """A whole split in memory (uint8 images), zero-padded to whole chunks.

    50,000 validation images take 7.5 GB; they are decoded once and cached.
    """
    return part.take_batch(chunks.chunked(
        chunks.padded_rows(self._split_arrays(split), chunk_size),
        chunk_size))
