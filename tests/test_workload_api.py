"""The workload attributes and methods AlgoPerf's JAX submissions read.

`loss_fn` with a traced `label_smoothing`, `param_shapes`,
`model_params_types`, `step_hint`, `max_allowed_runtime_sec`,
`metrics_logger`, and `model_fn(..., dropout_rate=...)`, honoured by the
Transformer and refused by models without dropout.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workloads import base
from workloads import cifar_wrn
from workloads import registry
from workloads import wmt
from workloads.param_types import ParameterType as PT
from workloads.param_types import ParamTypeError
from workloads.param_types import ShapeTuple
from workloads.param_types import param_types

TRAIN = base.ForwardPassMode.TRAIN
EVAL = base.ForwardPassMode.EVAL


@functools.lru_cache(maxsize=None)
def _fmnist_fc():
  return registry.get('fmnist_fc')


@functools.lru_cache(maxsize=None)
def _wmt_tiny():
  return wmt.WmtTransformerPreLN.tiny()


@functools.lru_cache(maxsize=None)
def _wrn_nobn():
  return cifar_wrn.Cifar10WRNNoBN.tiny()


@functools.lru_cache(maxsize=None)
def _initial(workload):
  """Initial params and state, initialised under jit (fast on CPU)."""
  return jax.jit(workload.init_model_fn)(jax.random.key(0))


def _logits_and_labels():
  logits = jax.random.normal(jax.random.key(0), (8, 10))
  labels = jnp.arange(8) % 10
  return logits, labels


# ---- loss_fn and label smoothing ----


def test_label_smoothing_traced_equals_untraced_and_the_formula():
  workload = _fmnist_fc()
  logits, labels = _logits_and_labels()

  @jax.jit
  def summed(label_smoothing):
    return workload.loss_fn(label_batch=labels, logits_batch=logits,
                            mask_batch=None,
                            label_smoothing=label_smoothing)['summed']

  untraced = workload.loss_fn(labels, logits, label_smoothing=0.1)['summed']
  targets = 0.9 * jax.nn.one_hot(labels, 10) + 0.1 / 10
  expected = -jnp.sum(targets * jax.nn.log_softmax(logits))
  np.testing.assert_allclose(summed(0.1), untraced, rtol=1e-6)
  np.testing.assert_allclose(summed(0.1), expected, rtol=1e-6)
  plain = workload.loss_fn(labels, logits)['summed']
  np.testing.assert_allclose(summed(0.0), plain, rtol=1e-6)
  assert abs(float(summed(0.1)) - float(plain)) > 1e-3


def test_loss_fn_mask_counts_valid_examples():
  workload = _fmnist_fc()
  logits, labels = _logits_and_labels()
  mask = jnp.array([1.0] * 5 + [0.0] * 3)
  out = workload.loss_fn(labels, logits, mask, 0.2)
  assert float(out['n_valid_examples']) == 5.0
  assert float(out['per_example'][-1]) == 0.0
  np.testing.assert_allclose(out['summed'], out['per_example'][:5].sum(),
                             rtol=1e-6)


# ---- parameter types and shapes ----


def test_param_types_of_the_fc_network():
  types = _fmnist_fc().model_params_types
  assert set(types) == {f'Dense_{i}' for i in range(6)}
  for layer in types.values():
    assert layer == {'kernel': PT.WEIGHT, 'bias': PT.BIAS}


def test_param_types_of_the_cnn():
  types = registry.get('fmnist_cnn').model_params_types
  assert types['Conv_0'] == {'kernel': PT.CONV_WEIGHT, 'bias': PT.BIAS}
  assert types['Dense_0'] == {'kernel': PT.WEIGHT, 'bias': PT.BIAS}


def test_param_types_of_a_wide_resnet():
  types = cifar_wrn.Cifar100WRN.tiny().model_params_types
  block = types['group1_block0']
  assert block['bn1'] == {'scale': PT.BATCH_NORM_SCALE,
                          'bias': PT.BATCH_NORM_BIAS}
  assert block['conv1']['kernel'] == PT.CONV_WEIGHT
  # The 1x1 shortcut is a convolution although its name does not say so.
  assert block['proj']['kernel'] == PT.CONV_WEIGHT
  assert types['init_conv']['kernel'] == PT.CONV_WEIGHT
  assert types['final_bn']['scale'] == PT.BATCH_NORM_SCALE
  assert types['head'] == {'kernel': PT.WEIGHT, 'bias': PT.BIAS}
  unnormalised = _wrn_nobn().model_params_types
  assert unnormalised['group0_block0']['residual_scale']['scale'] == PT.WEIGHT


def test_param_types_of_the_transformer():
  types = _wmt_tiny().model_params_types
  attention = types['encoder_layers_0']['self_attention']
  assert {k: v['kernel'] for k, v in attention.items()} == {
      'query': PT.ATTENTION_Q, 'key': PT.ATTENTION_K,
      'value': PT.ATTENTION_V, 'out': PT.ATTENTION_OUT}
  assert types['embed']['embedding'] == PT.EMBEDDING
  assert types['encoder_norm'] == {'scale': PT.LAYER_NORM_SCALE,
                                   'bias': PT.LAYER_NORM_BIAS}
  assert types['decoder_layers_0']['cross']['norm']['bias'] == (
      PT.LAYER_NORM_BIAS)
  assert types['decoder_layers_0']['mlp']['Dense_0'] == {
      'kernel': PT.WEIGHT, 'bias': PT.BIAS}


def test_parameter_type_values_are_algoperfs():
  assert PT.WEIGHT.value == 0 and PT.CONV_WEIGHT.value == 2
  assert PT.EMBEDDING.value == 7 and PT.ATTENTION_BIAS.value == 14
  assert len(PT) == 15


def test_unknown_normalisation_parameter_is_refused():
  with pytest.raises(ParamTypeError, match='BatchNorm_0/mean'):
    param_types({'BatchNorm_0': {'mean': jnp.zeros(3)}})


def test_param_types_accepts_param_shapes():
  workload = _fmnist_fc()
  assert param_types(workload.param_shapes) == workload.model_params_types


def test_param_shapes_match_the_initial_params():
  workload = _wrn_nobn()
  params, _ = _initial(workload)
  shapes = workload.param_shapes
  assert (jax.tree.structure(shapes) == jax.tree.structure(params))
  matches = jax.tree.map(lambda s, p: s.shape_tuple == p.shape, shapes,
                         params)
  assert all(jax.tree.leaves(matches))
  # As AlgoPerf's baselines build their optimizer state from it.
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape_tuple), shapes)
  assert jax.tree.map(jnp.shape, zeros) == jax.tree.map(jnp.shape, params)


def test_shape_tuple_is_a_leaf_with_value_equality():
  assert ShapeTuple((2, 3)) == ShapeTuple((2, 3)) != ShapeTuple((3, 2))
  assert jax.tree.leaves({'a': ShapeTuple((2, 3))}) == [ShapeTuple((2, 3))]
  assert repr(ShapeTuple((2, 3))) == 'ShapeTuple((2, 3))'


# ---- budgets and logger ----


def test_step_hint_and_runtime_are_the_budgets():
  workload = _fmnist_fc()
  assert workload.step_hint == workload.step_budget == 300
  assert workload.max_allowed_runtime_sec == workload.runtime_budget_s == 21
  wrn = cifar_wrn.Cifar100WRN()
  assert (wrn.step_hint, wrn.max_allowed_runtime_sec) == (2500, 3 * 3600.0)


def test_metrics_logger_is_none_until_attached():
  workload = registry.get('fmnist_fc')
  assert workload.metrics_logger is None
  logger = object()
  workload.attach_metrics_logger(logger)
  assert workload.metrics_logger is logger
  assert registry.get('fmnist_fc').metrics_logger is None


# ---- dropout ----


def _fc_call(dropout_rate):
  workload = _fmnist_fc()
  params, state = _initial(workload)
  batch = {'inputs': jnp.ones((4, 28, 28, 1))}
  return workload.model_fn(params, batch, state, TRAIN, jax.random.key(1),
                           True, dropout_rate=dropout_rate)[0]


def test_dropout_refused_on_a_model_without_it():
  with pytest.raises(base.UnsupportedDropoutError,
                     match='fmnist_fc has no dropout'):
    _fc_call(0.1)
  np.testing.assert_array_equal(_fc_call(0.0), _fc_call(None))


def test_traced_dropout_on_a_model_without_it_is_never_ignored():
  _initial(_fmnist_fc())  # Outside jit, so the cache holds arrays.
  zero = jax.jit(_fc_call)(0.0)
  np.testing.assert_allclose(zero, _fc_call(None), rtol=1e-5, atol=1e-6)
  assert np.isnan(np.asarray(jax.jit(_fc_call)(0.1))).all()


def test_dropout_refused_on_a_wide_resnet():
  workload = _wrn_nobn()
  params, state = _initial(workload)
  with pytest.raises(base.UnsupportedDropoutError):
    workload.model_fn(params, {'inputs': jnp.ones((2, 32, 32, 3))}, state,
                      TRAIN, jax.random.key(1), True, dropout_rate=0.3)


def _wmt_logits(params, mode, dropout_rate):
  workload = _wmt_tiny()
  tokens = (jnp.arange(2 * 32).reshape(2, 32) % 60) + 1
  batch = {'inputs': tokens, 'targets': tokens}
  return workload.model_fn(params, batch, {}, mode, jax.random.key(1),
                           False, dropout_rate=dropout_rate)[0]


# A static (Python) rate here; traced rates: tests/test_wmt_dropout.py.
_wmt_jitted = jax.jit(_wmt_logits, static_argnums=(1, 2))


def _wmt_call(mode, dropout_rate):
  return _wmt_jitted(_initial(_wmt_tiny())[0], mode, dropout_rate)


def test_dropout_rate_honoured_by_the_transformer():
  no_dropout = _wmt_call(TRAIN, 0.0)
  np.testing.assert_allclose(no_dropout, _wmt_call(EVAL, None), rtol=1e-5,
                             atol=1e-5)
  with_dropout = _wmt_call(TRAIN, 0.5)
  assert np.abs(np.asarray(with_dropout - no_dropout)).max() > 1e-3
  # None keeps the configured rate (0.1), which is not zero.
  assert np.abs(np.asarray(_wmt_call(TRAIN, None) - no_dropout)).max() > 1e-4
  # Evaluation has no dropout whatever the rate.
  np.testing.assert_allclose(_wmt_call(EVAL, 0.5), _wmt_call(EVAL, None),
                             rtol=1e-5, atol=1e-5)


# ---- as an AlgoPerf train step uses them ----


def test_an_algoperf_style_jitted_step_with_traced_arguments():
  """Workload static, rng, label smoothing and dropout rate traced."""
  workload = _fmnist_fc()
  params, state = _initial(workload)
  batch = {'inputs': jax.random.normal(jax.random.key(2), (8, 28, 28, 1)),
           'targets': jnp.arange(8) % 10}

  @functools.partial(jax.jit, static_argnums=0)
  def step(workload, params, rng, label_smoothing, dropout_rate):
    def loss(p):
      logits, _ = workload.model_fn(p, batch, state, TRAIN, rng,
                                    update_batch_norm=True,
                                    dropout_rate=dropout_rate)
      out = workload.loss_fn(label_batch=batch['targets'],
                             logits_batch=logits,
                             mask_batch=batch.get('weights'),
                             label_smoothing=label_smoothing)
      return out['summed'] / out['n_valid_examples']
    return jax.value_and_grad(loss)(params)

  value, grad = step(workload, params, jax.random.key(1), 0.1, 0.0)
  assert np.isfinite(float(value))
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grad))
