"""The timed training loop: `train(config) -> RunResult`.

The loop calls the submission's `data_selection` and `update_params` under
the submission clock and synchronises only every `log_every` steps (and at
evaluations, probes and the end), so the harness adds a Python call and a
dictionary lookup to a bare jitted step. At each synchronisation it checks
that the loss is finite, and stops the run as `diverged` if not.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import signal
import threading
import time
import traceback
from typing import Any, Iterator

import jax
import numpy as np
import optax

from harness import clock as clock_lib
from harness import config as config_lib
from harness import evaluation
from harness import mesh as mesh_lib
from harness import milestones as milestones_lib
from harness import probe as probe_lib
from harness import progress as progress_lib
from harness import provenance
from harness import records
from submissions import api
from submissions import loading
from submissions import preconditioner_file
import workloads
from workloads import base

Status = records.Status


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Where a run's records are and how it ended."""

  run_dir: pathlib.Path
  status: Status
  summary: records.Summary


class _Stop(Exception):
  """Ends the loop with a status."""

  def __init__(self, status: Status):
    super().__init__(status.value)
    self.status = status


class _TerminationSignals:
  """Turns SIGTERM into a flag the loop checks (Ctrl-C stays an exception)."""

  def __init__(self):
    self.received = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.received = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train(config: config_lib.RunConfig, *,
          workload: base.Workload | None = None,
          submission: api.Submission | None = None) -> RunResult:
  """Runs one submission on one workload and writes its run records.

  Args:
    config: the run.
    workload: a workload object to run instead of looking up
      `config.workload` (a test's own variant, say); the records name it.
    submission: a loaded submission (`submissions.loading.load`) to run
      instead of loading `config.submission` with `config.hparams`.

  Returns:
    The run directory, status and summary. An exception inside the loop is
    recorded as status `error` and then re-raised.
  """
  if workload is None:
    workload = workloads.get(config.workload, config.data)
  else:  # The records then name what actually ran.
    config = dataclasses.replace(config, workload=workload.name)
  if submission is None:
    submission = loading.load(config.submission, config.hparams)
  else:
    config = dataclasses.replace(config, submission=submission.name,
                                 hparams=submission.hparams.to_dict())
  regime = config_lib.resolve_regime(
      config, workload, submission.get_batch_size(workload.name))
  parallel = mesh_lib.DataParallel.over_all_devices()
  parallel.check_chunk_size(regime.chunk_size)
  directory = records.run_dir(config.experiment_dir, workload.name,
                              submission.name, config.study, config.trial)
  writer = None
  if jax.process_index() == 0:
    writer = records.RunWriter(directory, overwrite=config.overwrite)
  with _TerminationSignals() as signals:
    loop = _TrainingLoop(config, workload, submission, regime, parallel,
                         writer, signals)
    return loop.run(directory)


