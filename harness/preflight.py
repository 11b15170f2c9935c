"""Set-up checks: what can be known wrong before a run starts.

A run that fails at its first probe or its first checkpoint leaves a run
directory behind that holds nothing but the failure, and takes a tuning
study's slot. `check_run` finds, before the runner creates or locks that
directory, every fault that needs no training step: the data (missing, an
unknown source, a train size larger than the data), the batch regime, and
the submission's set-up hooks (`get_batch_size`, `dynamics`, and the shape
of `preconditioner`, traced with `jax.eval_shape` so nothing is computed).
`RunConfig` refuses bad numbers itself, and `submissions.loading.load` bad
modules and hyperparameters; `set_up` does all of it and turns each failure
into one `SetupError`, so every set-up error surfaces before a file is
written. Its `Setup` is what the runner then trains with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from typing import Any, Iterator

import jax

from harness import config as config_lib
from harness import curvature
from harness import mesh as mesh_lib
from harness import probe
from harness import provenance
from harness import records
from submissions import adapters
from submissions import api
from submissions import dynamics as dynamics_lib
from submissions import loading
from workloads import base
import workloads
from workloads.data import sources


class SetupError(ValueError):
  """The run cannot start as configured.

  The message is one line saying what is wrong and what to change; the
  original error, when there is one, is chained as its cause.
  """


@dataclasses.dataclass(frozen=True)
class Setup:
  """A run's parts, checked before its directory is touched."""

  config: config_lib.RunConfig
  workload: base.Workload
  submission: api.Submission
  source_sha256: str
  regime: base.BatchRegime
  parallel: mesh_lib.DataParallel
  dataset: base.Dataset

  def meta(self, directory: pathlib.Path) -> records.Meta:
    """The run's `meta.json`, written when it starts at step 0."""
    config = self.config
    return records.Meta(
        workload=records.WorkloadFacts.from_json(
            self.workload.describe(), source='Workload.describe()'),
        submission=records.SubmissionFacts(
            name=self.submission.name, spec=config.submission,
            baseline=config.submission in loading.BASELINES,
            source_sha256=self.source_sha256),
        hparams=self.submission.hparams.to_dict(), seed=config.seed,
        study=config.study, trial=config.trial,
        regime=records.Regime(**dataclasses.asdict(self.regime)),
        config=dataclasses.asdict(config),
        devices=records.Devices(**provenance.devices()),
        versions=provenance.versions(), host=provenance.host(),
        start_time=provenance.now_iso(), run_dir=str(directory))


def set_up(config: config_lib.RunConfig, workload: base.Workload | None,
            submission: api.Submission | None) -> Setup:
  """Looks up, loads and checks everything a run needs; writes nothing.

  A set-up error (unknown workload, a submission that does not load,
  missing data, a wrong hook) thus leaves no run directory behind and
  cannot block the corrected rerun.

  Args:
    config: the run.
    workload: a workload object to use instead of looking up
      `config.workload`; the config is then made to name it.
    submission: a loaded submission to use instead of loading
      `config.submission`; likewise.

  Raises:
    SetupError: the first problem found, in one line.
  """
  try:
    if workload is None:
      workload = workloads.get(config.workload, config.data)
    else:  # The records then name what actually ran.
      config = dataclasses.replace(config, workload=workload.name)
    if submission is None:
      submission = loading.load(
          config.submission, config.hparams,
          self_tuning=config.tuning_ruleset is config_lib.TuningRuleset.SELF)
    else:
      config = dataclasses.replace(config, submission=submission.name,
                                   hparams=submission.hparams.to_dict())
    regime = config_lib.resolve_regime(
        config, workload, submission.get_batch_size(workload.name))
    parallel = mesh_lib.DataParallel.over_all_devices()
    dataset = check_run(config, workload, submission, regime,
                                  parallel)
  except SetupError:
    raise
  except (ValueError, api.SubmissionOutputError) as e:
    raise SetupError(str(e)) from e
  return Setup(config, workload, submission,
                loading.source_sha256(submission), regime, parallel, dataset)


def check_run(config: config_lib.RunConfig, workload: base.Workload,
              submission: api.Submission, regime: base.BatchRegime,
              parallel: mesh_lib.DataParallel) -> base.Dataset:
  """Checks a run's set-up and opens its data; writes nothing.

  The cheap checks run first and the data is loaded last, so a wrong hook
  is reported without waiting for the data.

  Args:
    config: the run.
    workload: the workload it trains.
    submission: the loaded submission.
    regime: the resolved batch regime (`config.resolve_regime`).
    parallel: the devices the run shards over.

  Returns:
    The workload's dataset for `regime`, for the run to use instead of
    calling `workload.dataset` again.

  Raises:
    SetupError: the first problem found.
  """
  with _submission_errors():
    _check_batch_size(workload, submission)
    _check_dynamics(submission)
    _check_preconditioner(config, workload, submission)
  _check_regime(config, workload, regime, parallel)
  return _open_data(workload, regime)


@contextlib.contextmanager
def _submission_errors() -> Iterator[None]:
  """A hook's malformed return, which the adapters report, as a SetupError."""
  try:
    yield
  except api.SubmissionOutputError as e:
    raise SetupError(str(e)) from e


