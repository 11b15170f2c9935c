"""Writes the bundled Fashion-MNIST subset from the Debian IDX files.

Draws, with a fixed seed, a class-balanced subset: 10,000 train and 2,000
validation examples (disjoint, both from the IDX training set) and 2,000 test
examples (from the IDX t10k set), and stores them with np.savez_compressed as
uint8 images (N, 28, 28, 1) and int32 labels, together with the seed, the
indices drawn and the SHA-256 of every source file.

Run from the repository root:

  python -m scripts.make_fashion_mnist_subset \
      [--idx_dir /usr/share/datasets/fashion-mnist] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib

import numpy as np

from workloads.data import sources

NUM_CLASSES = 10
SIZES = {'train': 10_000, 'validation': 2_000, 'test': 2_000}
DEFAULT_OUT = (pathlib.Path(__file__).resolve().parents[1] / 'workloads' /
               'data' / 'bundled' / sources.BUNDLED_FILE)
IDX_STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def sha256(path: str | os.PathLike[str]) -> str:
  """Hex SHA-256 of a file's bytes."""
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def balanced_draw(rng: np.random.Generator, labels: np.ndarray,
                  per_class: tuple[int, ...]) -> list[np.ndarray]:
  """Disjoint index sets with `per_class[k]` examples of every class each.

  Every returned set is shuffled, so any prefix is roughly balanced too.
  """
  draws = [[] for _ in per_class]
  for c in range(NUM_CLASSES):
    members = rng.permutation(np.flatnonzero(labels == c))
    bounds = np.cumsum((0,) + per_class)
    if bounds[-1] > len(members):
      raise ValueError(f'class {c} has {len(members)} examples, need '
                       f'{bounds[-1]}')
    for draw, lo, hi in zip(draws, bounds[:-1], bounds[1:]):
      draw.append(members[lo:hi])
  return [rng.permutation(np.concatenate(d)) for d in draws]


def image_hashes(images: np.ndarray) -> set[bytes]:
  return {hashlib.sha256(x.tobytes()).digest() for x in images}


def make_subset(idx_dir: str, seed: int) -> dict[str, np.ndarray]:
  """The arrays to store, keyed as `load_bundled_fashion_mnist` expects."""
  full = sources.load_fashion_mnist_idx(idx_dir)
  # Recombine the IDX training set (the loader splits off its last 10,000).
  pool_images = np.concatenate([full.train.images, full.validation.images])
  pool_labels = np.concatenate([full.train.labels, full.validation.labels])
  rng = np.random.default_rng(seed)
  per = {k: v // NUM_CLASSES for k, v in SIZES.items()}
  train_idx, val_idx = balanced_draw(rng, pool_labels,
                                     (per['train'], per['validation']))
  (test_idx,) = balanced_draw(rng, full.test.labels, (per['test'],))
  if image_hashes(pool_images[train_idx]) & image_hashes(pool_images[val_idx]):
    raise ValueError('train and validation share an image; change the seed')
  out = {
      'train_images': pool_images[train_idx],
      'train_labels': pool_labels[train_idx],
      'validation_images': pool_images[val_idx],
      'validation_labels': pool_labels[val_idx],
      'test_images': full.test.images[test_idx],
      'test_labels': full.test.labels[test_idx],
      # Indices into the IDX files (train-* for train and validation).
      'train_source_indices': train_idx.astype(np.int32),
      'validation_source_indices': val_idx.astype(np.int32),
      'test_source_indices': test_idx.astype(np.int32),
      'seed': np.int64(seed),
  }
  for stem in IDX_STEMS:
    path = sources.find_idx_file(idx_dir, stem)
    out[f'sha256_{stem}'] = np.str_(
        f'{sha256(path)}  {os.path.basename(path)}')
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--idx_dir', default=sources.DEFAULT_IDX_DIR)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', type=pathlib.Path, default=DEFAULT_OUT)
  args = parser.parse_args()
  arrays = make_subset(args.idx_dir, args.seed)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(args.out, **arrays)
  print(f'wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB)')
  for key, value in arrays.items():
    if key.startswith('sha256_'):
      print(f'  {value}')


if __name__ == '__main__':
  main()
