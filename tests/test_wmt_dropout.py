"""The WMT Transformer's dropout with a traced rate.

AlgoPerf's submissions pass `dropout_rate` into `model_fn` as a `jax.jit`
argument. A traced rate must mean what the same Python rate means, on
embeddings, MLP hidden units, residual branches and attention weights; one
compiled function serves every rate; a Python rate outside [0, 1) is
refused and a traced one outside it gives NaN logits.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workloads import base
from workloads import wmt
from workloads.models import transformer

TRAIN = base.ForwardPassMode.TRAIN
EVAL = base.ForwardPassMode.EVAL
_RNG = jax.random.key(1)
# The same masks, but XLA folds the scale 1 / (1 - rate) of a Python rate
# at compile time and computes a traced rate's at run time; the two may
# differ in the last bit, which moves the logits by about 1e-6. A different
# mask moves them by more than 1e-2.
_SAME = dict(rtol=1e-5, atol=1e-5)


@functools.lru_cache(maxsize=None)
def _workload():
  return wmt.WmtTransformerPreLN.tiny()


@functools.lru_cache(maxsize=None)
def _params():
  return jax.jit(_workload().init_model_fn)(jax.random.key(0))[0]


def _batch():
  tokens = (jnp.arange(2 * 32).reshape(2, 32) % 60) + 1
  return {'inputs': tokens, 'targets': tokens}


def _logits(params, rng, dropout_rate, mode=TRAIN):
  return _workload().model_fn(params, _batch(), {}, mode, rng, False,
                              dropout_rate=dropout_rate)[0]


_traces = []


def _counted_logits_and_grad(params, rng, dropout_rate):
  """Logits and the gradient of their mean square, as a train step takes
  one through the model."""
  _traces.append(dropout_rate)

  def loss(p):
    logits = _logits(p, rng, dropout_rate)
    return jnp.mean(logits ** 2), logits

  (_, logits), grad = jax.value_and_grad(loss, has_aux=True)(params)
  return logits, grad


# The rate a jit argument, as AlgoPerf's submissions pass it.
_traced = jax.jit(_counted_logits_and_grad)
_static = jax.jit(_logits, static_argnums=2)
_traced_eval = jax.jit(functools.partial(_logits, rng=None, mode=EVAL))


def _traced_call(rate):
  return _traced(_params(), _RNG, rate)[0]


@functools.lru_cache(maxsize=None)
def _eval_logits():
  return _traced_eval(_params(), dropout_rate=0.0)


def _max_difference(a, b):
  return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def test_a_traced_rate_drops_as_the_same_python_rate():
  traced = _traced_call(0.1)
  python = _static(_params(), _RNG, 0.1)
  np.testing.assert_allclose(traced, python, **_SAME)
  # Dropout did happen: the comparison is not between two EVAL passes.
  assert _max_difference(python, _eval_logits()) > 1e-2


def test_a_traced_zero_rate_is_no_dropout():
  np.testing.assert_allclose(_traced_call(0.0), _eval_logits(), **_SAME)
  np.testing.assert_allclose(_eval_logits(), _logits(_params(), None, None,
                                                     EVAL), **_SAME)


def test_one_compiled_function_serves_every_rate():
  traces_before = len(_traces)
  low, high = _traced_call(0.2), _traced_call(0.5)
  zero = _traced_call(0.0)
  assert len(_traces) - traces_before <= 1  # None if traced already.
  assert _traced._cache_size() == 1
  assert _max_difference(low, zero) > 1e-2
  assert _max_difference(high, zero) > 1e-2
  assert _max_difference(low, high) > 1e-2


def test_gradients_are_finite_with_a_traced_rate():
  grad = _traced(_params(), _RNG, 0.3)[1]
  leaves = [np.asarray(g) for g in jax.tree.leaves(grad)]
  assert all(np.isfinite(g).all() for g in leaves)
  assert all(np.abs(g).max() > 0 for g in leaves)


def test_a_traced_rate_outside_the_unit_interval_gives_nan_logits():
  for rate in (1.0, -0.1, float('nan')):
    assert np.isnan(np.asarray(_traced_call(rate))).all(), rate
  # Evaluation as well: a bad rate is never silently ignored.
  assert np.isnan(np.asarray(_traced_eval(_params(),
                                          dropout_rate=1.5))).all()


def test_a_python_rate_outside_the_unit_interval_is_refused():
  for rate in (1.0, -0.1, float('nan')):
    with pytest.raises(base.UnsupportedDropoutError, match=r'\[0, 1\)'):
      _logits(_params(), _RNG, rate)


# ---- attention weights ----


def test_attention_weight_dropout_is_applied():
  """Traced rates, only the attention-weight one non-zero."""
  model, batch = _workload().model, _batch()

  @jax.jit
  def logits(params, hidden, attention):
    return model.apply({'params': params}, batch['inputs'],
                       batch['targets'], deterministic=False,
                       dropout_rate=hidden, attention_dropout_rate=attention,
                       rngs={'dropout': _RNG})

  np.testing.assert_allclose(logits(_params(), 0.0, 0.0), _eval_logits(),
                             **_SAME)
  assert _max_difference(logits(_params(), 0.0, 0.3), _eval_logits()) > 1e-2


def test_attention_without_dropout_is_flax_attention():
  query, key, value = jax.random.normal(jax.random.key(4), (3, 2, 5, 2, 4))
  mask = jnp.tril(jnp.ones((5, 5), bool))
  ours = jax.jit(functools.partial(transformer.attention_with_dropout,
                                   mask=mask, rate=0.5))
  flax_attention = jax.jit(functools.partial(nn.dot_product_attention,
                                             mask=mask))
  np.testing.assert_array_equal(ours(query, key, value),
                                flax_attention(query, key, value))


def test_attention_dropout_zeroes_weights_at_the_rate():
  """A traced rate 0.3 on uniform weights over 400 keys (the values are
  one-hot, so the output is the weights): about 0.3 of them are zero, the
  others scaled from 1/400 by 1 / 0.7."""
  num_keys = 400
  query, key = jnp.zeros((2, 1, num_keys, 1, 4))
  value = jnp.eye(num_keys).reshape(1, num_keys, 1, num_keys)
  weights = transformer.attention_with_dropout(
      query[:, :1], key, value, dropout_rng=jax.random.key(5),
      rate=jnp.float32(0.3))
  weights = np.asarray(weights).ravel()
  kept = weights[weights > 0]
  # Three standard deviations of the dropped fraction: 0.069.
  assert abs(1 - kept.size / num_keys - 0.3) < 0.07
  np.testing.assert_allclose(kept, 1 / (num_keys * 0.7), rtol=1e-5)


# ---- the dropout layer against flax's ----


def test_dropout_draws_flax_dropout_masks():
  """Bit for bit with a Python rate; a traced one keeps the same entries
  (its scale may differ in the last bit, see `_SAME`)."""
  x = jax.random.normal(jax.random.key(6), (4, 8, 16))
  rngs = {'dropout': jax.random.key(7)}

  def ours(rate):
    return transformer.Dropout().apply({}, x, rate, False, rngs=rngs)

  def flax_dropout(rate):
    return nn.Dropout(rate).apply({}, x, deterministic=False, rngs=rngs)

  for rate in (0.0, 0.25, 1.0):
    np.testing.assert_array_equal(ours(rate), flax_dropout(rate))
  traced, expected = jax.jit(ours)(0.25), flax_dropout(0.25)
  np.testing.assert_array_equal(traced == 0, expected == 0)
  np.testing.assert_allclose(traced, expected, rtol=1e-6)
