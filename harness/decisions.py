"""When the training loop stops, synchronises and checkpoints.

A part of `runner._TrainingLoop`, kept apart because each of these
decisions must be taken alike by every process of a run over several
hosts (`harness.distributed`): the loop synchronises at steps every
process knows (`_sync_due`), and there the processes agree (`_agree`) on
what each observed on its own host: a stop signal, the time since the last
checkpoint, the loss's divergence and the clock, which becomes the slowest
process's. Alone, a process decides on what it observes.
"""

from __future__ import annotations

import time

from harness import distributed
from harness import outcome
from harness import records

Status = records.Status


class Decisions:
  """The loop's stop, synchronisation and checkpoint decisions (a mixin of
  the loop, whose attributes it reads: see `runner._TrainingLoop`)."""

  def _check_budget(self) -> None:
    """Before each step: stops the run at a signal or an exhausted budget.

    Alone, a process decides on what it sees now; over several processes
    all decide on what they agreed at the last synchronisation, so all
    stop at the same step.
    """
    if self.signals is not None and self.signals.received:
      # Taken in hand: no emergency stop, unless the loop gets stuck before
      # it acts (at the next synchronisation, over several processes).
      self.signals.acknowledge()
    decided = self._votes() if self.agreement.alone else self.agreed
    if decided.signal:
      self.stopped_by = decided.signal
      self.clock.pause(self.state)
      self._checkpoint()
      raise outcome.Stop(Status.INTERRUPTED)
    if (self.step >= self.max_steps or
        decided.submission_time_s >= self.max_runtime_s):
      self._finish(Status.BUDGET_EXHAUSTED)

  def _votes(self, diverged: bool = False) -> distributed.Votes:
    """What this process observes now (see `distributed.Votes`)."""
    every_s = self.config.checkpoint_every_s
    received = self.signals is not None and self.signals.received
    return distributed.Votes(
        signal=self.signals.signum if received else 0, diverged=diverged,
        checkpoint_due=every_s > 0 and (
            time.monotonic() - self.last_checkpoint >= every_s),
        clock_s=self.clock.elapsed_s, first_step_s=self.times['first_step_s'],
        prepare_for_eval_s=self.times['prepare_for_eval_s'])

  def _agree(self, diverged: bool = False) -> distributed.Votes:
    """Every process takes the same decisions and times: the slowest
    process's (the clock is paused)."""
    self.agreed = self.agreement(self._votes(diverged))
    self.clock.adopt(self.agreed.clock_s)
    self.times.update(first_step_s=self.agreed.first_step_s,
                      prepare_for_eval_s=self.agreed.prepare_for_eval_s)
    return self.agreed

  def _sync_due(self) -> bool:
    step, every = self.step, self.config.checkpoint_every
    return (step % self.config.log_every == 0 or self._eval_due() or
            step in self.config.save_preconditioner_at or
            (every > 0 and step % every == 0) or
            (self.probe is not None and self.probe.due(step)))

  def _eval_due(self) -> bool:
    return (self.step % self.config.eval_every == 0 or
            self.step >= self.max_steps)

  def _checkpoint_due(self) -> bool:
    """By steps, or by wall time as the processes agreed (`_agree`)."""
    every = self.config.checkpoint_every
    return self.start_step < self.step < self.max_steps and (
        (every > 0 and self.step % every == 0) or self.agreed.checkpoint_due)
