"""A streaming WMT German-English `Dataset`, as AlgoPerf's WMT workload.

Training text is TFDS `wmt17_translate/de-en` 'train' (5.9M sentence
pairs); evaluation is TFDS `wmt14_translate/de-en`: 'validation' is
newstest2013 (3,000 pairs) and 'test' newstest2014 (3,003 pairs). The
'train' evaluation split is the first 3,072 training pairs (AlgoPerf's
size). The direction (which language is the source) is a parameter.

Text is tokenised by a shared 32k SentencePiece model (`data.tokenizer`),
trained on the first 10M characters of the training text (both languages)
on first use and cached in `DATA_DIR/wmt_sentencepiece/`. Training pairs
longer than `max_len` tokens on either side are dropped (as AlgoPerf);
evaluation pairs are truncated instead, so every reference is scored.

Training rows are *packed* (as AlgoPerf and Flax WMT): consecutive pairs
of the shuffled stream share a row of `max_len` tokens, told apart by
`*_segmentation` (1, 2, ... per pair, 0 on padding) with positions
restarting at each pair (`*_position`). `batch_size` counts rows. The
curvature batch (`fixed_batch`) is the first rows of the unshuffled stream,
packed the same way. Evaluation rows hold one pair each. Every batch has
float32 `weights`, 1 on real target tokens and 0 on padding.

TensorFlow reads the TFDS records (imported lazily); tokenising and packing
are NumPy on the host.

References:
  AlgoPerf `algoperf/workloads/wmt/input_pipeline.py`; Flax `examples/wmt`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Iterable, Iterator

import numpy as np

from workloads import base
from workloads import chunks
from workloads.data import sources
from workloads.data import streaming
from workloads.data import tokenizer as tokenizer_lib

TRAIN_DATA = 'wmt17_translate/de-en'
EVAL_DATA = 'wmt14_translate/de-en'
# Split name -> (TFDS data set, TFDS split).
SPLITS = {'train': (TRAIN_DATA, 'train'),
          'validation': (EVAL_DATA, 'validation'),
          'test': (EVAL_DATA, 'test')}

HOW_TO_PREPARE = (
    f'The WMT workloads need both {TRAIN_DATA} (training) and {EVAL_DATA} '
    f'(evaluation): run `tfds build {TRAIN_DATA} --data_dir=DIR` and `tfds '
    f'build {EVAL_DATA} --data_dir=DIR`.')

_READ_BLOCK = 4096  # Sentence pairs tokenised at a time.


@dataclasses.dataclass(frozen=True)
class WmtConfig:
  """What the pipeline reads and how it cuts it.

  Attributes:
    source_language: 'de' or 'en'.
    target_language: the other one.
    max_len: tokens per row (EOS included).
    vocab_size: SentencePiece vocabulary.
    tokenizer_chars: training characters for the tokenizer.
    num_eval_train_examples: pairs in the 'train' evaluation split.
    shuffle_buffer: sentence pairs in the training shuffle buffer.
  """

  source_language: str = 'de'
  target_language: str = 'en'
  max_len: int = 256
  vocab_size: int = 32_000
  tokenizer_chars: int = 10**7
  num_eval_train_examples: int = 3072
  shuffle_buffer: int = 2**17


def tokenizer_path(data_dir: str | None, vocab_size: int) -> str:
  """Where the shared SentencePiece model is cached."""
  return os.path.join(streaming.tfds_data_dir(data_dir), 'wmt_sentencepiece',
                      f'wmt17_de_en_{vocab_size}.model')


def _pairs(ds: Any, source: str, target: str) -> Iterator[tuple[str, str]]:
  """(source, target) strings of a TFDS translation data set."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  for block in tfds.as_numpy(ds.batch(_READ_BLOCK)):
    yield from zip((s.decode('utf-8') for s in block[source]),
                   (t.decode('utf-8') for t in block[target]))


