"""What an evaluation means for a run: target, solution or divergence.

A pure piece of the training loop, so that each rule has its own unit test:
the first evaluation that reaches the validation target fixes the times
(AlgoPerf's and the compile-free one, see `harness.clock`) and steps to
target; the first whose train loss falls below the workload's threshold is
the solution (where the sharpness at solution is measured) unless the run
finds its solution step by step on the device (`harness.solution`); a
non-finite train loss is divergence.
"""

from __future__ import annotations

import dataclasses
import enum
import math


class Event(str, enum.Enum):
  """A milestone an evaluation reached, in the order they are checked."""

  TARGET = 'target'
  SOLUTION = 'solution'
  DIVERGED = 'diverged'


@dataclasses.dataclass(frozen=True)
class Milestones:
  """What a run has reached so far.

  Attributes:
    time_to_target_s: submission time (AlgoPerf's, the one scored) at the
      first evaluation that reached the target; None before.
    time_to_target_compile_free_s: the compile-free time there; None before.
    steps_to_target: its step; None before.
    solution_step: the first step with train loss below the workload's
      threshold (every step in the full-batch regime, see
      `harness.solution`; else the first evaluated one); None before.
  """

  time_to_target_s: float | None = None
  time_to_target_compile_free_s: float | None = None
  steps_to_target: int | None = None
  solution_step: int | None = None

  @property
  def reached_target(self) -> bool:
    return self.steps_to_target is not None

  def after_evaluation(self, *, step: int, submission_time_s: float,
                       compile_free_time_s: float, train_loss: float,
                       target_reached: bool, train_loss_threshold: float,
                       judges_solution: bool = True
                       ) -> tuple[Milestones, tuple[Event, ...]]:
    """The milestones after one evaluation, and the ones it newly reached.

    A non-finite train loss gives only `Event.DIVERGED`: nothing else an
    evaluation of a diverged model says counts. With `judges_solution`
    False the solution is found elsewhere (`with_solution`), and the
    evaluation's train loss does not decide it.
    """
    if not math.isfinite(train_loss):
      return self, (Event.DIVERGED,)
    events, new = [], self
    if target_reached and not self.reached_target:
      new = dataclasses.replace(
          new, time_to_target_s=submission_time_s,
          time_to_target_compile_free_s=compile_free_time_s,
          steps_to_target=step)
      events.append(Event.TARGET)
    if judges_solution:
      new, solved = new.judge_solution(step, train_loss, train_loss_threshold)
      if solved:
        events.append(Event.SOLUTION)
    return new, tuple(events)

  def judge_solution(self, step: int, train_loss: float,
                     train_loss_threshold: float) -> tuple[Milestones, bool]:
    """The milestones with the solution at `step` if its train loss is the
    first below the threshold, and whether it is."""
    if train_loss < train_loss_threshold and self.solution_step is None:
      return self.with_solution(step), True
    return self, False

  def with_solution(self, step: int) -> Milestones:
    """The milestones with the solution at `step` (the first one stays)."""
    if self.solution_step is not None:
      return self
    return dataclasses.replace(self, solution_step=step)
