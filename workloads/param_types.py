"""What each model parameter is, as AlgoPerf's `spec.ParameterType` says.

AlgoPerf hands submissions a tree of parameter types beside the parameters
(`current_params_types`) so that an update rule can treat kinds differently,
e.g. exempt biases and normalisation scales from weight decay. The members
and their values are AlgoPerf's, so a submission that compares against
`spec.ParameterType.BIAS` works with these.

`param_types(params)` infers the kinds from Flax's parameter paths, as
AlgoPerf's JAX workloads do (the module names `BatchNorm_*`, `LayerNorm_*`,
`Conv_*`, `Embed`, `query`/`key`/`value`/`out` of attention), with two
additions for names that do not say what they are: a kernel of three or
more dimensions outside attention is a convolution (e.g. a 1x1 projection
named `proj`), and a module named `norm` (or ending in `_norm`) is a layer
norm. A name inside a normalisation layer that is neither `scale` nor
`bias` is refused: guessing would hand submissions a wrong mask silently.

`ShapeTuple` is AlgoPerf's leaf for parameter shapes: a tuple wrapped so
that tree utilities stop at it rather than walk into the ints.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Sequence

import jax


class ParameterType(enum.Enum):
  """The kinds of parameter; members and values as AlgoPerf's."""

  WEIGHT = 0
  BIAS = 1
  CONV_WEIGHT = 2
  BATCH_NORM_SCALE = 3
  BATCH_NORM_BIAS = 4
  LAYER_NORM_SCALE = 5
  LAYER_NORM_BIAS = 6
  EMBEDDING = 7
  ATTENTION_Q = 8
  ATTENTION_K = 9
  ATTENTION_V = 10
  ATTENTION_OUT = 11
  ATTENTION_QKV = 12  # Fused query, key and value projections.
  ATTENTION_KV = 13  # Fused key and value projections.
  ATTENTION_BIAS = 14


class ParamTypeError(ValueError):
  """A parameter whose kind its path does not determine."""


@dataclasses.dataclass(frozen=True)
class ShapeTuple:
  """One parameter's shape, a leaf of `param_shapes` (AlgoPerf's type).

  Attributes:
    shape_tuple: the shape, e.g. `(784, 200)`.
  """

  shape_tuple: tuple[int, ...]

  def __repr__(self) -> str:
    return f'ShapeTuple({self.shape_tuple})'


def param_shapes(params: Any) -> Any:
  """The tree of `ShapeTuple`s of a tree of arrays or shape structs."""
  return jax.tree.map(lambda leaf: ShapeTuple(tuple(leaf.shape)), params)


def param_types(params: Any) -> Any:
  """The tree of `ParameterType`s of a Flax parameter tree.

  Args:
    params: arrays, `jax.ShapeDtypeStruct`s or `ShapeTuple`s, nested in
      dicts keyed by Flax module and parameter names.

  Returns:
    A tree of the same structure with a `ParameterType` at each leaf.

  Raises:
    ParamTypeError: a normalisation layer holds a parameter other than
      `scale` and `bias`.
  """
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: _classify(_names(path), _ndim(leaf)), params,
      is_leaf=lambda x: isinstance(x, ShapeTuple))


# Tokens of a module name (split at '_', trailing digits dropped).
_BATCH_NORM = frozenset({'bn', 'batchnorm'})
_LAYER_NORM = frozenset({'ln', 'layernorm', 'norm'})
_ATTENTION = frozenset({'attention', 'attn', 'selfattention',
                        'multiheaddotproductattention'})
_CONV = frozenset({'conv', 'convolution'})
# The projection module inside attention -> its kernel's kind.
_ATTENTION_KERNELS = {
    'query': ParameterType.ATTENTION_Q,
    'q': ParameterType.ATTENTION_Q,
    'key': ParameterType.ATTENTION_K,
    'k': ParameterType.ATTENTION_K,
    'value': ParameterType.ATTENTION_V,
    'v': ParameterType.ATTENTION_V,
    'out': ParameterType.ATTENTION_OUT,
    'output': ParameterType.ATTENTION_OUT,
    'qkv': ParameterType.ATTENTION_QKV,
    'kv': ParameterType.ATTENTION_KV,
}


def _names(path: Sequence[Any]) -> list[str]:
  """Names of a tree path's keys (dict keys or attributes)."""
  names = []
  for key in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(key, attr):
        names.append(str(getattr(key, attr)))
        break
    else:
      names.append(str(key))
  return names


def _ndim(leaf: Any) -> int:
  shape = leaf.shape_tuple if isinstance(leaf, ShapeTuple) else leaf.shape
  return len(shape)


def _tokens(module_name: str) -> set[str]:
  """'final_bn' -> {'final', 'bn'}; 'BatchNorm_0' -> {'batchnorm'}."""
  return {re.sub(r'\d+$', '', part) for part in module_name.split('_')} - {''}


def _classify(names: list[str], ndim: int) -> ParameterType:
  """The kind of the parameter at `names` (module path, then leaf)."""
  *modules, leaf = [name.lower() for name in names]
  parent = _tokens(modules[-1]) if modules else set()
  if parent & _BATCH_NORM:
    return _norm_kind(names, leaf, ParameterType.BATCH_NORM_SCALE,
                      ParameterType.BATCH_NORM_BIAS)
  if parent & _LAYER_NORM:
    return _norm_kind(names, leaf, ParameterType.LAYER_NORM_SCALE,
                      ParameterType.LAYER_NORM_BIAS)
  if 'embedding' in leaf or ('embed' in parent and leaf == 'kernel'):
    return ParameterType.EMBEDDING
  in_attention = any(_tokens(m) & _ATTENTION for m in modules[:-1])
  if in_attention and modules[-1] in _ATTENTION_KERNELS:
    if leaf == 'bias':
      return ParameterType.ATTENTION_BIAS
    return _ATTENTION_KERNELS[modules[-1]]
  if leaf == 'bias' or leaf.endswith('_bias'):
    return ParameterType.BIAS
  if leaf == 'kernel' and (parent & _CONV or ndim >= 3):
    return ParameterType.CONV_WEIGHT
  return ParameterType.WEIGHT


def _norm_kind(names: list[str], leaf: str, scale: ParameterType,
               bias: ParameterType) -> ParameterType:
  if leaf == 'scale':
    return scale
  if leaf == 'bias':
    return bias
  raise ParamTypeError(
      f'cannot tell the kind of normalisation parameter {"/".join(names)}: '
      'expected "scale" or "bias"')
