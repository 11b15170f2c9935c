"""Tests of the SentencePiece tokenizer cache and of BLEU."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from workloads import wmt
from workloads.data import tokenizer

CORPUS = [
    'The quick brown fox jumps over the lazy dog.',
    'Der schnelle braune Fuchs springt über den faulen Hund.',
    'Resumption of the session, Wiederaufnahme der Sitzungsperiode.',
    'I declare resumed the session of the European Parliament.',
    'Ich erkläre die Sitzungsperiode des Europäischen Parlaments für '
    'wiederaufgenommen.',
] * 20


def _train(path: str, calls: list[int] | None = None, delay: float = 0.0):
  def texts():
    if calls is not None:
      calls.append(1)
    time.sleep(delay)
    return iter(CORPUS)

  return tokenizer.load_or_train(path, texts, vocab_size=120)


def test_round_trip_and_special_ids(tmp_path):
  tok = _train(str(tmp_path / 'spm.model'))
  assert 10 < tok.vocab_size <= 120
  texts = CORPUS[:5] + ['Der faule Hund springt über den braunen Fuchs.']
  for text, ids in zip(texts, tok.encode(texts)):
    assert ids.dtype == np.int32
    assert ids[-1] == tokenizer.EOS_ID
    assert tokenizer.PAD_ID not in ids
    assert tok.decode(ids) == text
    # Decoding stops at EOS or at padding.
    assert tok.decode(np.concatenate([ids, [7, 8]])) == text
    assert tok.decode(np.concatenate([ids[:-1], [0, 0, 9]])) == text
  # Characters never seen in training are unknown.
  assert tokenizer.UNK_ID in tok.encode(['Grüße, 2024'])[0]


def test_cached_model_is_loaded_not_retrained(tmp_path):
  path = str(tmp_path / 'spm.model')
  first = _train(path)

  def must_not_train():
    raise AssertionError('retrained a cached tokenizer')

  again = tokenizer.load_or_train(path, must_not_train, vocab_size=120)
  assert again.vocab_size == first.vocab_size
  assert again.encode(['the fox'])[0].tolist() == (
      first.encode(['the fox'])[0].tolist())


def test_empty_corpus_is_an_error(tmp_path):
  with pytest.raises(ValueError, match='no text'):
    tokenizer.train(['', '  '], str(tmp_path / 'x.model'), vocab_size=50)
  assert not os.path.exists(tmp_path / 'x.model')


def test_concurrent_first_use_in_threads(tmp_path):
  path = str(tmp_path / 'spm.model')
  calls, results, errors = [], [], []

  def use():
    try:
      results.append(_train(path, calls, delay=0.2).vocab_size)
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=use) for _ in range(4)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert not errors
  assert len(calls) == 1  # Trained once; the others waited and loaded.
  assert len(set(results)) == 1 and len(results) == 4
  assert sorted(os.listdir(tmp_path)) == ['spm.model', 'spm.model.lock']


_CHILD = '''
import os, sys, time
from workloads.data import tokenizer
corpus = {corpus!r}
def texts():
  open(os.path.join({marks!r}, str(os.getpid())), 'w').close()
  time.sleep(1.0)
  return iter(corpus)
tok = tokenizer.load_or_train({path!r}, texts, vocab_size=120)
print(tok.vocab_size)
'''


def test_concurrent_first_use_in_processes(tmp_path):
  path, marks = str(tmp_path / 'cache' / 'spm.model'), tmp_path / 'marks'
  marks.mkdir()
  code = _CHILD.format(corpus=CORPUS, marks=str(marks), path=path)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  children = [subprocess.Popen([sys.executable, '-c', code], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
  outputs = [child.communicate(timeout=120) for child in children]
  for child, (out, err) in zip(children, outputs):
    assert child.returncode == 0, err
  assert len(os.listdir(marks)) == 1  # One process trained.
  assert len({out.strip() for out, _ in outputs}) == 1
  assert sorted(os.listdir(tmp_path / 'cache')) == ['spm.model',
                                                    'spm.model.lock']
  assert tokenizer.Tokenizer(path).vocab_size > 10


def test_bleu_of_a_perfect_translation_is_100():
  references = ['The cat sat on the mat.', 'It rained all day long.']
  assert wmt.bleu(references, references) == pytest.approx(100.0)
  partial = wmt.bleu(['The cat sat on a mat.', 'It rained all day.'],
                     references)
  assert 0.0 < partial < 100.0
  assert wmt.bleu(['', ''], references) == 0.0
