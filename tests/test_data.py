"""Tests of workloads.data: loaders, IDX parsing, TFDS and InMemoryDataset."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

from workloads import base
from workloads import chunks
from workloads.data import in_memory
from workloads.data import sources

IDX_DIR = sources.DEFAULT_IDX_DIR
needs_idx = pytest.mark.skipif(
    not os.path.isdir(IDX_DIR),
    reason=f'{IDX_DIR} absent (apt-get install dataset-fashion-mnist)')


def _hashes(images: np.ndarray) -> list[bytes]:
  return [hashlib.sha256(x.tobytes()).digest() for x in images]


@pytest.fixture(scope='module')
def bundled() -> sources.ImageClassificationData:
  return sources.load_bundled_fashion_mnist()


@pytest.fixture(scope='module')
def idx_data() -> sources.ImageClassificationData:
  if not os.path.isdir(IDX_DIR):
    pytest.skip(f'{IDX_DIR} absent (apt-get install dataset-fashion-mnist)')
  return sources.load_fashion_mnist_idx(IDX_DIR)


# ---- Bundled subset ----


def test_bundled_shapes_dtypes_sizes(bundled):
  sizes = {'train': 10_000, 'validation': 2_000, 'test': 2_000}
  for split, size in sizes.items():
    arrays = bundled.split(split)
    assert len(arrays) == size
    assert arrays.images.shape == (size, 28, 28, 1)
    assert arrays.images.dtype == np.uint8
    assert arrays.labels.dtype == np.int32
    counts = np.bincount(arrays.labels, minlength=10)
    assert counts.tolist() == [size // 10] * 10
  assert bundled.num_classes == 10
  assert 'bundled' in bundled.source
  assert bundled.train.images.std() > 10  # Real images, not zeros.


def test_bundled_train_validation_disjoint(bundled):
  train = set(_hashes(bundled.train.images))
  assert len(train) == len(bundled.train)
  assert train.isdisjoint(_hashes(bundled.validation.images))


def test_bundled_file_size_and_provenance():
  path = os.path.join(os.path.dirname(sources.__file__), 'bundled',
                      sources.BUNDLED_FILE)
  assert os.path.getsize(path) < 8 * 2**20
  with np.load(path) as npz:
    assert int(npz['seed']) == 0
    digests = [str(npz[k]) for k in npz.files if k.startswith('sha256_')]
  assert len(digests) == 4
  assert all(len(d.split()[0]) == 64 for d in digests)


@needs_idx
def test_bundled_images_occur_in_idx_set(bundled, idx_data):
  """Spot checks by hash, and the stored indices point at the same rows."""
  idx_train, idx_labels = (
      np.concatenate([getattr(idx_data.train, k),
                      getattr(idx_data.validation, k)])
      for k in ('images', 'labels'))
  train_hashes = dict(zip(_hashes(idx_train), idx_labels))
  test_hashes = dict(zip(_hashes(idx_data.test.images), idx_data.test.labels))
  for split, table in [('train', train_hashes), ('validation', train_hashes),
                       ('test', test_hashes)]:
    arrays = bundled.split(split)
    for i in (0, 1, 17, len(arrays) - 1):
      digest = hashlib.sha256(arrays.images[i].tobytes()).digest()
      assert table[digest] == arrays.labels[i]
  path = os.path.join(os.path.dirname(sources.__file__), 'bundled',
                      sources.BUNDLED_FILE)
  with np.load(path) as npz:
    rows = npz['validation_source_indices']
  np.testing.assert_array_equal(idx_train[rows], bundled.validation.images)


# ---- IDX ----


@needs_idx
def test_idx_loader_on_debian_files(idx_data):
  assert [len(idx_data.split(s)) for s in sources.SPLITS] == [50_000, 10_000,
                                                              10_000]
  assert idx_data.train.images.shape[1:] == (28, 28, 1)
  assert idx_data.train.images.dtype == np.uint8
  assert idx_data.test.labels.dtype == np.int32
  assert np.bincount(idx_data.test.labels).tolist() == [1000] * 10


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
  header = bytes([0, 0, code, array.ndim])
  dims = np.asarray(array.shape, '>u4').tobytes()
  return header + dims + array.astype(array.dtype.newbyteorder('>')).tobytes()


def test_parse_idx_handwritten():
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  np.testing.assert_array_equal(sources.parse_idx(_idx_bytes(images)), images)
  ints = np.array([-5, 70000, 3], np.int32)
  parsed = sources.parse_idx(_idx_bytes(ints, 0x0C))
  np.testing.assert_array_equal(parsed, ints)
  assert parsed.dtype == np.int32


@pytest.mark.parametrize('data, match', [
    (b'\x01\x00\x08\x01\x00\x00\x00\x01\x07', 'magic'),
    (b'\x00\x00\x42\x01\x00\x00\x00\x01\x07', 'type code'),
    (b'\x00\x00\x08\x02\x00\x00\x00\x02', 'truncated'),
    (b'\x00\x00\x08\x01\x00\x00\x00\x03\x07', 'needs'),
])
def test_parse_idx_rejects_bad_files(data, match):
  with pytest.raises(ValueError, match=match):
    sources.parse_idx(data)


def test_read_idx_gzipped_and_plain_and_loader(tmp_path):
  rng = np.random.default_rng(0)
  for stem, n in [('train', 12_000), ('t10k', 30)]:
    images = rng.integers(0, 256, (n, 5, 5), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    (tmp_path / f'{stem}-images-idx3-ubyte.gz').write_bytes(
        gzip.compress(_idx_bytes(images)))
    (tmp_path / f'{stem}-labels-idx1-ubyte').write_bytes(_idx_bytes(labels))
  np.testing.assert_array_equal(
      sources.read_idx(tmp_path / 't10k-images-idx3-ubyte.gz'), images)
  data = sources.load_fashion_mnist_idx(tmp_path)
  assert [len(data.split(s)) for s in sources.SPLITS] == [2_000, 10_000, 30]
  assert data.test.images.shape == (30, 5, 5, 1)


def test_idx_missing_directory_says_how_to_install(tmp_path):
  with pytest.raises(sources.DataNotFoundError,
                     match='apt-get install dataset-fashion-mnist'):
    sources.load_fashion_mnist_idx(tmp_path / 'nope')
  with pytest.raises(sources.DataNotFoundError, match='t10k-images'):
    (tmp_path / 'train-images-idx3-ubyte').write_bytes(b'')
    (tmp_path / 'train-labels-idx1-ubyte').write_bytes(b'')
    sources.find_idx_file(tmp_path, 't10k-images-idx3-ubyte')


# ---- TFDS ----


@pytest.mark.parametrize('name, num_classes', [('cifar10', 10),
                                               ('cifar100', 100)])
def test_tfds_mocked_shapes(name, num_classes, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  # mock_data fakes the reading but not `is_prepared`, which we check first.
  with tfds.testing.mock_data(num_examples=12,
                              policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared',
                        return_value=True):
    data = sources.load_tfds(name, data_dir=str(tmp_path), validation_size=4)
  assert [len(data.split(s)) for s in sources.SPLITS] == [8, 4, 12]
  assert data.train.images.shape == (8, 32, 32, 3)
  assert data.train.images.dtype == np.uint8
  assert data.test.labels.dtype == np.int32
  assert data.num_classes == num_classes
  assert 0 <= data.test.labels.min() <= data.test.labels.max() < num_classes


def _assert_clean(error: BaseException) -> None:
  assert error.__cause__ is None
  assert error.__context__ is None or error.__suppress_context__


def test_tfds_missing_data_raises_clear_error(tmp_path, monkeypatch):
  pytest.importorskip('tensorflow_datasets')
  with pytest.raises(sources.DataNotFoundError) as info:
    sources.load_tfds('cifar10', data_dir=str(tmp_path))
  message = str(info.value)
  for part in ('cifar10', str(tmp_path), 'tfds build cifar10',
               'download_and_prepare', 'TFDS_DATA_DIR', '--data_dir'):
    assert part in message
  _assert_clean(info.value)
  # With no data_dir, TFDS_DATA_DIR is where it looks.
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'env'))
  with pytest.raises(sources.DataNotFoundError, match='env') as info:
    sources.load_tfds('cifar100')
  _assert_clean(info.value)


def test_tfds_unknown_name():
  with pytest.raises(ValueError, match='cifar10'):
    sources.load_tfds('imagenet')


def test_training_path_does_not_import_tensorflow():
  code = ('import sys, workloads.data as d; d.InMemoryDataset('
          'd.load_bundled_fashion_mnist(), 100); '
          'assert "tensorflow" not in sys.modules, "tf imported"; '
          'assert "tensorflow_datasets" not in sys.modules, "tfds imported"')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, '-c', code], check=True, cwd=root)


# ---- InMemoryDataset ----


def _tiny_data(n_train=40, n_val=7, n_test=9, hw=4, channels=3, seed=0):
  rng = np.random.default_rng(seed)

  def arrays(n):
    return sources.LabeledArrays(
        rng.integers(0, 256, (n, hw, hw, channels), dtype=np.uint8),
        (np.arange(n) % 5).astype(np.int32))

  return sources.ImageClassificationData(arrays(n_train), arrays(n_val),
                                         arrays(n_test), 5, 'tiny')


def _ids(ds: in_memory.InMemoryDataset, inputs: np.ndarray) -> list[int]:
  """Pool positions of (unaugmented) inputs, matched exactly."""
  pool = ds.fixed_batch(ds.train_size, 1)['inputs'][:, 0]
  table = {x.tobytes(): i for i, x in enumerate(pool)}
  return [table[x.tobytes()] for x in inputs.reshape(-1, *pool.shape[1:])]


def test_full_batch_same_object_and_chunks():
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=30)
  regime = base.BatchRegime(full_batch=True, train_size=30, batch_size=30,
                            chunk_size=10)
  it = ds.train_batches(regime, seed=0)
  first, second = next(it), next(it)
  assert first is second
  assert first['inputs'].shape == (3, 10, 4, 4, 3)
  assert first['inputs'].dtype == np.float32
  assert first['targets'].shape == (3, 10)
  assert first['targets'].dtype == np.int32
  assert _ids(ds, first['inputs']) == list(range(30))
  with pytest.raises(ValueError):
    first['inputs'][0, 0, 0, 0, 0] = 1.0  # Read-only: shared across steps.


def _epoch(ds, regime, seed, steps):
  it = ds.train_batches(regime, seed)
  return [next(it) for _ in range(steps)]


def test_minibatches_reproducible_and_each_example_once_per_epoch():
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=30)
  regime = base.BatchRegime(full_batch=False, train_size=30, batch_size=10,
                            chunk_size=5)
  batches = _epoch(ds, regime, seed=3, steps=6)
  assert batches[0]['inputs'].shape == (2, 5, 4, 4, 3)
  assert batches[0]['targets'].shape == (2, 5)
  ids = [_ids(ds, b['inputs']) for b in batches]
  for epoch in (ids[:3], ids[3:]):
    assert sorted(sum(epoch, [])) == list(range(30))
  assert sum(ids[:3], []) != sum(ids[3:], [])  # Reshuffled each epoch.
  again = [_ids(ds, b['inputs']) for b in _epoch(ds, regime, 3, 6)]
  assert again == ids
  other = [_ids(ds, b['inputs']) for b in _epoch(ds, regime, 4, 6)]
  assert other != ids
  targets = np.concatenate([b['targets'].ravel() for b in batches[:3]])
  np.testing.assert_array_equal(np.sort(targets),
                                np.sort(np.arange(30) % 5))


def test_minibatches_drop_remainder():
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=25)
  regime = base.BatchRegime(full_batch=False, train_size=25, batch_size=10,
                            chunk_size=10)
  ids = [_ids(ds, b['inputs']) for b in _epoch(ds, regime, 0, 2)]
  assert len(set(sum(ids, []))) == 20


def test_normalisation_zero_mean_unit_std_on_train(bundled):
  ds = in_memory.InMemoryDataset(bundled, train_size=len(bundled.train))
  x = ds.eval_arrays('train', 1000)['inputs']
  assert x.dtype == np.float32
  np.testing.assert_allclose(x.mean(axis=(0, 1, 2, 3)), 0.0, atol=1e-4)
  np.testing.assert_allclose(x.std(axis=(0, 1, 2, 3)), 1.0, atol=1e-4)
  # Statistics come from the whole train split, whatever the train_size.
  small = in_memory.InMemoryDataset(bundled, train_size=100)
  np.testing.assert_array_equal(small.normalization.mean,
                                ds.normalization.mean)


def test_eval_padding_and_weights():
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=30)
  assert ds.eval_splits == ('train', 'validation', 'test')
  for split, size in [('train', 30), ('validation', 7), ('test', 9)]:
    arrays = ds.eval_arrays(split, 4)
    assert arrays['inputs'].shape == (-(-size // 4), 4, 4, 4, 3)
    assert arrays['weights'].dtype == np.float32
    assert arrays['weights'].sum() == size
    chunks = list(ds.eval_batches(split, 4))
    assert len(chunks) == len(arrays['weights'])
    assert all(c['inputs'].shape == (4, 4, 4, 3) for c in chunks)
    assert sum(c['weights'].sum() for c in chunks) == size
    flat = arrays['inputs'].reshape(-1, 4, 4, 3)
    assert not flat[size:].any()  # Padding is zeros.
  assert ds.eval_arrays('test', 4) is ds.eval_arrays('test', 4)


def test_fixed_batch_is_prefix_unaugmented():
  augment = mock.Mock(side_effect=lambda rng, x, *where: x + 1.0)
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=30, augment=augment)
  fixed = ds.fixed_batch(20, 5)
  assert fixed['inputs'].shape == (4, 5, 4, 4, 3)
  assert _ids(ds, fixed['inputs']) == list(range(20))
  full = base.BatchRegime(full_batch=True, train_size=30, batch_size=30,
                          chunk_size=30)
  next(ds.train_batches(full, 0))
  list(ds.eval_batches('train', 7))
  augment.assert_not_called()
  mini = base.BatchRegime(full_batch=False, train_size=30, batch_size=10,
                          chunk_size=10)
  next(ds.train_batches(mini, 0))
  augment.assert_called_once()


def test_clear_value_errors():
  data = _tiny_data()
  with pytest.raises(ValueError, match='train_size 41'):
    in_memory.InMemoryDataset(data, train_size=41)
  ds = in_memory.InMemoryDataset(data, train_size=30)
  with pytest.raises(ValueError, match="'train', 'validation', 'test'"):
    ds.eval_arrays('valid', 4)
  with pytest.raises(ValueError, match='known splits'):
    ds.eval_batches('dev', 4)
  with pytest.raises(ValueError, match='train_size'):
    ds.fixed_batch(31, 1)
  with pytest.raises(ValueError, match='differs'):
    ds.train_batches(base.BatchRegime(True, 20, 20, 10), 0)


@pytest.mark.parametrize('full_batch', [True, False])
def test_parts_of_every_batch_join_into_the_whole(full_batch):
  """What two processes load is the whole batch, augmentation included."""
  augment = in_memory.cifar_augment
  ds = in_memory.InMemoryDataset(_tiny_data(), train_size=24, augment=augment)
  regime = base.BatchRegime(full_batch=full_batch, train_size=24,
                            batch_size=24 if full_batch else 12,
                            chunk_size=6)
  whole = ds.train_batches(regime, seed=3)
  parts = [ds.train_batches(regime, 3, chunks.Part(i, 2)) for i in (0, 1)]
  for _ in range(3):  # Past an epoch of minibatches.
    expected = next(whole)
    got = [next(p) for p in parts]
    assert got[0]['inputs'].shape[:2] == (regime.num_chunks, 3)
    for key in expected:
      np.testing.assert_array_equal(
          np.concatenate([g[key] for g in got], axis=1), expected[key])
  merged = [ds.fixed_batch(12, 6, chunks.Part(i, 2, across_chunks=True))
            for i in (0, 1)]
  assert _ids(ds, merged[1]['inputs']) == list(range(6, 12))
  evaluated = [ds.eval_arrays('test', 4, chunks.Part(i, 2))['weights']
               for i in (0, 1)]
  assert sum(w.sum() for w in evaluated) == 9


# ---- Augmentation ----


def test_cifar_augment_shape_dtype_and_changes_images():
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, (64, 32, 32, 3), dtype=np.uint8)
  out = in_memory.cifar_augment(np.random.default_rng(1), images)
  assert out.shape == images.shape and out.dtype == images.dtype
  changed = np.any(out != images, axis=(1, 2, 3))
  assert changed.sum() >= 60  # An image stays as it was with p = 1/162.
  # Padding is zero: shifted crops bring zero rows or columns in.
  assert (out == 0).any()
  floats = in_memory.cifar_augment(rng, images.astype(np.float32))
  assert floats.dtype == np.float32


def test_cifar_augment_flip_of_symmetric_image_is_noop():
  rng = np.random.default_rng(0)
  half = rng.normal(size=(16, 8, 4, 3)).astype(np.float32)
  symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
  out = in_memory.cifar_augment(rng, symmetric, padding=0)
  np.testing.assert_array_equal(out, symmetric)
  asymmetric = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
  out = in_memory.cifar_augment(rng, asymmetric, padding=0)
  flipped = np.all(out == asymmetric[:, :, ::-1], axis=(1, 2, 3))
  kept = np.all(out == asymmetric, axis=(1, 2, 3))
  assert np.all(flipped ^ kept) and flipped.any() and kept.any()
