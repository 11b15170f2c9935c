"""Loading and validating a submission module, by baseline name or path."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import pathlib
import sys
import types
from typing import Any, Callable, Iterator, Mapping

from submissions import adapters
from submissions import algoperf as algoperf_compat
from submissions import api
from submissions import hparams as hparams_lib

BASELINES: dict[str, str] = {
    name: f'submissions.baselines.{name}' for name in (
        'gd', 'heavy_ball', 'heavy_ball_ema', 'nesterov', 'rmsprop', 'adam',
        'adam_nobc', 'adamw', 'nadamw', 'frozen_adam', 'amsgrad', 'nadam',
        'adagrad', 'padam', 'adafactor', 'slimadam', 'lion', 'muon', 'shampoo', 'soap', 'schedule_free_adamw')
}


class SubmissionError(ValueError):
  """A submission that cannot be loaded; the message lists every problem."""


def submission_name(spec: str) -> str:
  """The name the records give a submission: the baseline's name or the
  file's stem (as `import_module` names it, without importing it)."""
  return spec if spec in BASELINES else pathlib.Path(spec).stem


def source_path(spec: str) -> pathlib.Path:
  """The file that defines a baseline or submission, without importing it."""
  if spec in BASELINES:
    return pathlib.Path(importlib.util.find_spec(BASELINES[spec]).origin)
  return pathlib.Path(spec).expanduser()


def import_module(spec: str) -> tuple[str, types.ModuleType]:
  """Imports a baseline by name or a submission by file path.

  Returns:
    The submission's name (the baseline name or the file's stem) and module.
  """
  if spec in BASELINES:
    return spec, importlib.import_module(BASELINES[spec])
  path = pathlib.Path(spec).expanduser()
  if path.suffix != '.py' or not path.is_file():
    raise SubmissionError(
        f'submission {spec!r} is neither a baseline nor a .py file; '
        f'baselines: {", ".join(sorted(BASELINES))}')
  module_name = f'aeosperf_submission_{path.stem}'
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_name] = module
  try:
    with algoperf_names():
      module_spec.loader.exec_module(module)
  except Exception as e:
    del sys.modules[module_name]
    raise SubmissionError(
        f'importing {path} failed: {type(e).__name__}: {_first_line(e)}'
        f'{_algoperf_hint(e)}') from e
  return path.stem, module


_ALGOPERF = 'algoperf'


def _is_algoperf_name(name: str) -> bool:
  return name == _ALGOPERF or name.startswith(_ALGOPERF + '.')


def users_algoperf_installed() -> bool:
  """Whether `import algoperf` finds a package other than ours.

  What sits in `sys.modules` under the name without a spec (a test's stub)
  is the user's too: it is left as it is. Our own directory found on
  `sys.path` (a run from inside `submissions/`) is not.
  """
  try:
    found = importlib.util.find_spec(_ALGOPERF)
  except (ImportError, ValueError):
    return True
  if found is None or found.name != _ALGOPERF:
    return False
  ours = pathlib.Path(algoperf_compat.__file__).resolve()
  return found.origin is None or pathlib.Path(found.origin).resolve() != ours


@contextlib.contextmanager
def algoperf_names() -> Iterator[None]:
  """Makes `submissions.algoperf` importable as `algoperf` for a while.

  AlgoPerf-form modules import `algoperf.spec` and its neighbours at module
  level, so the names are needed only while the module is executed; after
  it, `sys.modules` is as it was, so nothing else in the process sees an
  `algoperf` it did not install. A real installed `algoperf` wins: then
  nothing is aliased.
  """
  if users_algoperf_installed():
    yield
    return
  saved = {name: module for name, module in sys.modules.items()
           if _is_algoperf_name(name)}
  sys.modules[_ALGOPERF] = algoperf_compat
  for name in algoperf_compat.MODULES:
    sys.modules[f'{_ALGOPERF}.{name}'] = importlib.import_module(
        f'{algoperf_compat.__name__}.{name}')
  try:
    yield
  finally:
    for name in [name for name in sys.modules if _is_algoperf_name(name)]:
      del sys.modules[name]
    sys.modules.update(saved)


