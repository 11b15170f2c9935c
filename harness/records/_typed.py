"""Typed JSON records: frozen dataclasses checked field by field when read.

The machinery under `harness.records`; see that package for the records.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import os
import re
import types
import typing
from typing import Any, ClassVar, Mapping, TypeVar

SCHEMA_VERSION = 5


class RecordError(ValueError):
  """A run directory or record that cannot be used; says where and why."""


_R = TypeVar('_R', bound='Record')
_NON_FINITE = {'nan': math.nan, 'inf': math.inf, '-inf': -math.inf}
# Integers beyond 64 bits are no step, seed or count a run writes, and
# would overflow where scoring turns them into floats.
_INT_LIMIT = 2**64
# Free-form data (hyperparameters, settings) nests a few levels; a deeper
# value is a corrupt or hostile file, refused before it exhausts the stack.
MAX_NESTING = 64


def _type_name(annotation: Any) -> str:
  if isinstance(annotation, type):
    return annotation.__name__
  return str(annotation).replace('typing.', '')


def _decode(value: Any, annotation: Any, where: str) -> Any:
  """`value` (parsed JSON) checked against `annotation`, as Python data."""
  if annotation is Any:
    return _decode_any(value, where)
  origin = typing.get_origin(annotation)
  if origin in (typing.Union, types.UnionType):
    options = typing.get_args(annotation)
    if value is None and type(None) in options:
      return None
    for option in (o for o in options if o is not type(None)):
      try:
        return _decode(value, option, where)
      except RecordError:
        pass
    raise RecordError(f'{where}: expected {_type_name(annotation)}, got '
                      f'{_shown(value)}')
  if origin in (list, tuple):
    item = typing.get_args(annotation)[0]
    if not isinstance(value, list):
      raise RecordError(f'{where}: expected a list, got {_shown(value)}')
    return tuple(_decode(v, item, f'{where}[{i}]')
                 for i, v in enumerate(value))
  if origin in (dict, Mapping, typing.Mapping):
    item = typing.get_args(annotation)[1]
    if not isinstance(value, dict):
      raise RecordError(f'{where}: expected an object, got {_shown(value)}')
    return {_text(k, where): _decode(v, item, f'{where}.{k}')
            for k, v in value.items()}
  if isinstance(annotation, type) and issubclass(annotation, Record):
    return annotation.from_json(value, source=where)
  if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
    try:
      return annotation(value)
    except ValueError:
      known = ', '.join(m.value for m in annotation)
      raise RecordError(f'{where}: {_shown(value)} is not one of {known}'
                        ) from None
  return _decode_scalar(value, annotation, where)


def _decode_scalar(value: Any, annotation: Any, where: str) -> Any:
  is_int = isinstance(value, int) and not isinstance(value, bool)
  if is_int and annotation in (int, float) and abs(value) >= _INT_LIMIT:
    raise RecordError(f'{where}: {_shown(value)} is out of range (at most '
                      '64 bits)')
  if annotation is float:
    if isinstance(value, str) and value in _NON_FINITE:
      return _NON_FINITE[value]
    if is_int or isinstance(value, float):
      return float(value)
  elif annotation is int:
    if is_int:
      return value
  elif annotation is str:
    if isinstance(value, str):
      return _text(value, where)
  elif annotation is bool:
    if isinstance(value, bool):
      return value
  else:
    raise TypeError(f'records cannot hold {annotation!r}')
  raise RecordError(f'{where}: expected {annotation.__name__}, got '
                    f'{_shown(value)}')


def _text(value: str, where: str) -> str:
  """`value`, refused when it cannot be written as UTF-8.

  JSON's escapes can spell a lone surrogate ("\\ud800"), which no report
  file can hold.
  """
  try:
    value.encode('utf-8')
  except UnicodeEncodeError:
    raise RecordError(f'{where}: {value!r:.60} is not valid Unicode text '
                      '(a lone surrogate)') from None
  return value


def _decode_any(value: Any, where: str, depth: int = 0) -> Any:
  """Free-form data (provenance, settings): non-finite strings as floats."""
  if depth > MAX_NESTING:
    raise RecordError(f'{where}: nested more than {MAX_NESTING} levels deep')
  if isinstance(value, str):
    return _NON_FINITE[value] if value in _NON_FINITE else _text(value,
                                                                 where)
  if isinstance(value, dict):
    return {_text(k, where): _decode_any(v, where, depth + 1)
            for k, v in value.items()}
  if isinstance(value, list):
    return [_decode_any(v, where, depth + 1) for v in value]
  return value


def finite(value: float | None) -> float | None:
  """A number read from a record, or None when it is absent or not finite."""
  return value if value is not None and math.isfinite(value) else None


def _shown(value: Any) -> str:
  """A short description of a bad value, whatever it holds."""
  if isinstance(value, str):
    text = repr(value)
  elif isinstance(value, int) and abs(value) >= _INT_LIMIT:
    text = f'of {value.bit_length()} bits'
  elif isinstance(value, (dict, list)) and len(value) > 8:
    text = f'of {len(value)} items'
  else:
    try:
      text = json.dumps(value)
    except (RecursionError, ValueError):  # Deeply nested.
      text = f'of {len(value)} items'
  text = text if len(text) <= 40 else text[:37] + '...'
  return f'{type(value).__name__} {text}'


def _encode(value: Any) -> Any:
  """Python data as plain JSON values, non-finite floats as strings."""
  if isinstance(value, Record):
    return value.to_json()
  if isinstance(value, enum.Enum):
    return value.value
  if isinstance(value, float):
    return value if math.isfinite(value) else repr(value)
  if isinstance(value, Mapping):
    return {str(k): _encode(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_encode(v) for v in value]
  if hasattr(value, 'tolist'):  # NumPy and JAX scalars and arrays.
    return _encode(value.tolist())
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  if value is None or isinstance(value, (str, int, bool)):
    return value
  raise TypeError(f'cannot write {type(value).__name__} to a run record')


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
  # Resolving string annotations compiles each one: once per class, not
  # once per line of a metrics file.
  return typing.get_type_hints(cls)


@dataclasses.dataclass(frozen=True)
class Record:
  """A JSON object with a fixed set of typed fields.

  `from_json` refuses a missing, extra or ill-typed field with a
  `RecordError` naming `source` and the field. A subclass may name a mapping
  field `open_field` that takes the keys varying by workload: those matching
  `open_keys` (a regular expression), or when that is None every key that is
  not a field. `to_json` writes them beside the other fields.
  """

  open_field: ClassVar[str | None] = None
  open_keys: ClassVar[re.Pattern[str] | None] = None

  @classmethod
  def field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))

  def to_json(self) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name == self.open_field:
        out.update(_encode(value))
      else:
        out[f.name] = _encode(value)
    return out

  @classmethod
  def from_json(cls: type[_R], data: Any, *, source: str = 'record') -> _R:
    if not isinstance(data, dict):
      raise RecordError(f'{source}: expected a JSON object, got '
                        f'{_shown(data)}')
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    fixed = [n for n in names if n != cls.open_field]
    given = dict(data)
    values: dict[str, Any] = {}
    if cls.open_field is not None:
      item_type = typing.get_args(hints[cls.open_field])[1]
      values[cls.open_field] = {
          _text(k, source): _decode(given.pop(k), item_type,
                                    f'{source}: field {k!r}')
          for k in list(given) if k not in fixed and (
              cls.open_keys is None or cls.open_keys.fullmatch(k))}
    missing = [n for n in fixed if n not in given]
    extra = sorted(set(given) - set(fixed))
    if missing or extra:
      what = (f'missing field {missing[0]!r}' if missing else
              f'unknown field {extra[0]!r}')
      raise RecordError(f'{source}: {what}; {cls.__name__} has the fields '
                        f'{", ".join(names)}')
    for name in fixed:
      values[name] = _decode(given[name], hints[name],
                             f'{source}: field {name!r}')
    version = values.get('schema_version', SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
      raise RecordError(
          f'{source}: written with record schema version {version}; this '
          f'version of aeosperf reads version {SCHEMA_VERSION}')
    return cls(**values)
