"""The timed training loop: `train(config) -> RunResult`.

The loop calls the submission's `data_selection` and `update_params` under
the submission clock and synchronises only every `log_every` steps (and at
evaluations, probes and the end), so the harness adds a Python call and a
dictionary lookup to a bare jitted step. The scored submission time is
AlgoPerf's: the clock's steady loop plus the run's first step and
`prepare_for_eval` (see `harness.clock`). At each synchronisation it checks
that the loss is finite, and stops the run as `diverged` if not.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import shutil
import time
from typing import Any

import jax
import optax

from harness import checkpoints as checkpoints_lib
from harness import clock as clock_lib
from harness import config as config_lib
from harness import decisions
from harness import distributed
from harness import evaluation
from harness import input_queue
from harness import milestones as milestones_lib
from harness import outcome
from harness import pauses
from harness import probe as probe_lib
from harness import preflight
from harness import progress as progress_lib
from harness import provenance
from harness import records
from harness import resume as resume_lib
from harness import run_directory
from harness import step_checks
from harness import step_keys
from harness import tensorboard_log
from harness import termination
from submissions import api
from workloads import base

Status = records.Status


RunResult = outcome.RunResult
RunFailed = outcome.RunFailed

# The times kept beside the clock, in the checkpoint's bookkeeping.
_NO_TIME = {'first_step_s': 0.0, 'prepare_for_eval_s': 0.0,
            'eval_time_s': 0.0}


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
    The run directory, status and summary.

  Raises:
    RunFailed: an exception inside the loop, recorded as status `error`
      (and chained as the cause).
  """
  setup = preflight.set_up(config, workload, submission)
  config, workload, submission = setup.config, setup.workload, setup.submission
  directory = records.run_dir(config.experiment_dir, workload.name,
                              submission.name, config.study, config.trial)
  if config.tensorboard:  # Refused before the run directory is touched.
    tensorboard_log.check_available()
  opened, resuming = _open(directory, setup)
  writer = None if opened is None else tensorboard_log.mirror(
      opened.writer, config.tensorboard)
  try:
    loop = _TrainingLoop(setup, writer, directory)
    with termination.StopSignals(loop.emergency_stop) as signals:
      loop.signals = signals
      return loop.run(resuming)
  finally:
    if isinstance(writer, tensorboard_log.Mirror):
      writer.close()  # The event file; `opened` closes the records.
    if opened is not None:
      opened.close()


def _open(directory: pathlib.Path, setup: preflight.Setup
          ) -> tuple[run_directory.Opened | None, bool]:
  """Process 0 locks the run directory and decides whether the run starts
  or resumes; the others, which write nothing, follow its decision.

  Returns:
    Process 0's open directory (None elsewhere) and whether to resume.

  Raises:
    RunDirectoryError: process 0 refused the directory (elsewhere, that it
      did, without its reason).
  """
  opened = refusal = None
  if jax.process_index() == 0:
    try:
      opened = run_directory.open_run(
          directory, setup.config, source_sha256=setup.source_sha256,
          started=provenance.now_iso(), processes=jax.process_count())
    except run_directory.RunDirectoryError as e:
      refusal = e
  decision = distributed.from_process_zero(
      -1 if refusal else int(bool(opened and opened.resume)))
  if decision < 0:
    raise refusal or run_directory.RunDirectoryError(
        f'process 0 cannot use {directory}; its message says why')
  return opened, bool(decision)