class _TrainingLoop:
  """The state of one run between its start and its summary."""

  def __init__(self, config, workload: base.Workload,
               submission: api.Submission, regime: base.BatchRegime,
               parallel: mesh_lib.DataParallel,
               writer: records.RunWriter | None, signals: _TerminationSignals):
    self.config = config
    self.workload = workload
    self.submission = submission
    self.regime = regime
    self.parallel = parallel
    self.writer = writer
    self.signals = signals
    self.max_steps = config.max_steps or workload.step_budget
    self.max_runtime_s = config.max_runtime_s or workload.runtime_budget_s
    self.clock = clock_lib.SubmissionClock()
    self.progress = progress_lib.Progress(self.max_steps, quiet=config.quiet)
    self.step = 0
    self.times = {'first_step_s': 0.0, 'eval_time_s': 0.0}
    self.eval_results: list[tuple[int, dict[str, float]]] = []
    self.last_metrics: dict[str, float] = {}
    self.milestones = milestones_lib.Milestones()
    self.probe: probe_lib.CurvatureProbe | None = None

  # ---- Records ----

  def _meta(self, directory: pathlib.Path) -> records.Meta:
    return records.Meta(
        workload=records.WorkloadFacts.from_json(
            self.workload.describe(), source='Workload.describe()'),
        submission=records.SubmissionFacts(
            name=self.submission.name, spec=self.config.submission),
        hparams=self.submission.hparams.to_dict(), seed=self.config.seed,
        study=self.config.study, trial=self.config.trial,
        regime=records.Regime(**dataclasses.asdict(self.regime)),
        config=dataclasses.asdict(self.config),
        devices=records.Devices(**provenance.devices()),
        versions=provenance.versions(), host=provenance.host(),
        start_time=provenance.now_iso(), run_dir=str(directory))

  def _summary(self, status: Status, wall_s: float,
               error: str | None) -> records.Summary:
    probe = self.probe
    at_solution = probe.at_solution if probe else None
    reached = self.milestones
    return records.Summary(
        status=status,
        time_to_target_s=reached.time_to_target_s,
        steps_to_target=reached.steps_to_target,
        target_metric=f'validation/{self.workload.target_metric_name}',
        target_value=self.workload.target_value,
        solution_step=reached.solution_step,
        sharpness_at_solution=(
            None if at_solution is None else at_solution.sharpness),
        preconditioned_sharpness_at_solution=(
            None if at_solution is None
            else at_solution.preconditioned_sharpness),
        final_step=self.step,
        final_metrics=self.last_metrics,
        submission_time_s=self.clock.elapsed_s,
        eval_time_s=self.times['eval_time_s'],
        probe_time_s=probe.total_seconds if probe else 0.0,
        first_step_s=self.times['first_step_s'],
        wall_time_s=wall_s,
        error=error)

  def run(self, directory: pathlib.Path) -> RunResult:
    start = time.perf_counter()
    if self.writer:
      self.writer.write_meta(self._meta(directory))
    self.progress.message(f'run directory: {directory}')
    error = None
    try:
      status = self._train()
    except _Stop as stop:
      status = stop.status
    except KeyboardInterrupt:
      status = Status.INTERRUPTED
    except Exception as e:  # Recorded, then re-raised below.
      status, error = Status.ERROR, f'{type(e).__name__}: {e}'
      error_trace = traceback.format_exc()
    summary = self._summary(status, time.perf_counter() - start, error)
    if self.writer:
      self.writer.write_summary(summary)
    reached = self.milestones
    if not reached.reached_target:
      target = 'target not reached'
    else:
      target = (f'target reached at step {reached.steps_to_target} after '
                f'{reached.time_to_target_s:.2f}s')
    self.progress.message(
        f'{status.value} after {self.step} steps: submission time '
        f'{summary.submission_time_s:.2f}s, {target}; records in '
        f'{directory}')
    if error:
      raise RuntimeError(f'run failed, recorded in {directory}:\n'
                         f'{error_trace}')
    return RunResult(directory, status, summary)

  # ---- The loop ----

  def _train(self) -> Status:
    config, workload, submission = self.config, self.workload, self.submission
    init_rng, opt_rng, step_rng = jax.random.split(
        jax.random.PRNGKey(config.seed), 3)
    params, model_state = workload.init_model_fn(init_rng)
    params = self.parallel.replicate(params)
    model_state = self.parallel.replicate(model_state)
    opt_state = submission.init_optimizer_state(workload, params, model_state,
                                                opt_rng)
    dataset = workload.dataset(self.regime)
    queue = self._device_batches(dataset)
    self.evaluator = evaluation.Evaluator(
        workload, dataset, self.parallel,
        resident_bytes=int(config.eval_resident_gb * 2**30))
    if config.curvature.enabled:
      self.probe = probe_lib.CurvatureProbe(
          config.curvature, workload, submission, dataset, self.regime,
          self.parallel, self.max_steps)
    self.state = (params, opt_state, model_state)
    self._evaluate()
    keys = _StepKeys(step_rng)
    while True:
      self._check_budget()
      params, opt_state, model_state = self.state
      if self.step == 0:
        first = time.perf_counter()
      else:
        self.clock.resume()
      batch = submission.data_selection(workload, queue, opt_state, params,
                                        model_state, self.step,
                                        keys[self.step])
      out = submission.update_params(workload, params, model_state, batch,
                                     opt_state, self.eval_results, self.step,
                                     keys[self.step])
      self.state = (out.params, out.optimizer_state, out.model_state)
      self.step += 1
      if self.step == 1:
        jax.block_until_ready(self.state)
        self.times['first_step_s'] = time.perf_counter() - first
      if self._sync_due():
        self._synchronise(out.metrics)

  def _device_batches(self, dataset: base.Dataset) -> Iterator[Any]:
    batches = dataset.train_batches(self.regime, self.config.seed)
    if self.regime.full_batch:
      batch = self.parallel.shard_batch(next(batches))
      while True:
        yield batch
    for batch in batches:
      yield self.parallel.shard_batch(batch)

  def _check_budget(self) -> None:
    if self.signals.received:
      raise _Stop(Status.INTERRUPTED)
    if self.step >= self.max_steps or self.clock.elapsed_s >= (
        self.max_runtime_s):
      self._final_measurements()
      raise _Stop(Status.REACHED_TARGET if self.milestones.reached_target
                  else Status.BUDGET_EXHAUSTED)

  def _sync_due(self) -> bool:
    step = self.step
    return (step % self.config.log_every == 0 or self._eval_due() or
            step in self.config.save_preconditioner_at or
            (self.probe is not None and self.probe.due(step)))

  def _eval_due(self) -> bool:
    return (self.step % self.config.eval_every == 0 or
            self.step >= self.max_steps)

  def _synchronise(self, metrics) -> None:
    elapsed = self.clock.pause(self.state)
    loss = _finite_loss(metrics, self.state[0])
    if loss is None:
      self.progress.message(f'non-finite loss or parameters at step '
                            f'{self.step}: diverged')
      raise _Stop(Status.DIVERGED)
    self.progress.step(self.step, elapsed, loss)
    if self.step in self.config.save_preconditioner_at:
      self._save_preconditioner()
    if self._eval_due():
      self._evaluate()
    elif self.probe is not None and self.probe.due(self.step):
      self._probe(records.ProbeReason.SCHEDULE)

  def _evaluate(self) -> None:
    params, opt_state, model_state = self.state
    with clock_lib.Stopwatch() as watch:
      opt_state, params, model_state = self.submission.prepare_for_eval(
          self.workload, params, model_state, opt_state, self.eval_results,
          self.step, jax.random.PRNGKey(0))
      metrics = self.evaluator(params, model_state)
    self.times['eval_time_s'] += watch.seconds
    record = records.EvalRecord(
        step=self.step, submission_time_s=self.clock.elapsed_s,
        train_loss=metrics['train/loss'],
        target_reached=self.workload.has_reached_validation_target(metrics),
        eval_seconds=watch.seconds, metrics=metrics)
    self.eval_results.append((self.step, metrics))
    self.last_metrics = metrics
    if self.writer:
      self.writer.append_eval(record)
    self._act_on(record)

  def _act_on(self, record: records.EvalRecord) -> None:
    """Milestones of an evaluation: stop, report, probe, as they ask."""
    self.milestones, events = self.milestones.after_evaluation(
        step=record.step, submission_time_s=record.submission_time_s,
        train_loss=record.train_loss, target_reached=record.target_reached,
        train_loss_threshold=self.workload.train_loss_threshold)
    if milestones_lib.Event.DIVERGED in events:
      raise _Stop(Status.DIVERGED)
    target = f'validation/{self.workload.target_metric_name}'
    self.progress.step(self.step, self.clock.elapsed_s, record.train_loss,
                       f'{target} {record.metrics[target]:.4f}', force=True)
    at_events = events and self.config.curvature.at_events
    if self.probe is not None and (at_events or self.probe.due(self.step)):
      reason = (records.ProbeReason(events[-1].value) if at_events
                else records.ProbeReason.SCHEDULE)
      self._probe(reason, record.train_loss)
    if (milestones_lib.Event.TARGET in events and
        self.config.stop_at_target):
      self._final_measurements()
      raise _Stop(Status.REACHED_TARGET)

  def _probe(self, reason: records.ProbeReason,
             train_loss: float | None = None) -> None:
    params, opt_state, model_state = self.state
    record = self.probe.measure(self.step, params, model_state, opt_state,
                                reason=reason, train_loss=train_loss)
    if self.writer:
      self.writer.append_probe(record)

  def _final_measurements(self) -> None:
    if not self.eval_results or self.eval_results[-1][0] != self.step:
      self._evaluate()
    if (self.probe is not None and self.config.curvature.at_events and
        self.probe.last_step != self.step):
      self._probe(records.ProbeReason.FINAL)

  def _save_preconditioner(self) -> None:
    diag = self.submission.preconditioner(self.state[1])
    if diag is None:
      raise ValueError(f'{self.submission.name} has no preconditioner to save')
    if self.writer:
      preconditioner_file.save(
          records.preconditioner_path(self.writer.directory, self.step),
          jax.device_get(diag))


def _finite_loss(metrics, params) -> float | None:
  """The step's loss (or the parameter norm) if finite, else None."""
  value = metrics.get('loss') if metrics else None
  value = float(optax.tree.norm(params) if value is None else value)
  return value if math.isfinite(value) else None


class _StepKeys:
  """Per-step PRNG keys, made in blocks so a step costs no key derivation."""

  def __init__(self, rng: jax.Array, block: int = 1024):
    self._rng = rng
    self._block = block
    self._start = -block
    self._keys = None

  def __getitem__(self, step: int) -> np.ndarray:
    if not self._start <= step < self._start + self._block:
      self._start = step - step % self._block
      block_rng = jax.random.fold_in(self._rng, self._start // self._block)
      self._keys = np.asarray(jax.random.split(block_rng, self._block))
    return self._keys[step - self._start]
