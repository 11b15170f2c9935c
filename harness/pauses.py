"""What the training loop pauses for: evaluations, probes, the solution.

A part of `runner._TrainingLoop`, kept apart because it is the loop's
measurement, not its training: everything here runs with the submission
clock paused (`harness.clock`), except what `prepare_for_eval` charges as
AlgoPerf does. The solution is judged at every step in the full-batch
regime (`harness.solution`) and at evaluations otherwise
(`harness.milestones`); the probe measures at it either way.
"""

from __future__ import annotations

from typing import Any

import jax

from harness import clock as clock_lib
from harness import milestones as milestones_lib
from harness import outcome
from harness import records
from harness import solution as solution_lib
from submissions import preconditioner_file

Status = records.Status
SolutionLatch = solution_lib.SolutionLatch


class Pauses:
  """The loop's evaluations, probes and solution (a mixin of the loop,
  whose attributes it reads: see `runner._TrainingLoop`)."""

  def _evaluate(self) -> None:
    params, opt_state, model_state = self._prepare_for_eval()
    with clock_lib.Stopwatch() as watch:
      metrics = self.evaluator(params, model_state)
    self.times['eval_time_s'] += watch.seconds
    record = records.EvalRecord(
        step=self.step, submission_time_s=self._submission_time_s(),
        compile_free_time_s=self.clock.elapsed_s,
        train_loss=metrics['train/loss'],
        target_reached=self.workload.has_reached_validation_target(metrics),
        eval_seconds=watch.seconds, metrics=metrics)
    self.eval_results.append((self.step, metrics))
    self.last_metrics = metrics
    if self.writer:
      self.writer.append_eval(record)
    self._act_on(record)

  def _prepare_for_eval(self) -> tuple[Any, Any, Any]:
    """The submission's `prepare_for_eval`, timed as AlgoPerf times it;
    training goes on from the state it returns, as in AlgoPerf's runner.

    The marked boundary keeps the state from before it: a run resumed
    there prepares again, as the uninterrupted run did.
    """
    params, opt_state, model_state = self.state
    phase, self.phase = self.phase, records.ErrorKind.SUBMISSION
    with clock_lib.Stopwatch(scored=True) as prepare:
      prepared = self.submission.prepare_for_eval(
          self.workload, params, model_state, opt_state, self.eval_results,
          self.step, jax.random.PRNGKey(0))
      jax.block_until_ready(prepared)
    self.contract.check_prepared(prepared, self.step)
    self.phase = phase
    if self.start_step == 0 or self.prepared_in_launch:  # As the first step.
      self.times['prepare_for_eval_s'] += prepare.seconds
    self.prepared_in_launch = True
    self._agree()  # The slowest process's time, in the record.
    opt_state, params, model_state = prepared
    self.state = (params, opt_state, model_state)
    return self.state

  def _act_on(self, record: records.EvalRecord) -> None:
    """Milestones of an evaluation: stop, report, probe, as they ask."""
    self.milestones, events = self.milestones.after_evaluation(
        step=record.step, submission_time_s=record.submission_time_s,
        compile_free_time_s=record.compile_free_time_s,
        train_loss=record.train_loss, target_reached=record.target_reached,
        train_loss_threshold=self.workload.train_loss_threshold,
        judges_solution=self.solution is None)
    if milestones_lib.Event.DIVERGED in events:
      raise outcome.Stop(Status.DIVERGED)
    self.progress.evaluation(
        self.step, record.metrics,
        f'validation/{self.workload.target_metric_name}',
        self.workload.target_value)
    at_events = events and self.config.curvature.at_events
    if self.probe is not None and (at_events or self.probe.due(self.step)):
      reason = (records.ProbeReason(events[-1].value) if at_events
                else records.ProbeReason.SCHEDULE)
      self._probe(reason, record.train_loss)
    if (milestones_lib.Event.TARGET in events and
        self.config.stop_at_target):
      self._final_measurements()
      raise outcome.Stop(Status.REACHED_TARGET)

  def _probe(self, reason: records.ProbeReason,
             train_loss: float | None = None) -> None:
    params, opt_state, model_state = self.state
    self._probe_at(self.step, params, opt_state, model_state, reason,
                   train_loss)

  def _probe_at(self, step: int, params, opt_state, model_state,
                reason: records.ProbeReason,
                train_loss: float | None = None) -> None:
    self.progress.probe_starting()
    record = self.probe.measure(step, params, model_state, opt_state,
                                reason=reason, train_loss=train_loss)
    if self.writer:
      self.writer.append_probe(record)
    self.progress.probe(record)

  def _final_measurements(self) -> None:
    self._collect_solution()
    evaluated = bool(self.eval_results) and self.eval_results[-1][0] == (
        self.step)
    if self.solution is not None:
      # No update measured the final state's loss: its evaluation decides.
      self.solution = None
      if evaluated:
        self._solution_from(self.eval_results[-1][1]['train/loss'])
    if not evaluated:
      self._evaluate()
    if (self.probe is not None and self.config.curvature.at_events and
        self.probe.last_step != self.step):
      self._probe(records.ProbeReason.FINAL)

  # ---- The solution, step by step (harness.solution) ----

  def _start_solution_latch(self) -> None:
    """In the full-batch regime each update's loss is the training loss, so
    every step is judged; other regimes judge at evaluations."""
    if self.regime.full_batch and self.milestones.solution_step is None:
      self.solution = solution_lib.SolutionLatch(
          self.workload.train_loss_threshold, self.state, self.step,
          keep_state=self.probe is not None and (
              self.config.curvature.at_events))

  def _latch_solution(self, metrics) -> None:
    loss = metrics.get('loss') if metrics else None
    if loss is None:  # Nothing to judge by: evaluations decide.
      self.solution = None
    else:
      self.solution.after_update(loss, self.state)

  def _collect_solution(self) -> None:
    """Reads what the latch found (the loop is synchronised), and probes at
    the solution's state."""
    found = self.solution.found() if self.solution is not None else None
    if found is None:
      return
    self.solution = None
    self.milestones = self.milestones.with_solution(found.step)
    self.progress.message(f'solution (train loss below '
                          f'{self.workload.train_loss_threshold:g}) at step '
                          f'{found.step}')
    if found.state is not None:
      params, opt_state, model_state = found.state
      self._probe_at(found.step, params, opt_state, model_state,
                     records.ProbeReason.SOLUTION)

  def _solution_from(self, train_loss: float) -> None:
    """Judges the current step's evaluated train loss for the solution."""
    self.milestones, solved = self.milestones.judge_solution(
        self.step, train_loss, self.workload.train_loss_threshold)
    if solved and self.probe is not None and self.config.curvature.at_events:
      self._probe(records.ProbeReason.SOLUTION, train_loss)

  def _save_preconditioner(self) -> None:
    diag = self.submission.preconditioner(self.state[1])
    if diag is None:
      raise ValueError(f'{self.submission.name} has no preconditioner to save')
    if self.writer:
      preconditioner_file.save(
          records.preconditioner_path(self.writer.directory, self.step),
          jax.device_get(diag))
