"""Hyperparameters and tuning search spaces (AlgoPerf's JSON format).

A search space is a JSON object mapping each hyperparameter to either a range
`{"min": a, "max": b, "scaling": "linear" | "log"}` or a list of
`{"feasible_points": [...]}`; or, as AlgoPerf's baselines ship theirs, a
JSON list of explicit points, one `{name: value}` object per trial. Trial `t`
of study `s` takes point `t` of the list, or point `t` of a scrambled Halton
sequence seeded by `s`, so trials fan out by index to any scheduler (a SLURM
array index, a Kubernetes job completion index) with no coordination.

Trial numbers start at 0 here and at 1 in AlgoPerf: `--trial=i` runs the
list's point `i` into `study_S/trial_i`, the run AlgoPerf writes to
`trial_{i+1}` (our trial_0 is AlgoPerf's trial_1). A study of N trials is N
runs, `--trial=0` to `--trial=N-1`. A list's points are AlgoPerf's points;
the points of a range are this module's own, seeded by the study, so they
are not the ones AlgoPerf's Halton draw gives its trials.

`--hparams` takes a single point (a JSON object of values) or either form of
search space, of which it takes the trial's point as `--search_space` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import qmc


class HparamsError(ValueError):
  """Malformed hyperparameters or search space."""


_HPARAMS_EXAMPLE = '{"learning_rate": 0.001}'
_SPACE_EXAMPLE = ('{"learning_rate": {"min": 1e-4, "max": 1e-2, '
                  '"scaling": "log"}}')


def read_json_arg(value: str, what: str,
                  example: str = _HPARAMS_EXAMPLE) -> Any:
  """Parses `value` as inline JSON, or reads it as a JSON file's path.

  Raises:
    HparamsError: one line saying what is wrong with `value` and, by
      `example`, what the flag `what` takes instead.
  """
  text = value.strip()
  source = 'inline JSON'
  if not text.startswith(('{', '[')):
    path = pathlib.Path(os.path.expanduser(text))
    if not path.is_file():
      raise HparamsError(
          f'{what}: {value!r} is neither inline JSON nor an existing file; '
          f"give JSON such as '{example}' or the path of a .json file")
    try:
      text, source = path.read_text(), str(path)
    except (OSError, UnicodeDecodeError) as e:
      raise HparamsError(f'{what}: cannot read {path}: {e}') from None
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise HparamsError(f'{what}: {source} is not valid JSON ({e}); write '
                       f"it like '{example}'") from None


def load_hparams(value: str | None, study: int = 0,
                 trial: int = 0) -> dict[str, Any]:
  """Hyperparameters from `--hparams` (inline JSON or a file); {} if None.

  A JSON object of values is the point itself. A search space, a list of
  points or an object of ranges (see `is_search_space`), gives the point of
  trial `trial` of study `study`, so one file serves every trial.
  """
  if not value:
    return {}
  hparams = read_json_arg(value, '--hparams')
  if isinstance(hparams, list) or is_search_space(hparams):
    space = SearchSpace.from_json(hparams, '--hparams')
    return space.point(study, trial)
  if not isinstance(hparams, dict):
    raise HparamsError(
        f'--hparams must be a JSON object of names and values such as '
        f"'{_HPARAMS_EXAMPLE}' (or a list of them, one per trial), got a "
        f'JSON {type(hparams).__name__}')
  return hparams


def is_search_space(spec: Any) -> bool:
  """Whether a JSON object is a search space rather than a point.

  It is when every value is a range (an object with "min" and "max") or an
  object of "feasible_points"; a hyperparameter's value is never such an
  object in AlgoPerf's submissions.
  """
  return isinstance(spec, dict) and bool(spec) and all(
      isinstance(v, dict) and (
          'feasible_points' in v or {'min', 'max'} <= set(v))
      for v in spec.values())


def merge(defaults: Mapping[str, Any], given: Mapping[str, Any]
          ) -> dict[str, Any]:
  """Given values over defaults, checked against the defaults.

  Names unknown to the defaults are refused (a submission without defaults
  accepts any names), and so is a value whose kind differs from its
  default's; see `type_problem`.

  Raises:
    HparamsError: one line naming every refused hyperparameter.
  """
  unknown = sorted(set(given) - set(defaults)) if defaults else []
  if unknown:
    raise HparamsError(
        f'unknown hyperparameters {unknown}; this submission takes '
        f'{sorted(defaults)}')
  problems = [problem for name in sorted(given) if name in defaults and (
      problem := type_problem(name, defaults[name], given[name]))]
  if problems:
    raise HparamsError('; '.join(problems))
  return {**defaults, **given}


def _is_bool(value: Any) -> bool:
  return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_float(value: Any) -> bool:
  # An int is a float's value without its fractional part ("lr": 1 is 1.0).
  return isinstance(value, numbers.Real) and not _is_bool(value)


# The kinds of default whose given values are checked, most specific first
# (a bool is an Integral, an int a Real), with the test a value must pass.
_KINDS: tuple[tuple[str, Any], ...] = (
    ('a bool', _is_bool),
    ('an int', _is_int),
    ('a float', _is_float),
    ('a string', lambda value: isinstance(value, str)),
)


def type_problem(name: str, default: Any, value: Any) -> str | None:
  """Why `value` cannot replace `default`, or None when it can.

  A value must be of its default's kind: a bool for a bool, an int for an
  int, an int or a float for a float, a string for a string. Bools are not
  numbers here, since `"learning_rate": true` is a mistake, not 1.0. A
  default of another type (None, a list) accepts any value.
  """
  for kind, accepts in _KINDS:
    if accepts(default):
      if accepts(value):
        return None
      return (f'hyperparameter {name!r} must be {kind} like its default '
              f'{default!r}, got {type(value).__name__} {value!r}')
  return None


@dataclasses.dataclass(frozen=True)
class Range:
  low: float
  high: float
  log: bool

  def value(self, u: float) -> float:
    if self.log:
      return float(math.exp(math.log(self.low) +
                            u * (math.log(self.high) - math.log(self.low))))
    return float(self.low + u * (self.high - self.low))


@dataclasses.dataclass(frozen=True)
class Choice:
  points: tuple[Any, ...]

  def value(self, u: float) -> Any:
    return self.points[min(int(u * len(self.points)), len(self.points) - 1)]


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A tuning search space; `point(study, trial)` gives a trial's values.

  Attributes:
    dimensions: each hyperparameter's range or choice (a min/max space).
    explicit_points: one point per trial (a list-of-points space).
    flag: the flag the space came from, for error messages.
  """

  dimensions: Mapping[str, Range | Choice] | None = None
  explicit_points: Sequence[Mapping[str, Any]] | None = None
  flag: str = dataclasses.field(default='--search_space', compare=False)

  @classmethod
  def from_json(cls, value: str | Any,
                flag: str = '--search_space') -> SearchSpace:
    """The space `value` gives: JSON text, a file's path, or parsed JSON.

    Raises:
      HparamsError: one line naming `flag` and what is wrong.
    """
    spec = read_json_arg(value, flag, _SPACE_EXAMPLE) if (
        isinstance(value, str)) else value
    if isinstance(spec, list):
      return cls(explicit_points=_points(spec, flag), flag=flag)
    if not isinstance(spec, dict) or not spec:
      raise HparamsError(
          f'{flag} must be a non-empty JSON object of ranges such as '
          f"'{_SPACE_EXAMPLE}', or a list of points")
    return cls(dimensions={k: _dimension(k, v) for k, v in spec.items()},
               flag=flag)

  @property
  def size(self) -> int | None:
    """Number of distinct trials, or None when unbounded."""
    return None if self.explicit_points is None else len(self.explicit_points)

  def point(self, study: int, trial: int) -> dict[str, Any]:
    """The values of trial `trial` (0-based) of study `study`.

    Raises:
      HparamsError: a negative index, or a trial past a list's points.
    """
    if trial < 0 or study < 0:
      raise HparamsError('study and trial indices must be >= 0')
    if self.explicit_points is not None:
      size = len(self.explicit_points)
      if trial >= size:
        raise HparamsError(
            f'trial {trial} is past the {size} points of this search space '
            f'({self.flag}): --trial takes 0 to {size - 1}, the runs '
            f"AlgoPerf numbers trial_1 to trial_{size}")
      return dict(self.explicit_points[trial])
    names = sorted(self.dimensions)
    sampler = qmc.Halton(d=len(names), scramble=True, seed=study)
    u = sampler.random(trial + 1)[trial]
    return {n: self.dimensions[n].value(float(x)) for n, x in zip(names, u)}