def _algoperf_hint(error: Exception) -> str:
  """What `algoperf.*` modules exist here, when a missing one failed."""
  missing = getattr(error, 'name', None) or ''
  ours = missing.startswith(algoperf_compat.__name__)
  if not (isinstance(error, ImportError)
          and (ours or _is_algoperf_name(missing))
          and not users_algoperf_installed()):
    return ''
  provided = ', '.join(f'{_ALGOPERF}.{name}'
                       for name in algoperf_compat.MODULES)
  return (f' (without an installed algoperf, the harness provides '
          f'{provided})')


def _first_line(error: Exception) -> str:
  """The first line of an error's message; the chained traceback has all."""
  lines = str(error).strip().splitlines()
  return lines[0] if lines else ''


def _arity_problem(module: types.ModuleType, name: str,
                   args: tuple[str, ...]) -> str | None:
  fn = getattr(module, name)
  if not callable(fn):
    return f'{name} is a {type(fn).__name__}, not a function'
  try:
    inspect.signature(fn).bind(*args)
  except TypeError as e:
    params = tuple(inspect.signature(fn).parameters)
    return (f'{name}{params} cannot take the {len(args)} positional '
            f'arguments the harness passes {args} ({_first_line(e)})')
  except ValueError:  # Builtins without a signature: trust them.
    return None
  return None


def validate(module: types.ModuleType) -> type[api.Submission]:
  """Checks a module's form and functions against `api.FUNCTIONS`.

  Returns:
    The adapter class for the module's form.

  Raises:
    SubmissionError: one line naming every missing or ill-typed function.
  """
  form = (api.Form.SHORT if hasattr(module, 'make_optimizer')
          else api.Form.ALGOPERF)
  checked = {name: fn.parameters for name, fn in api.FUNCTIONS.items()
             if fn.required_by in (form, None)}
  problems = []
  missing = [name for name, fn in api.FUNCTIONS.items()
             if fn.required_by is form and not hasattr(module, name)]
  if missing:
    algoperf = [name for name, fn in api.FUNCTIONS.items()
                if fn.required_by is api.Form.ALGOPERF]
    problems.append(
        f'missing {missing}: a submission defines either '
        f'make_optimizer(hparams) or all of {algoperf}')
  for name, args in checked.items():
    if hasattr(module, name):
      problem = _arity_problem(module, name, args)
      if problem:
        problems.append(problem)
  defaults = getattr(module, 'DEFAULT_HPARAMS', {})
  if not isinstance(defaults, Mapping):
    problems.append(
        f'DEFAULT_HPARAMS is a {type(defaults).__name__}, expected a dict')
  if problems:
    raise SubmissionError(
        f'submission {module.__name__} ({getattr(module, "__file__", "?")}) '
        'is invalid: ' + '; '.join(problems))
  return (adapters.ShortFormSubmission if form is api.Form.SHORT
          else adapters.AlgoPerfSubmission)


def source_sha256(submission: api.Submission) -> str:
  """SHA-256 of the file that defines the submission (its code's identity)."""
  module = getattr(submission, 'module', None)
  source = inspect.getsourcefile(module or type(submission))
  return hashlib.sha256(pathlib.Path(source).read_bytes()).hexdigest()


def load(spec: str, hparams: Mapping[str, Any] | None = None, *,
         self_tuning: bool = False) -> api.Submission:
  """Loads, validates and binds a submission to its hyperparameters.

  Args:
    spec: a baseline name (see `BASELINES`) or the path of a .py file.
    hparams: values over the module's DEFAULT_HPARAMS; None uses the defaults.
    self_tuning: AlgoPerf's self-tuning ruleset: the module's functions get
      None as their hyperparameters, and `hparams` must be empty.

  Returns:
    The submission, adapted to `api.Submission`.

  Raises:
    SubmissionError: the module cannot be imported or breaks the API.
    hparams.HparamsError: a hyperparameter is unknown or of the wrong type.
    api.SubmissionOutputError: `make_optimizer` returned no
      `optax.GradientTransformation`.
  """
  if self_tuning and hparams:
    raise hparams_lib.HparamsError(
        f'a self-tuning submission takes no hyperparameters; got '
        f'{sorted(hparams)}')
  name, module = import_module(spec)
  adapter: Callable[..., api.Submission] = validate(module)
  values = {} if self_tuning else hparams_lib.merge(
      getattr(module, 'DEFAULT_HPARAMS', {}), hparams or {})
  return adapter(name, module, api.Hyperparameters(values),
                 self_tuning=self_tuning)