def _read(builders: dict[str, Any], split: str, *,
          seed: int | None = None) -> Any:
  """The tf.data records of `split`, file order unless `seed` is given."""
  streaming.import_tensorflow()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name, tfds_split = SPLITS[split]
  return builders[name].as_dataset(
      split=tfds_split, shuffle_files=seed is not None,
      read_config=tfds.ReadConfig(shuffle_seed=seed))


def _interleaved(pairs: Iterable[tuple[str, str]]) -> Iterator[str]:
  for source, target in pairs:
    yield source
    yield target


def pack_rows(examples: Iterable[tuple[np.ndarray, np.ndarray]],
              max_len: int) -> Iterator[dict[str, np.ndarray]]:
  """Greedily packs (source ids, target ids) pairs into rows of `max_len`.

  A pair goes into the current row if both sides still fit, else it starts
  a new row. Pairs must be at most `max_len` long on each side.

  Yields:
    Dicts of `(max_len,)` int32 `inputs`, `targets`, their `_segmentation`
    and `_position`, and float32 `weights` (targets > 0).
  """
  row: list[tuple[np.ndarray, np.ndarray]] = []
  used = np.zeros(2, int)
  for pair in examples:
    lengths = np.array([len(pair[0]), len(pair[1])])
    if row and np.any(used + lengths > max_len):
      yield _packed_row(row, max_len)
      row, used = [], np.zeros(2, int)
    row.append(pair)
    used += lengths
  if row:
    yield _packed_row(row, max_len)


def _packed_row(row: list[tuple[np.ndarray, np.ndarray]],
                max_len: int) -> dict[str, np.ndarray]:
  out = {}
  for side, key in enumerate(('inputs', 'targets')):
    seqs = [pair[side] for pair in row]
    lengths = [len(s) for s in seqs]
    n = sum(lengths)
    arrays = {key: np.concatenate(seqs),
              f'{key}_segmentation': np.repeat(
                  np.arange(1, len(seqs) + 1, dtype=np.int32), lengths),
              f'{key}_position': np.concatenate(
                  [np.arange(length, dtype=np.int32) for length in lengths])}
    for name, values in arrays.items():
      out[name] = np.zeros(max_len, np.int32)
      out[name][:n] = values
  out['weights'] = (out['targets'] > 0).astype(np.float32)
  return out


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


