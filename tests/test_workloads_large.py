"""Tests of the WRN, ResNet-50 and Transformer workloads at tiny sizes.

Data comes from `tfds.testing.mock_data` (random examples shaped like the
real ones), so nothing is downloaded. Each workload: init, a few Adam steps
through `loss_and_grad` under jit, and one curvature probe. Full-size
parameter counts are checked with `jax.eval_shape` (nothing allocated).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import types
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import curvature
from workloads import base
from workloads import cifar_wrn
from workloads import image_classification
from workloads import imagenet
from workloads import registry
from workloads import wmt
from workloads.data import in_memory
from workloads.data import sources
from workloads.data import wmt_pipeline
from workloads.models import transformer

tfds = pytest.importorskip('tensorflow_datasets')

TRAIN = base.ForwardPassMode.TRAIN
EVAL = base.ForwardPassMode.EVAL


@contextlib.contextmanager
def mocked_tfds(num_examples: int):
  # mock_data fakes the reading but not `is_prepared`, which we check first.
  with tfds.testing.mock_data(num_examples=num_examples,
                              policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared',
                        return_value=True):
    yield


@functools.lru_cache(maxsize=None)
def _compiled(workload: base.Workload) -> types.SimpleNamespace:
  """Jitted step, probe and losses of a workload, compiled once."""
  opt = optax.adam(1e-2)

  @jax.jit
  def step(params, state, opt_state, batch, rng):
    (loss, state), grads = workload.loss_and_grad(params, state, batch, rng)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, loss

  def probe_loss(params, chunk, model_state):
    return workload.curvature_loss(params, model_state, chunk)

  return types.SimpleNamespace(
      opt=opt, step=step,
      probe=curvature.make_sharpness_fn(probe_loss, num_iterations=8),
      chunk_loss=jax.jit(workload.chunk_loss,
                         static_argnames=('mode', 'update_batch_norm')),
      curvature_loss=jax.jit(workload.curvature_loss),
      eval_chunk=jax.jit(workload.eval_chunk))


def _train(workload: base.Workload, batches):
  """Adam on `batches`; returns params, model state and the losses."""
  fns = _compiled(workload)
  params, state = workload.init_model_fn(jax.random.key(0))
  opt_state, losses = fns.opt.init(params), []
  for i, batch in enumerate(batches):
    params, state, opt_state, loss = fns.step(params, state, opt_state, batch,
                                              jax.random.key(i))
    losses.append(float(loss))
  return params, state, losses


def _probe(workload, params, state, batch) -> curvature.SharpnessResult:
  return _compiled(workload).probe(params, batch, loss_args=(state,))


def _check_training_and_probe(workload, batch, steps: int = 5, extra=()):
  """Loss finite and decreasing on a repeated batch (then `extra` batches
  of the same shapes); the top eigenvalue finite and positive."""
  params, state, losses = _train(workload, [batch] * steps + list(extra))
  assert np.all(np.isfinite(losses)), losses
  assert losses[steps - 1] < losses[0], losses
  result = _probe(workload, params, state, batch)
  assert np.isfinite(float(result.eigenvalues[0]))
  assert float(result.eigenvalues[0]) > 0
  return params, state, result


# ---- Full-size parameter counts (shapes only) ----


@pytest.mark.parametrize('name, num_params, num_state', [
    ('cifar100_wrn', 36_536_884, 17_952),
    ('cifar10_wrn_nobn', 36_461_254, 0),
    ('cifar100_wrn_28_4', 5_872_180, 7_200),
    ('imagenet_resnet50', 25_557_032, 53_120),
    ('wmt_transformer_preln', 133_521_408, 0),
    ('wmt_transformer_postln', 133_517_312, 0),
])
def test_full_size_parameter_counts(name, num_params, num_state):
  workload = registry.get(name)
  params, state = jax.eval_shape(workload.init_model_fn, jax.random.key(0))
  assert base.count_params(params) == num_params
  assert base.count_params(state) == num_state


def test_new_workloads_registered_with_tiers():
  new = {'fmnist_fc_relu': base.Tier.SMOKE, 'cifar100_wrn': base.Tier.SMALL,
         'cifar10_wrn_nobn': base.Tier.SMALL,
         'cifar100_wrn_28_4': base.Tier.SMALL,
         'imagenet_resnet50': base.Tier.FULL,
         'imagenet_resnet50_b2048': base.Tier.FULL,
         'imagenet_resnet50_b4096': base.Tier.FULL,
         'imagenet_resnet50_b16384': base.Tier.FULL,
         'imagenet_resnet50_b65536': base.Tier.FULL,
         'wmt_transformer_preln': base.Tier.FULL,
         'wmt_transformer_postln': base.Tier.FULL,
         'wmt_de_en_transformer_preln': base.Tier.FULL,
         'wmt_de_en_transformer_postln': base.Tier.FULL}
  for name, tier in new.items():
    assert registry.get(name).tier == tier
  batches = {n: registry.get(f'imagenet_resnet50_b{n}').default_regime
             for n in (4096, 16384, 65536)}
  for n, regime in batches.items():
    assert regime.batch_size == n and regime.num_chunks == n // 128
  assert registry.get('wmt_de_en_transformer_preln').target_value == 30.8491
  assert registry.get('wmt_de_en_transformer_postln').target_value == 30.0779
  resnet = registry.get('imagenet_resnet50')
  assert (resnet.target_metric_name, resnet.target_value) == ('error',
                                                              0.22569)
  assert not resnet.target_higher_is_better


def test_fmnist_fc_relu_variant():
  workload = registry.get('fmnist_fc_relu')
  assert isinstance(workload, image_classification.FashionMnistFCReLU)
  assert workload.build_model().activation is nn.relu
  assert registry.get('fmnist_fc').build_model().activation is nn.tanh


# ---- Wide ResNets on mocked CIFAR ----


@pytest.fixture(scope='module')
def wrn(tmp_path_factory):
  """name -> (tiny workload, minibatch dataset, full-batch dataset)."""
  out = {}
  load = functools.partial(sources.load_tfds, validation_size=8)
  with pytest.MonkeyPatch.context() as patch, mocked_tfds(24):
    patch.setattr(sources, 'load_tfds', load)
    for cls in (cifar_wrn.Cifar100WRN, cifar_wrn.Cifar10WRNNoBN):
      data_dir = str(tmp_path_factory.mktemp(cls.name))
      workload = cls.tiny(base.DataConfig(data_dir=data_dir), train_size=16)
      full = base.BatchRegime(full_batch=True, train_size=8, batch_size=8,
                              chunk_size=4)
      out[cls.name] = (workload, workload.dataset(workload.default_regime),
                       workload.dataset(full))
  return out


@pytest.mark.parametrize('name', ['cifar100_wrn', 'cifar10_wrn_nobn'])
def test_wrn_trains_and_probes(wrn, name):
  workload, mini, full = wrn[name]
  assert mini.augment is in_memory.cifar_augment
  assert full.augment is None
  regime = workload.default_regime
  minibatch = next(mini.train_batches(regime, seed=0))
  assert minibatch['inputs'].shape == (2, 4, 32, 32, 3)
  full_batch = full.fixed_batch(8, 4)
  minibatches = itertools.islice(mini.train_batches(regime, seed=0), 2)
  _check_training_and_probe(workload, full_batch, extra=minibatches)


def test_wrn_without_batch_norm_has_residual_scalars(wrn):
  workload, _, _ = wrn['cifar10_wrn_nobn']
  params, state = workload.init_model_fn(jax.random.key(0))
  assert state == {}
  scales = [v['residual_scale']['scale'] for k, v in params.items()
            if 'residual_scale' in v]
  assert len(scales) == 3 * workload.blocks_per_group
  assert all(s.shape == () and float(s) == 1.0 for s in scales)


def test_wrn_curvature_loss_uses_batch_statistics_without_update(wrn):
  """The probe's loss is the train-mode loss (batch statistics of the
  chunk) and leaves the running averages alone."""
  workload, _, full = wrn['cifar100_wrn']
  params, state = workload.init_model_fn(jax.random.key(0))
  batch = full.fixed_batch(8, 4)
  chunk = {k: v[0] for k, v in batch.items()}
  chunk_loss = _compiled(workload).chunk_loss
  curvature_loss = _compiled(workload).curvature_loss
  probe_loss = curvature_loss(params, state, chunk)
  _, probe_state = chunk_loss(
      params, state, chunk, None, mode=TRAIN, update_batch_norm=False)
  train_loss, train_state = chunk_loss(
      params, state, chunk, None, mode=TRAIN, update_batch_norm=True)
  eval_loss, _ = chunk_loss(params, state, chunk, None, mode=EVAL,
                            update_batch_norm=False)
  assert float(probe_loss) == float(train_loss)
  assert float(probe_loss) != pytest.approx(float(eval_loss), rel=1e-3)
  jax.tree.map(np.testing.assert_array_equal, probe_state, state)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), train_state, state)
  assert any(jax.tree.leaves(changed))
  # The probe's batch loss is the mean of the chunks' train-mode losses.
  result = _probe(workload, params, state, batch)
  chunk_losses = [curvature_loss(params, state,
                                 {k: v[i] for k, v in batch.items()})
                  for i in range(2)]
  assert float(result.loss) == pytest.approx(float(np.mean(chunk_losses)),
                                             rel=1e-5)


# ---- ResNet-50 on mocked ImageNet ----


@pytest.fixture(scope='module')
def resnet(tmp_path_factory):
  workload = imagenet.ImagenetResNet50.tiny(
      base.DataConfig(data_dir=str(tmp_path_factory.mktemp('imagenet'))))
  regime = workload.default_regime
  with mocked_tfds(16):
    dataset = workload.dataset(regime)
    first = list(itertools.islice(dataset.train_batches(regime, seed=0), 2))
    again = next(dataset.train_batches(regime, seed=0))
    data = {'train': first, 'again': again,
            'fixed': dataset.fixed_batch(8, 4),
            'eval_train': dataset.eval_arrays('train', 4),
            'validation': dataset.eval_arrays('validation', 3)}
  return workload, data


def test_imagenet_batches(resnet):
  _, data = resnet
  batch = data['train'][0]
  assert batch['inputs'].shape == (2, 4, 32, 32, 3)
  assert batch['inputs'].dtype == np.uint8
  assert batch['targets'].dtype == np.int32
  assert np.all((batch['targets'] >= 0) & (batch['targets'] < 1000))
  assert not np.array_equal(batch['inputs'], data['train'][1]['inputs'])
  np.testing.assert_array_equal(batch['inputs'], data['again']['inputs'])
  # The curvature batch is the first training images, eval-preprocessed.
  fixed = data['fixed']['inputs'].reshape(8, 32, 32, 3)
  np.testing.assert_array_equal(
      fixed, data['eval_train']['inputs'].reshape(-1, 32, 32, 3)[:8])
  validation = data['validation']
  assert validation['inputs'].shape == (6, 3, 32, 32, 3)  # 16 padded to 18.
  assert validation['weights'].sum() == 16
  assert validation['weights'].reshape(-1)[16:].sum() == 0


def test_imagenet_trains_and_probes(resnet):
  workload, data = resnet
  _check_training_and_probe(workload, data['fixed'])


def _check_full_batch_refused_and_missing_data_named(
    workload: base.Workload, chunk_size: int, parts: tuple[str, ...]) -> None:
  """Full batch is refused; missing data raises naming every `parts`."""
  full = base.BatchRegime(full_batch=True, train_size=1024, batch_size=1024,
                         chunk_size=chunk_size)
  with pytest.raises(ValueError, match='full-batch'):
    workload.dataset(full)
  with pytest.raises(sources.DataNotFoundError) as info:
    workload.dataset(workload.default_regime)
  for part in parts:
    assert part in str(info.value)


def test_imagenet_full_batch_and_missing_data(tmp_path):
  workload = imagenet.ImagenetResNet50(base.DataConfig(data_dir=str(tmp_path)))
  _check_full_batch_refused_and_missing_data_named(
      workload, 128, ('imagenet2012', 'downloads/manual',
                      'ILSVRC2012_img_train.tar', 'tfds build imagenet2012',
                      str(tmp_path)))


# ---- Transformers on mocked WMT ----


@pytest.fixture(scope='module')
def translation(tmp_path_factory):
  """name -> (tiny workload, dataset, materialised batches)."""
  data_dir = str(tmp_path_factory.mktemp('wmt'))
  out = {}
  with mocked_tfds(24):
    for cls in (wmt.WmtTransformerPreLN, wmt.WmtTransformerPostLN,
                wmt.WmtDeEnTransformerPreLN):
      workload = cls.tiny(base.DataConfig(data_dir=data_dir))
      dataset = workload.dataset(workload.default_regime)
      data = {
          'train': next(dataset.train_batches(workload.default_regime, 0)),
          'fixed': dataset.fixed_batch(4, 2),
          'validation': dataset.eval_arrays('validation', 4),
          'references': dataset.references('validation')}
      for split in dataset.eval_splits:
        dataset.references(split)  # Cached, for BLEU after the mock ends.
      out[cls.name] = (workload, dataset, data)
  return out


def test_wmt_batches_are_packed_and_masked(translation):
  workload, dataset, data = translation['wmt_transformer_preln']
  batch = data['train']
  assert batch['inputs'].shape == (2, 2, 32)
  for key in ('inputs', 'targets'):
    segments, positions = (batch[f'{key}_segmentation'],
                           batch[f'{key}_position'])
    np.testing.assert_array_equal(segments > 0, batch[key] > 0)
    starts = (positions == 0) & (segments > 0)
    assert np.all(segments.max(-1) == starts.sum(-1))
  np.testing.assert_array_equal(batch['weights'], batch['targets'] > 0)
  assert batch['weights'].dtype == np.float32
  assert int(batch['inputs_segmentation'].max()) >= 2  # Really packed.
  validation = data['validation']
  np.testing.assert_array_equal(validation['weights'],
                                validation['targets'] > 0)
  assert len(data['references']) == 24
  assert dataset.tokenizer.vocab_size <= workload.num_classes


def test_wmt_direction_is_a_property(translation):
  en_de = translation['wmt_transformer_preln']
  de_en = translation['wmt_de_en_transformer_preln']
  assert en_de[0].pipeline_config.source_language == 'en'
  assert de_en[0].pipeline_config.source_language == 'de'
  assert en_de[2]['references'] != de_en[2]['references']
  # One shared tokenizer file, trained once for both directions.
  assert en_de[1].tokenizer.path == de_en[1].tokenizer.path


@pytest.mark.parametrize('name', ['wmt_transformer_preln',
                                  'wmt_transformer_postln'])
def test_wmt_trains_probes_and_evaluates(translation, name):
  workload, dataset, data = translation[name]
  params, state, _ = _check_training_and_probe(workload, data['fixed'])
  totals = {}
  for i in range(len(data['validation']['inputs'])):
    chunk = {k: v[i] for k, v in data['validation'].items()}
    out = jax.device_get(_compiled(workload).eval_chunk(params, state, chunk))
    totals = {k: totals.get(k, 0.0) + float(v) for k, v in out.items()}
  metrics = workload.finalize_eval(totals)
  assert totals['count'] == data['validation']['weights'].sum()
  assert np.isfinite(metrics['loss']) and 0 <= metrics['accuracy'] <= 1
  bleu = workload.extra_eval_metrics(params, state, dataset, 'validation')
  assert 0.0 <= bleu['bleu'] <= 100.0


def _rows(*rows):
  """Pairs packed into rows of 32 tokens, zero rows up to two rows."""
  out = [next(wmt_pipeline.pack_rows(
      [(np.array(s, np.int32), np.array(t, np.int32)) for s, t in pairs],
      32)) for pairs in rows]
  out += [{k: np.zeros_like(v) for k, v in out[0].items()}] * (2 - len(out))
  return {k: np.stack([r[k] for r in out]) for k in out[0]}


def test_pack_rows():
  rows = list(wmt_pipeline.pack_rows(
      [(np.array([5, 6, 1]), np.array([7, 1])),
       (np.array([8, 1]), np.array([9, 9, 1])),
       (np.array([4] * 5 + [1]), np.array([1]))], max_len=6))
  assert len(rows) == 2
  np.testing.assert_array_equal(rows[0]['inputs'], [5, 6, 1, 8, 1, 0])
  np.testing.assert_array_equal(rows[0]['inputs_segmentation'],
                                [1, 1, 1, 2, 2, 0])
  np.testing.assert_array_equal(rows[0]['targets_position'],
                                [0, 1, 0, 1, 2, 0])
  np.testing.assert_array_equal(rows[0]['weights'], [1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(rows[1]['inputs'], [4] * 5 + [1])


def test_wmt_loss_masks_padding_and_packing_is_exact(translation):
  """The loss is the mean over non-padding target tokens, and a packed row
  gives the same loss as its pairs in separate rows."""
  workload = translation['wmt_transformer_preln'][0]
  params, state = workload.init_model_fn(jax.random.key(1))
  first, second = ([5, 6, 7, 1], [8, 9, 1]), ([10, 11, 1], [12, 13, 14, 15, 1])
  loss = functools.partial(_compiled(workload).chunk_loss, params, state,
                           rng=None, mode=TRAIN, update_batch_norm=False)
  apart = float(loss(_rows([first], [second]))[0])
  packed = float(loss(_rows([first, second]))[0])
  alone = [float(loss(_rows([pair]))[0]) for pair in (first, second)]
  tokens = [len(first[1]), len(second[1])]
  assert apart == pytest.approx(np.dot(alone, tokens) / sum(tokens),
                                rel=1e-5)
  assert packed == pytest.approx(apart, rel=1e-5)


def test_wmt_dropout_only_with_rng(translation):
  workload, _, data = translation['wmt_transformer_preln']
  params, state = workload.init_model_fn(jax.random.key(0))
  chunk = {k: v[0] for k, v in data['fixed'].items()}
  loss = functools.partial(_compiled(workload).chunk_loss, params, state,
                           chunk, mode=TRAIN, update_batch_norm=False)
  assert float(loss(None)[0]) == float(loss(None)[0])
  assert float(loss(jax.random.key(3))[0]) != float(loss(None)[0])


def test_greedy_decode_matches_teacher_forcing(translation):
  workload = translation['wmt_transformer_preln'][0]
  params, _ = workload.init_model_fn(jax.random.key(2))
  params = jax.tree.map(lambda p: p * 3.0, params)  # Less uniform outputs.
  inputs = jnp.array([[5, 6, 7, 8, 1, 0], [9, 10, 1, 0, 0, 0]], jnp.int32)
  decode = jax.jit(functools.partial(transformer.greedy_decode,
                                     workload.model, eos_id=1, max_len=6))
  tokens = decode(params, inputs)
  logits = jax.jit(workload.model.apply)({'params': params}, inputs, tokens)
  forced = np.asarray(jnp.argmax(logits, -1))
  tokens = np.asarray(tokens)
  for row, forced_row in zip(tokens, forced):
    end = list(row).index(1) + 1 if 1 in row else len(row)
    np.testing.assert_array_equal(row[:end], forced_row[:end])


def test_learning_rate_schedule():
  workload = registry.get('wmt_transformer_preln')
  assert workload.warmup_steps == 40_000
  schedule = workload.learning_rate_schedule(1e-3)
  values = [float(schedule(s)) for s in (0, 20_000, 40_000, 160_000)]
  np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4], rtol=1e-6)


def test_wmt_full_batch_and_missing_data(tmp_path):
  workload = wmt.WmtTransformerPreLN(base.DataConfig(data_dir=str(tmp_path)))
  _check_full_batch_refused_and_missing_data_named(
      workload, 64, ('tfds build wmt17_translate/de-en',
                     'tfds build wmt14_translate/de-en', str(tmp_path)))


# ---- Every variant, tiny (slow) ----


@pytest.mark.slow
@pytest.mark.parametrize('name', ['cifar100_wrn_28_4',
                                  'wmt_de_en_transformer_postln'])
def test_variants_train_and_probe(tmp_path, name):
  cls = registry.WORKLOADS[name]
  with mocked_tfds(24), pytest.MonkeyPatch.context() as patch:
    patch.setattr(sources, 'load_tfds', functools.partial(
        sources.load_tfds, validation_size=8))
    workload = cls.tiny(base.DataConfig(data_dir=str(tmp_path)))
    batch = workload.dataset(workload.default_regime).fixed_batch(4, 2)
  _check_training_and_probe(workload, batch)
