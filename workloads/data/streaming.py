"""Shared pieces of the streaming (tf.data) pipelines for ImageNet and WMT.

TensorFlow and TFDS are imported inside these functions only, and
TensorFlow is kept off the accelerators: it runs the input pipeline on the
host, JAX owns the devices.
"""

from __future__ import annotations

import os
from typing import Any


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