class WmtDataset(base.Dataset):
  """Packed training rows and padded evaluation rows of WMT De-En."""

  def __init__(self, builders: dict[str, Any],
               tokenizer: tokenizer_lib.Tokenizer, config: WmtConfig):
    """Use `open` unless the builders are at hand (tests).

    Args:
      builders: TFDS builders by name (`TRAIN_DATA`, `EVAL_DATA`).
      tokenizer: the shared tokenizer.
      config: languages and sizes.
    """
    self.builders = builders
    self.tokenizer = tokenizer
    self.config = config
    self._eval: dict[str, tuple[dict[str, np.ndarray], list[str]]] = {}
    self._fixed: dict[int, dict[str, np.ndarray]] = {}

  @classmethod
  def open(cls, data_dir: str | None, config: WmtConfig) -> WmtDataset:
    """Opens the prepared TFDS data and loads (or trains) the tokenizer.

    Raises:
      DataNotFoundError: a TFDS data set is not prepared in `data_dir`.
    """
    streaming.import_tensorflow()
    where = streaming.tfds_data_dir(data_dir)
    builders = {name: sources.prepared_builder(name, where,
                                               how_to=HOW_TO_PREPARE)
                for name in (TRAIN_DATA, EVAL_DATA)}

    def corpus() -> Iterator[str]:
      # Both languages, in a fixed order, whichever the direction.
      return _interleaved(_pairs(_read(builders, 'train'), 'de', 'en'))

    tokenizer = tokenizer_lib.load_or_train(
        tokenizer_path(data_dir, config.vocab_size), corpus,
        vocab_size=config.vocab_size, max_chars=config.tokenizer_chars)
    return cls(builders, tokenizer, config)

  @property
  def eval_splits(self) -> tuple[str, ...]:
    return tuple(SPLITS)

  def _text(self, split: str, ds: Any = None) -> Iterator[tuple[str, str]]:
    return _pairs(_read(self.builders, split) if ds is None else ds,
                  self.config.source_language, self.config.target_language)

  def _token_pairs(self, pairs: Iterable[tuple[str, str]]
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Tokenised pairs, those longer than max_len on either side dropped."""
    max_len = self.config.max_len
    pairs = iter(pairs)
    while block := list(itertools.islice(pairs, _READ_BLOCK)):
      sources = self.tokenizer.encode([s for s, _ in block])
      targets = self.tokenizer.encode([t for _, t in block])
      yield from ((s, t) for s, t in zip(sources, targets)
                  if len(s) <= max_len and len(t) <= max_len)

  def train_batches(self, regime: base.BatchRegime, seed: int,
                    part: chunks.Part = chunks.WHOLE
                    ) -> Iterator[base.Batch]:
    """Endless batches of `regime.batch_size` packed rows, reshuffled from
    files and a buffer of `shuffle_buffer` pairs, reproducible per seed.
    Every process packs the whole batch and keeps `part` of it.

    Raises:
      ValueError: a full-batch regime (5.9M pairs do not fit).
    """
    if regime.full_batch:
      raise ValueError('WMT streams from disk; full-batch training is not '
                       'supported. Use a minibatch regime.')
    ds = _read(self.builders, 'train', seed=seed).repeat().shuffle(
        self.config.shuffle_buffer, seed=seed)
    rows = pack_rows(self._token_pairs(self._text('train', ds)),
                     self.config.max_len)
    while True:
      batch = list(itertools.islice(rows, regime.batch_size))
      yield part.take_batch(chunks.chunked(_stack(batch),
                                           regime.chunk_size))

  def fixed_batch(self, size: int, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """The first `size` packed rows of the training data, in file order.

    Raises:
      ValueError: the training data has fewer rows, or chunk_size does not
        divide size.
    """
    if size not in self._fixed:
      rows = list(itertools.islice(
          pack_rows(self._token_pairs(self._text('train')),
                    self.config.max_len), size))
      if len(rows) < size:
        raise ValueError(f'asked for {size} packed rows, the training data '
                         f'has {len(rows)}')
      self._fixed[size] = _stack(rows)
    return part.take_batch(chunks.chunked(self._fixed[size], chunk_size))

  def _split(self, split: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """A split's padded token arrays and its reference texts, cached."""
    if split not in SPLITS:
      raise ValueError(f'unknown split {split!r}; known splits: '
                       f'{tuple(SPLITS)}')
    if split not in self._eval:
      pairs = self._text(split)
      if split == 'train':
        pairs = itertools.islice(pairs, self.config.num_eval_train_examples)
      pairs = list(pairs)
      if not pairs:
        raise ValueError(f'WMT split {split!r} is empty')
      arrays = {
          key: self._padded(texts) for key, texts in
          (('inputs', [s for s, _ in pairs]),
           ('targets', [t for _, t in pairs]))}
      arrays['weights'] = (arrays['targets'] > 0).astype(np.float32)
      self._eval[split] = arrays, [t for _, t in pairs]
    return self._eval[split]

  def _padded(self, texts: list[str]) -> np.ndarray:
    max_len = self.config.max_len
    out = np.zeros((len(texts), max_len), np.int32)
    for i, ids in enumerate(self.tokenizer.encode(texts)):
      out[i, :min(len(ids), max_len)] = ids[:max_len]
    return out

  def eval_arrays(self, split: str, chunk_size: int,
                  part: chunks.Part = chunks.WHOLE) -> base.Batch:
    """One pair per row, `(num_chunks, chunk_size, max_len)`; whole padding
    rows (weights 0) fill the last chunk."""
    arrays, _ = self._split(split)
    return part.take_batch(
        chunks.chunked(chunks.padded_rows(arrays, chunk_size), chunk_size))

  def references(self, split: str) -> list[str]:
    """The target-language texts of a split, in row order."""
    return self._split(split)[1]
