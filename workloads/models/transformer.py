"""An encoder-decoder Transformer for translation, Pre-LN or Post-LN.

The model of AlgoPerf's WMT workload (itself the Flax WMT example): a shared
source/target embedding that is also the output layer (logits divided by
sqrt(d_model)), fixed sinusoidal positions, N encoder and N decoder layers,
attention without biases, ReLU MLP, dropout on embeddings, attention
weights, MLP hidden units and every residual branch (a call may replace
the configured rates, by Python numbers or traced scalars, so one compiled
function serves every rate). `pre_ln` puts the LayerNorm before each
sublayer (plus a final LayerNorm on each side, as Xiong et al. 2020),
otherwise after the residual sum (Vaswani et al. 2017).

Sizes (`TransformerConfig` defaults, AlgoPerf's): d_model 1024, 16 heads,
qkv 1024, MLP 1024, 6 + 6 layers, vocabulary 32,000, length 256. AlgoPerf's
MLP is 1024 wide, not the 4096 of Transformer-big; we keep AlgoPerf's so its
BLEU targets apply. Parameter count (`jax.eval_shape`; checked in
tests/test_workloads_large.py): 133,521,408 Pre-LN, 133,517,312 Post-LN
(Pre-LN has two more LayerNorms).

Packed training rows are supported: `*_segmentation` (1, 2, ... per packed
sentence, 0 on padding) restricts attention to the same sentence and
`*_position` restarts positions at each sentence. Token id 0 is padding.

References:
  A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
  R. Xiong et al., "On Layer Normalization in the Transformer Architecture",
  ICML 2020.
  AlgoPerf, `algoperf/workloads/wmt/wmt_jax/models.py`
  (github.com/mlcommons/algorithmic-efficiency); Flax `examples/wmt`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
from flax.linen import dtypes as flax_dtypes
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
# A dropout rate: a Python number, or a scalar array that may be traced.
Rate = float | Array


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Hyperparameters of the encoder-decoder.

  Attributes:
    vocab_size: shared vocabulary (id 0 is padding).
    emb_dim: model width d_model.
    num_heads: attention heads.
    num_layers: layers on each side.
    qkv_dim: total width of queries, keys and values.
    mlp_dim: hidden width of the feed-forward blocks.
    max_len: longest sequence (positions table, decoding length).
    dropout_rate: on embeddings, MLP hidden units and residual branches.
    attention_dropout_rate: on attention weights.
    pre_ln: LayerNorm before (True) or after (False) each sublayer.
  """

  vocab_size: int = 32_000
  emb_dim: int = 1024
  num_heads: int = 16
  num_layers: int = 6
  qkv_dim: int = 1024
  mlp_dim: int = 1024
  max_len: int = 256
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  pre_ln: bool = True


def sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
  """`(max_len, dim)` sines in the first half, cosines in the second."""
  position = np.arange(max_len)[:, None]
  scale = -np.log(10_000.0) / max(dim // 2 - 1, 1)
  div = np.exp(np.arange(dim // 2) * scale)
  table = np.zeros((max_len, dim), np.float32)
  table[:, :dim // 2] = np.sin(position * div)
  table[:, dim // 2:2 * (dim // 2)] = np.cos(position * div)
  return table


class AddPositions(nn.Module):
  """Adds fixed sinusoidal positions; one position per call when decoding."""

  max_len: int
  decode: bool = False

  @nn.compact
  def __call__(self, x: Array, positions: Array | None = None) -> Array:
    table = jnp.asarray(sinusoidal_table(self.max_len, x.shape[-1]))
    if self.decode:
      index = self.variable('cache', 'cache_index',
                            lambda: jnp.array(0, jnp.int32))
      if not self.is_initializing():
        i = index.value
        index.value = i + 1
        return x + jax.lax.dynamic_slice_in_dim(table, i, 1)[None]
    if positions is None:
      return x + table[None, :x.shape[1]]
    return x + jnp.take(table, positions, axis=0)


class DropoutRates(NamedTuple):
  """The rates a forward pass uses; either may be traced.

  Attributes:
    hidden: on embeddings, MLP hidden units and residual branches.
    attention: on attention weights.
  """

  hidden: Rate
  attention: Rate

  @classmethod
  def of(cls, config: TransformerConfig, hidden: Rate | None = None,
         attention: Rate | None = None) -> DropoutRates:
    """The configured rates, each replaced by its override when given."""
    return cls(config.dropout_rate if hidden is None else hidden,
               config.attention_dropout_rate if attention is None
               else attention)


def _known_zero(rate: Rate) -> bool:
  # Only a rate known in Python can skip the mask; a traced 0 keeps
  # everything through the same mask arithmetic.
  return not isinstance(rate, jax.core.Tracer) and rate == 0


def drop(rng: Array, rate: Rate, x: Array) -> Array:
  """Zeroes each entry of `x` with probability `rate`, scaling the kept
  ones by `1 / (1 - rate)`: the arithmetic of flax's `nn.Dropout`, so a
  Python rate gives its results bit for bit.

  Args:
    rng: the key of the mask.
    rate: in [0, 1); a traced rate is not checked (1 gives zeros with NaN
      gradients, a negative one shrinks `x`).
    x: the array to drop from.

  Returns:
    An array of `x`'s shape and dtype.
  """
  keep_prob = 1.0 - rate
  keep = jax.random.bernoulli(rng, p=keep_prob, shape=x.shape)
  return jax.lax.select(keep, x / jnp.asarray(keep_prob, x.dtype),
                        jnp.zeros_like(x))


class Dropout(nn.Module):
  """Flax's `nn.Dropout` with the rate given at call time, where it may be
  a traced scalar (flax tests its rate with a Python `if`).

  It draws from the same 'dropout' rng stream, and keeps flax's name
  (auto-named `Dropout_0`, ...), so a Python rate drops exactly what
  `nn.Dropout` would.
  """

  @nn.compact
  def __call__(self, x: Array, rate: Rate, deterministic: bool) -> Array:
    if deterministic or _known_zero(rate):
      return x
    if not isinstance(rate, jax.core.Tracer) and rate == 1:
      return jnp.zeros_like(x)  # As flax: no 0/0 in the gradient.
    return drop(self.make_rng('dropout'), rate, x)


def attention_with_dropout(query: Array, key: Array, value: Array,
                           mask: Array | None = None,
                           dropout_rng: Array | None = None,
                           dtype=None, precision=None,
                           force_fp32_for_softmax: bool = False, *,
                           rate: Rate) -> Array:
  """`nn.dot_product_attention` (same arguments and result) with
  attention-weight dropout at a `rate` that may be traced; an
  `attention_fn` for `nn.MultiHeadDotProductAttention`.

  Each weight (no mask shared across batch or heads) is dropped as `drop`
  does when `dropout_rng` is given, and none without it. The attention
  module hands the `dropout_rng` of its call through; its own
  `dropout_rate` stays 0, so it never tests the rate in Python.
  """
  query, key, value = flax_dtypes.promote_dtype(query, key, value,
                                                dtype=dtype)
  weights = nn.dot_product_attention_weights(
      query, key, mask=mask, deterministic=True, dtype=query.dtype,
      precision=precision, force_fp32_for_softmax=force_fp32_for_softmax)
  if dropout_rng is not None:
    weights = drop(dropout_rng, rate, weights)
  return jnp.einsum('...hqk,...khd->...qhd', weights, value,
                    precision=precision)


class MlpBlock(nn.Module):
  """Dense → ReLU → dropout → Dense."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool,
               rates: DropoutRates) -> Array:
    cfg = self.config
    dense = functools.partial(
        nn.Dense, kernel_init=nn.initializers.xavier_uniform(),
        bias_init=nn.initializers.normal(stddev=1e-6))
    y = nn.relu(dense(cfg.mlp_dim)(x))
    y = Dropout()(y, rates.hidden, deterministic)
    return dense(x.shape[-1])(y)


class Sublayer(nn.Module):
  """A residual sublayer with Pre- or Post-LN around `body`.

  Pre-LN: x + dropout(body(LN(x))). Post-LN: LN(x + dropout(body(x))).
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, body, x: Array, deterministic: bool,
               rates: DropoutRates) -> Array:
    pre_ln = self.config.pre_ln
    y = body(nn.LayerNorm(name='norm')(x) if pre_ln else x)
    y = Dropout()(y, rates.hidden, deterministic)
    return x + y if pre_ln else nn.LayerNorm(name='norm')(x + y)


def _attention(cfg: TransformerConfig, rate: Rate, name: str,
               decode: bool = False) -> nn.Module:
  return nn.MultiHeadDotProductAttention(
      num_heads=cfg.num_heads, qkv_features=cfg.qkv_dim, use_bias=False,
      kernel_init=nn.initializers.xavier_uniform(),
      attention_fn=functools.partial(attention_with_dropout, rate=rate),
      decode=decode, name=name)


def _attention_rng(layer: nn.Module, deterministic: bool,
                   rate: Rate) -> Array | None:
  """A 'dropout' key of `layer` for one attention's weights, or None when
  no weight is dropped."""
  if deterministic or _known_zero(rate):
    return None
  return layer.make_rng('dropout')


class EncoderLayer(nn.Module):
  """Self-attention then MLP."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool,
               rates: DropoutRates) -> Array:
    cfg = self.config
    attend = _attention(cfg, rates.attention, 'self_attention')
    rng = _attention_rng(self, deterministic, rates.attention)
    x = Sublayer(cfg, name='attention')(
        lambda y: attend(y, mask=mask, dropout_rng=rng), x, deterministic,
        rates)
    mlp = MlpBlock(cfg, name='mlp')
    return Sublayer(cfg, name='feed_forward')(
        lambda y: mlp(y, deterministic, rates), x, deterministic, rates)


class DecoderLayer(nn.Module):
  """Causal self-attention, attention to the encoding, then MLP."""

  config: TransformerConfig
  decode: bool = False

  @nn.compact
  def __call__(self, x: Array, encoded: Array, self_mask: Array | None,
               cross_mask: Array, deterministic: bool,
               rates: DropoutRates) -> Array:
    cfg = self.config
    self_attend = _attention(cfg, rates.attention, 'self_attention',
                             self.decode)
    cross_attend = _attention(cfg, rates.attention, 'cross_attention')
    self_rng = _attention_rng(self, deterministic, rates.attention)
    cross_rng = _attention_rng(self, deterministic, rates.attention)
    x = Sublayer(cfg, name='attention')(
        lambda y: self_attend(y, mask=self_mask, dropout_rng=self_rng), x,
        deterministic, rates)
    x = Sublayer(cfg, name='cross')(
        lambda y: cross_attend(y, encoded, mask=cross_mask,
                               dropout_rng=cross_rng), x, deterministic,
        rates)
    mlp = MlpBlock(cfg, name='mlp')
    return Sublayer(cfg, name='feed_forward')(
        lambda y: mlp(y, deterministic, rates), x, deterministic, rates)


def _segment_mask(query_segments: Array | None, key_segments: Array | None,
                  mask: Array | None) -> Array | None:
  if query_segments is None:
    return mask
  return nn.combine_masks(
      mask, nn.make_attention_mask(query_segments, key_segments, jnp.equal))


class Transformer(nn.Module):
  """The encoder-decoder; `__call__` gives logits `(B, L_target, vocab)`.

  Attributes:
    config: sizes and options.
    decode: one-token-at-a-time decoding with a key/value cache (see
      `greedy_decode`); training and evaluation use False.
  """

  config: TransformerConfig
  decode: bool = False

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(cfg.vocab_size, cfg.emb_dim,
                          embedding_init=nn.initializers.normal(stddev=1.0))
    self.encoder_positions = AddPositions(cfg.max_len)
    self.decoder_positions = AddPositions(cfg.max_len, self.decode)
    self.encoder_layers = [EncoderLayer(cfg) for _ in range(cfg.num_layers)]
    self.decoder_layers = [DecoderLayer(cfg, self.decode)
                           for _ in range(cfg.num_layers)]
    self.dropout = Dropout()
    if cfg.pre_ln:
      self.encoder_norm = nn.LayerNorm()
      self.decoder_norm = nn.LayerNorm()

  def encode(self, inputs: Array, *, inputs_positions: Array | None = None,
             inputs_segmentation: Array | None = None,
             deterministic: bool = True, dropout_rate: Rate | None = None,
             attention_dropout_rate: Rate | None = None) -> Array:
    """Encodes token ids `(B, L)` into `(B, L, emb_dim)`.

    The dropout arguments are those of `__call__`.
    """
    rates = DropoutRates.of(self.config, dropout_rate, attention_dropout_rate)
    mask = _segment_mask(inputs_segmentation, inputs_segmentation,
                         nn.make_attention_mask(inputs > 0, inputs > 0))
    x = self.encoder_positions(self.embed(inputs.astype(jnp.int32)),
                               inputs_positions)
    x = self.dropout(x, rates.hidden, deterministic)
    for layer in self.encoder_layers:
      x = layer(x, mask, deterministic, rates)
    return self.encoder_norm(x) if self.config.pre_ln else x

  def decode_logits(self, encoded: Array, inputs: Array, targets: Array, *,
                    targets_positions: Array | None = None,
                    inputs_segmentation: Array | None = None,
                    targets_segmentation: Array | None = None,
                    deterministic: bool = True,
                    dropout_rate: Rate | None = None,
                    attention_dropout_rate: Rate | None = None) -> Array:
    """Logits of each next target token given the previous ones.

    In training mode `targets` are the whole target rows (shifted right
    here); in decode mode one token `(B, 1)`, the last one emitted. The
    dropout arguments are those of `__call__`.
    """
    rates = DropoutRates.of(self.config, dropout_rate, attention_dropout_rate)
    if self.decode:
      self_mask = None  # The cache masks the future itself.
      cross_mask = nn.make_attention_mask(jnp.ones_like(targets) > 0,
                                          inputs > 0)
      y = targets
    else:
      self_mask = _segment_mask(
          targets_segmentation, targets_segmentation,
          nn.combine_masks(nn.make_attention_mask(targets > 0, targets > 0),
                           nn.make_causal_mask(targets)))
      cross_mask = _segment_mask(targets_segmentation, inputs_segmentation,
                                 nn.make_attention_mask(targets > 0,
                                                        inputs > 0))
      y = shift_right(targets, targets_segmentation)
    y = self.decoder_positions(self.embed(y.astype(jnp.int32)),
                               targets_positions)
    y = self.dropout(y, rates.hidden, deterministic)
    for layer in self.decoder_layers:
      y = layer(y, encoded, self_mask, cross_mask, deterministic, rates)
    if self.config.pre_ln:
      y = self.decoder_norm(y)
    return self.embed.attend(y) / jnp.sqrt(jnp.float32(y.shape[-1]))

  def __call__(self, inputs: Array, targets: Array, *,
               inputs_positions: Array | None = None,
               targets_positions: Array | None = None,
               inputs_segmentation: Array | None = None,
               targets_segmentation: Array | None = None,
               deterministic: bool = True, dropout_rate: Rate | None = None,
               attention_dropout_rate: Rate | None = None) -> Array:
    """Logits `(B, L_target, vocab)` of token ids `(B, L)`.

    Args:
      inputs: source token ids, 0-padded.
      targets: target token ids, 0-padded.
      inputs_positions: positions of packed source rows.
      targets_positions: positions of packed target rows.
      inputs_segmentation: sentence numbers of packed source rows.
      targets_segmentation: sentence numbers of packed target rows.
      deterministic: no dropout; otherwise `apply` needs a 'dropout' rng.
      dropout_rate: replaces the configured `dropout_rate` (embeddings, MLP
        hidden units, residual branches) when given; a Python number or a
        scalar array, traced or not, in [0, 1) (a traced one is not
        checked, see `drop`).
      attention_dropout_rate: likewise for `attention_dropout_rate`.
    """
    rate_overrides = dict(dropout_rate=dropout_rate,
                          attention_dropout_rate=attention_dropout_rate)
    encoded = self.encode(inputs, inputs_positions=inputs_positions,
                          inputs_segmentation=inputs_segmentation,
                          deterministic=deterministic, **rate_overrides)
    return self.decode_logits(
        encoded, inputs, targets, targets_positions=targets_positions,
        inputs_segmentation=inputs_segmentation,
        targets_segmentation=targets_segmentation,
        deterministic=deterministic, **rate_overrides)


def shift_right(targets: Array, segmentation: Array | None = None) -> Array:
  """Decoder inputs: a 0 (start) token, then the targets but the last.

  With packing, the first token of every packed sentence becomes 0 too.
  """
  shifted = jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]
  if segmentation is None:
    return shifted
  previous = jnp.pad(segmentation, ((0, 0), (1, 0)))[:, :-1]
  return jnp.where(segmentation == previous, shifted, 0)


def greedy_decode(model: Transformer, params, inputs: Array, *,
                  eos_id: int, max_len: int | None = None) -> Array:
  """Greedy translations of `inputs` `(B, L)`, with a key/value cache.

  Stops early once every row has emitted `eos_id`. Jit-compatible.

  Args:
    model: the (training-mode, `decode=False`) Transformer.
    params: its parameters.
    inputs: source token ids, 0-padded.
    eos_id: the end-of-sentence id.
    max_len: tokens to decode; the model's `max_len` by default.

  Returns:
    int32 `(B, max_len)`: the emitted ids, 0 after each row's EOS.
  """
  max_len = max_len or model.config.max_len
  batch = inputs.shape[0]
  decoder = model.clone(decode=True)
  encoded = model.apply({'params': params}, inputs, method=Transformer.encode)
  cache_shapes = jax.eval_shape(
      lambda: decoder.init(jax.random.key(0), inputs,
                           jnp.zeros((batch, max_len), jnp.int32)))['cache']
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

  def step(state):
    i, cache, tokens, previous, done = state
    logits, new_vars = decoder.apply(
        {'params': params, 'cache': cache}, encoded, inputs, previous,
        mutable=['cache'], method=Transformer.decode_logits)
    token = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
    token = jnp.where(done, 0, token)
    tokens = tokens.at[:, i].set(token)
    return (i + 1, new_vars['cache'], tokens, token[:, None],
            done | (token == eos_id))

  def keep_going(state):
    i, _, _, _, done = state
    return (i < max_len) & ~jnp.all(done)

  init = (jnp.array(0, jnp.int32), cache,
          jnp.zeros((batch, max_len), jnp.int32),
          jnp.zeros((batch, 1), jnp.int32), jnp.zeros((batch,), bool))
  return jax.lax.while_loop(keep_going, step, init)[2]