class _TrainingLoop(pauses.Pauses, decisions.Decisions):
  """The state of one run between its start and its summary."""

  def __init__(self, setup: preflight.Setup, writer: records.RunWriter | None,
               directory: pathlib.Path):
    config, workload = setup.config, setup.workload
    self.setup = setup
    self.config = config
    self.workload = workload
    self.submission = setup.submission
    self.regime = setup.regime
    self.parallel = setup.parallel
    self.dataset = setup.dataset
    self.writer = writer
    self.directory = directory
    self.signals: termination.StopSignals | None = None
    self.checkpoints = checkpoints_lib.Checkpoints(
        directory / records.CHECKPOINT_DIR)
    self.max_steps = config.max_steps or workload.step_budget
    self.max_runtime_s = config.max_runtime_s or (
        workload.runtime_budget_s * config.tuning_ruleset.budget_factor)
    self.clock = clock_lib.SubmissionClock()
    # What every process acts on (harness.distributed): agreed at each
    # synchronisation of a run of several processes.
    self.agreement = distributed.Agreement()
    self.agreed = distributed.Votes()
    self.stopped_by: int | None = None
    self.progress = progress_lib.Progress(
        self.max_steps, quiet=config.quiet or writer is None,
        log_every=config.log_every,
        stops_at_target=config.stop_at_target,
        max_runtime_s=self.max_runtime_s)
    self.step = 0
    self.start_step = 0  # The first step of this launch.
    self.prepared_in_launch = False  # prepare_for_eval has compiled.
    self.batches_drawn = 0  # Before the queue opens; then `queue.drawn`.
    self.queue: input_queue.InputQueue | None = None
    self.times = dict(_NO_TIME)
    self.earlier_wall_s = 0.0  # Wall time of earlier launches of the run.
    self.resumed_at: tuple[int, ...] = ()
    self.eval_results: list[tuple[int, dict[str, float]]] = []
    self.last_metrics: dict[str, float] = {}
    self.milestones = milestones_lib.Milestones()
    self.probe: probe_lib.CurvatureProbe | None = None
    # Finds the solution step by step until it is found (full batch only).
    self.solution: pauses.SolutionLatch | None = None
    self.boundary: resume_lib.Boundary | None = None
    self.in_step = False
    # Whose failure an exception is, for the summary (see ErrorKind).
    self.phase = records.ErrorKind.SETUP
    self.last_checkpoint = time.monotonic()
    self.started = time.perf_counter()

  # ---- Records ----

  def _wall_s(self) -> float:
    return self.earlier_wall_s + time.perf_counter() - self.started

  def _submission_time_s(self) -> float:
    """AlgoPerf's training time: compilation and prepare_for_eval in it."""
    return (self.clock.elapsed_s + self.times['first_step_s'] +
            self.times['prepare_for_eval_s'])

  def _summary(self, status: Status, error: str | None) -> records.Summary:
    probe = self.probe
    at_solution = probe.at_solution if probe else None
    reached = self.milestones
    return records.Summary(
        status=status,
        time_to_target_s=reached.time_to_target_s,
        time_to_target_compile_free_s=reached.time_to_target_compile_free_s,
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
        submission_time_s=self._submission_time_s(),
        compile_free_time_s=self.clock.elapsed_s,
        eval_time_s=self.times['eval_time_s'],
        probe_time_s=probe.total_seconds if probe else 0.0,
        first_step_s=self.times['first_step_s'],
        prepare_for_eval_s=self.times['prepare_for_eval_s'],
        wall_time_s=self._wall_s(),
        timed_compiles=self.clock.compiles,
        resumed_at_steps=self.resumed_at,
        error=error, error_kind=self.phase if error else None)

  def run(self, resuming: bool) -> RunResult:
    error = failure = None
    try:
      status = self._train(resuming)
    except checkpoints_lib.CheckpointMismatch as e:
      # The run on disk stays as it was, to be resumed by the right code.
      raise run_directory.RunDirectoryError(
          f'cannot resume: {e}; pass --overwrite to start again') from e
    except outcome.Stop as stop:
      status = stop.status
    except KeyboardInterrupt:  # Where the stop signals are not ours.
      status = Status.INTERRUPTED
    except Exception as e:  # Recorded, then re-raised below.
      lost = distributed.lost_process(e)
      if lost is not None:  # Not the submission's failure.
        e, self.phase = lost, records.ErrorKind.HARNESS
      status, error, failure = Status.ERROR, f'{type(e).__name__}: {e}', e
      if isinstance(e, step_checks.SubmissionOutputError):
        self.phase = records.ErrorKind.SUBMISSION
    summary = self._summary(status, error)
    if self.writer:
      self.writer.write_summary(summary)
    self.checkpoints.close()
    if self.writer and status in run_directory.FINISHED:
      # Nothing is left to resume; a checkpoint is the size of the state.
      shutil.rmtree(self.directory / records.CHECKPOINT_DIR,
                    ignore_errors=True)
    self.progress.close(progress_lib.ending_line(summary, self.directory))
    if failure is not None:
      raise RunFailed(self.directory, error) from failure
    # A signal stops a run at the next step; one that came too late to
    # stop it still tells the scheduler that it was sent.
    received = self.signals.signum if self.signals else None
    return RunResult(self.directory, status, summary,
                     stopped_by=self.stopped_by or received)

  # ---- Start and resume ----

  def _start(self, resuming: bool) -> None:
    """Initial state, then either the checkpoint's or step 0's records."""
    config, workload, submission = self.config, self.workload, self.submission
    init_rng, opt_rng, self.step_rng = jax.random.split(
        jax.random.PRNGKey(config.seed), 3)
    params, model_state = workload.init_model_fn(init_rng)
    params = self.parallel.replicate(params)
    model_state = self.parallel.replicate(model_state)
    opt_state = self.parallel.place(submission.init_optimizer_state(
        workload, params, model_state, opt_rng))
    self.state = (params, opt_state, model_state)
    self.contract = step_checks.StepContract.of(
        params, model_state, chunk_axis=submission.batches_have_chunk_axis)
    self.evaluator = evaluation.Evaluator(
        workload, self.dataset, self.parallel,
        resident_bytes=int(config.eval_resident_gb * 2**30))
    if config.curvature.enabled:
      self.probe = probe_lib.CurvatureProbe(
          config.curvature, workload, submission, self.dataset, self.regime,
          self.parallel, self.max_steps)
    step = self.checkpoints.latest_step() if resuming else None
    self.progress.hparams(self.submission.hparams.to_dict())
    if step is None:
      if self.writer:
        if resuming:  # Nothing to resume from: start the run again.
          self.writer.clear()
        self.writer.write_meta(self.setup.meta(self.directory))
      self.progress.message(f'run directory: {self.directory}')
      self._evaluate()
    else:
      self._resume(step)

  def _resume(self, step: int) -> None:
    if self.writer:
      self.writer.truncate_from(step)
    probe = self.probe
    boundary = resume_lib.restore(
        self.checkpoints, step, self.state,
        lambda name: probe.warm_like(self.state[0]))
    book = boundary.bookkeeping
    self.state = boundary.state
    self.step = self.start_step = step
    self.batches_drawn = book['batches_drawn']
    self.clock = clock_lib.SubmissionClock(book['submission_time_s'],
                                           book['timed_compiles'])
    self.times = {**_NO_TIME, **book['times']}
    self.earlier_wall_s = book['wall_time_s']
    self.resumed_at = tuple(book['resumed_at_steps']) + (step,)
    self.milestones = boundary.milestones
    earlier = resume_lib.EarlierRecords.read(self.directory)
    self.eval_results = [(r.step, r.metrics) for r in earlier.evaluations]
    self.last_metrics = dict(self.eval_results[-1][1]) if (
        self.eval_results) else {}
    if probe is not None:
      probe.restore(book['probe'], boundary.warm, earlier.at_solution)
    self.progress.message(
        f'resuming {self.directory} at step {step} (submission time '
        f'{self._submission_time_s():.2f}s so far)')
    self._actions()

  def _bookkeeping(self) -> dict[str, Any]:
    return {
        'step': self.step,
        'batches_drawn': self.queue.drawn if self.queue else (
            self.batches_drawn),
        'submission_time_s': self.clock.elapsed_s,
        'timed_compiles': self.clock.compiles, 'times': dict(self.times),
        'wall_time_s': self._wall_s(),
        'resumed_at_steps': list(self.resumed_at),
        'milestones': dataclasses.asdict(self.milestones),
        'probe': self.probe.bookkeeping() if self.probe else None}

  def _mark_boundary(self) -> resume_lib.Boundary:
    """The run before this step's actions (the clock is paused)."""
    if self.boundary is None or self.boundary.step != self.step:
      warm = self.probe.warm_vectors() if self.probe else {}
      self.boundary = resume_lib.Boundary(self.step, self.state, warm,
                                          self._bookkeeping())
    return self.boundary

  def _checkpoint(self) -> None:
    with clock_lib.Stopwatch() as watch:
      resume_lib.save(self.checkpoints, self._mark_boundary())
    self.last_checkpoint = time.monotonic()
    self.progress.message(f'checkpoint at step {self.step} '
                          f'({watch.seconds:.2f}s)')

  def emergency_stop(self, signum: int) -> None:
    """Called by the stop watcher when the loop is stuck in native code.

    It writes the summary; then, unless the loop is inside a step (whose
    inputs may already be donated), the boundary marked for the current
    step is still whole and is saved; the process ends with 128 + signum.

    One process of several cannot stop alone: the others would lose it at
    their next collective. It only writes the summary then (process 0), in
    case the scheduler kills the run before its next synchronisation,
    where every process stops (`decisions.Decisions._check_budget`).
    """
    alone = self.agreement.alone
    try:
      if self.writer:
        self.writer.write_summary(self._summary(Status.INTERRUPTED, None))
      boundary = self.boundary
      if (alone and not self.in_step and boundary is not None and
          boundary.step == self.step):
        resume_lib.save(self.checkpoints, boundary)
      if alone:
        self.progress.close(
            f'stopped by signal {signum} at step {self.step}; records in '
            f'{self.directory}')
    finally:
      if alone:
        termination.hard_exit(signum)

  # ---- The loop ----

  def _train(self, resuming: bool) -> Status:
    self._start(resuming)
    self._agree()  # The restored times, and signals that came meanwhile.
    submission, workload = self.submission, self.workload
    queue = self.queue = input_queue.InputQueue(
        self.dataset, self.regime, self.config.seed, self.parallel,
        chunk_axis=submission.batches_have_chunk_axis,
        drawn=self.batches_drawn)
    keys = step_keys.StepKeys(self.step_rng)
    self._start_solution_latch()
    while True:
      self._check_budget()
      params, opt_state, model_state = self.state
      first_of_launch = self.step == self.start_step
      if first_of_launch:
        first = clock_lib.charged_now()  # Apart from the steady clock.
      else:
        self.clock.resume()
      self.in_step = True
      self.phase = records.ErrorKind.SUBMISSION
      self.boundary = None  # Its arrays may be donated from here on.
      batch = submission.data_selection(workload, queue, opt_state, params,
                                        model_state, self.step,
                                        keys[self.step])
      if first_of_launch:
        self.contract.check_batch(batch, self.step)
      try:
        out = submission.update_params(workload, params, model_state, batch,
                                       opt_state, self.eval_results,
                                       self.step, keys[self.step])
      except api.TrainingComplete:  # The step made no update.
        self.in_step = False
        self.phase = records.ErrorKind.HARNESS
        self.progress.message(f'{submission.name} ended training at step '
                              f'{self.step}')
        self._finish(Status.TRAINING_COMPLETE)
      self.state = (out.params, out.optimizer_state, out.model_state)
      self.step += 1
      self.in_step = False
      self.phase = records.ErrorKind.HARNESS
      if first_of_launch:
        # Compilation and one execution. Only the run's first counts: a
        # resume's recompilation repeats what is counted already.
        jax.block_until_ready(self.state)
        if self.start_step == 0:
          self.times['first_step_s'] = clock_lib.charged_now() - first
      if self.solution is not None:  # Compiled after the first step's timing.
        self._latch_solution(out.metrics)
      sync = self._sync_due()
      if first_of_launch or sync:
        # Metadata only: shapes, dtypes and order, never device data.
        self.contract.check_batch(batch, self.step - 1)
        self.contract.check_output(out, self.step - 1)
      if sync:
        self._synchronise(out.metrics)

  def _finish(self, unreached: Status) -> None:
    """Ends the run with its final measurements: `unreached` is the
    status unless the target was reached."""
    self.clock.pause(self.state)  # Still running when time ran out.
    self._agree()
    self._final_measurements()
    raise outcome.Stop(Status.REACHED_TARGET
                       if self.milestones.reached_target else unreached)

  def _synchronise(self, metrics) -> None:
    self.clock.pause(self.state)
    loss = _step_loss(metrics)
    if self._agree(_diverged(loss, self.state[0])).diverged:
      self.progress.message(f'non-finite loss or parameters at step '
                            f'{self.step}: diverged')
      raise outcome.Stop(Status.DIVERGED)
    self.progress.step(self.step, self._submission_time_s(), loss)
    self._collect_solution()
    if self._checkpoint_due():
      self._checkpoint()
    self._actions()

  def _actions(self) -> None:
    """What a step asks for once its state is synchronised."""
    self._mark_boundary()
    if self.step in self.config.save_preconditioner_at:
      self._save_preconditioner()
    if self._eval_due():
      self._evaluate()
    elif self.probe is not None and self.probe.due(self.step):
      self._probe(records.ProbeReason.SCHEDULE)

def _step_loss(metrics) -> float | None:
  """The loss the step's update returned; None when it returned none."""
  value = metrics.get('loss') if metrics else None
  return None if value is None else float(value)


def _diverged(loss: float | None, params) -> bool:
  # Without a loss, non-finite parameters show the divergence; their norm
  # is never reported as a loss.
  value = float(optax.tree.norm(params)) if loss is None else loss
  return not math.isfinite(value)
