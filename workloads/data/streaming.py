"""Shared pieces of the streaming (tf.data) pipelines for ImageNet and WMT.

TensorFlow and TFDS are imported inside these functions only, and
TensorFlow is kept off the accelerators: it runs the input pipeline on the
host, JAX owns the devices.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from workloads.data import sources


def import_tensorflow() -> Any:
  """TensorFlow with its GPUs hidden (a CPU-only build has none)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # Already initialised: leave it as it is.
    pass
  return tf


def tfds_data_dir(data_dir: str | None) -> str:
  """`data_dir`, else TFDS_DATA_DIR, else TFDS's default directory."""
  return (data_dir or os.environ.get('TFDS_DATA_DIR')
          or os.path.expanduser('~/tensorflow_datasets'))


def prepared_builder(name: str, data_dir: str | None, how_to: str) -> Any:
  """The TFDS builder of `name`, checked to be prepared.

  Args:
    name: TFDS name with config, e.g. 'wmt17_translate/de-en'.
    data_dir: TFDS data directory (see `tfds_data_dir`).
    how_to: the steps that prepare it, for the error message.

  Raises:
    sources.DataNotFoundError: not prepared in the directory.
  """
  import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = tfds_data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=where)
  except (AssertionError, OSError, tfds.core.DatasetNotFoundError):
    builder = None
  if builder is None or not builder.is_prepared():
    raise sources.DataNotFoundError(
        f'TFDS data set {name!r} is not prepared in {where}. {how_to}')
  return builder


def chunked(arrays: dict[str, np.ndarray],
            chunk_size: int) -> dict[str, np.ndarray]:
  """Every leaf `(n, ...)` as `(n // chunk_size, chunk_size, ...)`.

  Raises:
    ValueError: chunk_size does not divide n.
  """
  for key, value in arrays.items():
    if len(value) % chunk_size:
      raise ValueError(f'chunk_size {chunk_size} does not divide the '
                       f'{len(value)} rows of {key!r}')
  return {k: v.reshape(-1, chunk_size, *v.shape[1:])
          for k, v in arrays.items()}


def padded_rows(arrays: dict[str, np.ndarray],
                chunk_size: int) -> dict[str, np.ndarray]:
  """Zero rows appended so that `chunk_size` divides the row count."""
  n = len(next(iter(arrays.values())))
  extra = -n % chunk_size
  if not extra:
    return arrays
  return {k: np.concatenate([v, np.zeros((extra,) + v.shape[1:], v.dtype)])
          for k, v in arrays.items()}