def _points(spec: list[Any], flag: str) -> tuple[dict[str, Any], ...]:
  """A list-of-points space, checked: objects that name the same values.

  AlgoPerf takes the names of its first point for every trial, so a point
  that names others is a mistake (a misspelt name, most likely).
  """
  if not spec:
    raise HparamsError(f'a {flag} list needs at least one point')
  for index, point in enumerate(spec):
    if not isinstance(point, dict):
      raise HparamsError(
          f'each point of a {flag} list must be a JSON object of names and '
          f'values, one per trial; point {index} is a JSON '
          f'{type(point).__name__}')
  names = set(spec[0])
  for index, point in enumerate(spec):
    if set(point) != names:
      raise HparamsError(
          f'{flag}: point {index} names {sorted(point)} but point 0 names '
          f'{sorted(names)}; every point names the same hyperparameters')
  return tuple(spec)


def _dimension(name: str, spec: Any) -> Range | Choice:
  if not isinstance(spec, dict):
    raise HparamsError(
        f'search space entry {name!r} must be an object: a range '
        '{"min": a, "max": b, "scaling": "linear" | "log"} or '
        '{"feasible_points": [...]}')
  if 'feasible_points' in spec:
    points = spec['feasible_points']
    if not isinstance(points, list) or not points:
      raise HparamsError(f'{name}: feasible_points must be a non-empty list')
    return Choice(tuple(points))
  try:
    low, high = float(spec['min']), float(spec['max'])
  except (KeyError, TypeError, ValueError):
    raise HparamsError(
        f'{name}: give numeric "min" and "max", or "feasible_points"'
    ) from None
  scaling = spec.get('scaling', 'linear')
  if scaling not in ('linear', 'log'):
    raise HparamsError(f'{name}: scaling must be "linear" or "log", got '
                       f'{scaling!r}')
  if low > high or (scaling == 'log' and low <= 0):
    raise HparamsError(f'{name}: need 0 < min <= max for log scaling and '
                       f'min <= max always; got min={low}, max={high}')
  return Range(low, high, scaling == 'log')


def to_jsonable(hparams: Mapping[str, Any]) -> dict[str, Any]:
  """Plain JSON values (NumPy scalars become Python numbers)."""
  return {k: v.item() if isinstance(v, np.generic) else v
          for k, v in hparams.items()}