def _check_batch_size(workload: base.Workload,
                      submission: api.Submission) -> None:
  # The adapters check their modules' value already; a Submission written
  # as a class is checked here.
  adapters.checked_batch_size(
      f'{submission.name}.get_batch_size({workload.name!r})',
      submission.get_batch_size(workload.name))


def _check_dynamics(submission: api.Submission) -> None:
  result = submission.dynamics()
  if result is not None and not isinstance(result, dynamics_lib.Dynamics):
    raise SetupError(
        f'{submission.name}.dynamics returned {type(result).__name__}, '
        'expected submissions.dynamics.Dynamics (or no dynamics function)')


def _check_preconditioner(config: config_lib.RunConfig,
                          workload: base.Workload,
                          submission: api.Submission) -> None:
  """The hook's pytree must be shaped like the params, one entry each, or
  be a `curvature.Preconditioner` that fits them.

  `jax.eval_shape` traces `init_model_fn`, `init_optimizer_state` and the
  hook without computing them. A submission whose initialisation cannot be
  traced (it reads values on the host) is not refused for it: the probe
  meets its real preconditioner later.
  """
  saving = bool(config.save_preconditioner_at)
  if not submission.implements('preconditioner'):
    if saving:
      raise SetupError(
          f'--save_preconditioner_at is set but {submission.name} defines '
          'no preconditioner(optimizer_state, hyperparameters) to save; '
          'drop the flag or add the hook')
    return

  def initial_preconditioner(rng: jax.Array) -> tuple[Any, Any]:
    init_rng, opt_rng = jax.random.split(rng)
    params, model_state = workload.init_model_fn(init_rng)
    state = submission.init_optimizer_state(workload, params, model_state,
                                            opt_rng)
    return params, submission.preconditioner(state)

  try:
    params, diag = jax.eval_shape(initial_preconditioner,
                                  jax.random.PRNGKey(config.seed))
  except jax.errors.JAXTypeError:
    return
  if diag is None:
    if saving:
      raise SetupError(
          f'--save_preconditioner_at is set but {submission.name}.'
          'preconditioner returns None: there is no preconditioner to save')
    return
  if isinstance(diag, curvature.Preconditioner):  # Not diagonal.
    if saving:
      raise SetupError(
          f'--save_preconditioner_at saves a diagonal P, but '
          f'{submission.name}.preconditioner returns a '
          f'{type(diag).__name__}; drop the flag')
    try:
      diag.validate(params)
    except ValueError as e:
      raise SetupError(f'{submission.name}.preconditioner(optimizer_state): '
                       f'{_one_line(e)}') from e
    return
  mismatch = api.describe_mismatch(diag, params, dtypes=False)
  if mismatch:
    raise SetupError(
        f'{submission.name}.preconditioner(optimizer_state) must return the '
        'diagonal of P shaped like the params (one entry per parameter), '
        f'but {mismatch}')


def _check_regime(config: config_lib.RunConfig, workload: base.Workload,
                  regime: base.BatchRegime,
                  parallel: mesh_lib.DataParallel) -> None:
  if not regime.full_batch and regime.batch_size > regime.train_size:
    raise SetupError(
        f'batch_size {regime.batch_size} exceeds train_size '
        f'{regime.train_size}, the pool minibatches are drawn from; lower '
        '--batch_size or raise --train_size')
  try:
    parallel.check_chunk_size(regime.chunk_size)
    if config.curvature.enabled:
      _check_curvature_batch(config.curvature, workload, regime, parallel)
  except ValueError as e:
    raise SetupError(_one_line(e)) from e


def _check_curvature_batch(curvature: config_lib.CurvatureConfig,
                           workload: base.Workload, regime: base.BatchRegime,
                           parallel: mesh_lib.DataParallel) -> None:
  """The probe's fixed batch (`probe.curvature_batch_shape`) must split into
  whole chunks on every device."""
  size, chunk = probe.curvature_batch_shape(curvature, workload, regime)
  if size % chunk:
    flag = ('--curvature_chunk_size' if curvature.chunk_size else
            '--chunk_size (or --curvature_chunk_size)')
    raise ValueError(
        f'the curvature batch of {size} examples does not split into chunks '
        f'of {chunk}; choose a {flag} that divides {size}')
  parallel.check_chunk_size(chunk)


def _open_data(workload: base.Workload,
               regime: base.BatchRegime) -> base.Dataset:
  """The dataset, or the workload's own one-line reason why not.

  Workloads raise `DataNotFoundError` for data not on this machine and
  ValueError for a source or size the data cannot serve; both are set-up
  errors, as is a data library that is not installed.
  """
  try:
    return workload.dataset(regime)
  except (sources.DataNotFoundError, ValueError) as e:
    raise SetupError(f'{workload.name} data: {_one_line(e)}') from e
  except ImportError as e:
    raise SetupError(
        f'{workload.name} data: {_one_line(e)}; install the data extra '
        "(pip install -e '.[data]')") from e


def _one_line(error: Exception) -> str:
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__
