"""A SentencePiece tokenizer trained on first use and cached on disk.

`load_or_train` returns the tokenizer stored at a path, training it from a
text corpus the first time. Several processes (or threads) may start at
once: one trains while holding an exclusive `fcntl` lock on `<path>.lock`,
writes the model to a temporary file in the same directory and renames it
into place (atomic on POSIX), and the others wait on the lock and then load
the finished file. A reader never sees a partial model file.

Ids follow the T5/Flax-WMT convention: 0 padding, 1 end of sentence, 2
unknown, no beginning-of-sentence token. `encode` appends the EOS id.

References:
  T. Kudo and J. Richardson, "SentencePiece: A simple and language
  independent subword tokenizer and detokenizer for Neural Text
  Processing", EMNLP 2018 (demo), arXiv:1808.06226.
  Flax `examples/wmt/tokenizer.py`; AlgoPerf
  `algoperf/workloads/wmt/tokenizer.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import os
import tempfile
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import sentencepiece as spm

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


class Tokenizer:
  """Encodes text to id arrays ending in EOS, and decodes them back.

  Attributes:
    vocab_size: number of pieces in the model (at most the size it was
      trained for; fewer on a small corpus).
    path: the model file it was loaded from.
  """

  def __init__(self, path: str):
    self.path = path
    self._processor = spm.SentencePieceProcessor(model_file=path)
    self.vocab_size = self._processor.get_piece_size()

  def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
    """int32 ids of each text, with EOS appended."""
    ids = self._processor.encode(list(texts), out_type=int)
    return [np.asarray(x + [EOS_ID], np.int32) for x in ids]

  def decode(self, ids: Sequence[int] | np.ndarray) -> str:
    """The text of `ids` up to (not including) the first EOS or padding."""
    ids = [int(i) for i in ids]
    for stop in (EOS_ID, PAD_ID):
      if stop in ids:
        ids = ids[:ids.index(stop)]
    return self._processor.decode(ids)


def _corpus(texts: Iterable[str], max_chars: int) -> Iterator[str]:
  """Non-empty lines of `texts` until about `max_chars` characters."""
  count = 0
  for text in texts:
    if count >= max_chars:
      return
    text = text.strip()
    if text:
      count += len(text)
      yield text


def train(texts: Iterable[str], path: str, *, vocab_size: int,
          max_chars: int = 10**7, model_type: str = 'unigram') -> str:
  """Trains a SentencePiece model on `texts` and writes it to `path`.

  The model is written to a temporary file beside `path` and renamed into
  place, so `path` is either absent or complete. `vocab_size` is a soft
  limit (a small corpus yields fewer pieces instead of an error).

  Args:
    texts: training sentences (both languages, for a shared vocabulary).
    path: where the `.model` file goes; its directory is created.
    vocab_size: pieces to aim for, including the 3 special ids.
    max_chars: characters of `texts` to use (the first ones).
    model_type: SentencePiece algorithm ('unigram' as Flax WMT, or 'bpe').

  Returns:
    `path`.

  Raises:
    ValueError: `texts` holds no non-empty line.
  """
  lines = _corpus(texts, max_chars)
  first = next(lines, None)
  if first is None:
    raise ValueError(f'no text to train the tokenizer {path} on')
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=itertools.chain([first], lines), model_writer=model,
      vocab_size=vocab_size, model_type=model_type, character_coverage=1.0,
      pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
      hard_vocab_limit=False, minloglevel=2,
      num_threads=max(os.cpu_count() or 1, 1))
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=directory, prefix='.spm-',
                                   suffix='.tmp', delete=False) as f:
    f.write(model.getvalue())
  os.chmod(f.name, 0o644)  # NamedTemporaryFile makes it owner-only.
  os.replace(f.name, path)
  return path


@contextlib.contextmanager
def _exclusive(lock_path: str) -> Iterator[None]:
  """An exclusive advisory lock on `lock_path` (created if absent)."""
  os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
  with open(lock_path, 'a+b') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def load_or_train(path: str, texts: Callable[[], Iterable[str]], *,
                  vocab_size: int, max_chars: int = 10**7) -> Tokenizer:
  """The tokenizer at `path`, trained from `texts()` if it is not there yet.

  Safe to call from several processes or threads at once: exactly one
  trains (holding `<path>.lock`), the rest wait and load its model.

  Args:
    path: the cached `.model` file.
    texts: called only if training is needed; yields training sentences.
    vocab_size: as `train`.
    max_chars: as `train`.

  Returns:
    The loaded `Tokenizer`.
  """
  if not os.path.exists(path):
    with _exclusive(path + '.lock'):
      if not os.path.exists(path):  # Nobody trained it while we waited.
        train(texts(), path, vocab_size=vocab_size, max_chars=max_chars)
  return Tokenizer(path)
