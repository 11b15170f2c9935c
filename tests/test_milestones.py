"""The milestone rules of an evaluation, each with a hand-made answer."""

import math

from harness import milestones

Event = milestones.Event


def _after(state, step, loss, reached, *, time_s=None, threshold=0.1):
  time_s = float(step) if time_s is None else time_s
  # The compile-free time is the AlgoPerf time less a fixed first step.
  return state.after_evaluation(
      step=step, submission_time_s=time_s, compile_free_time_s=time_s - 0.5,
      train_loss=loss, target_reached=reached,
      train_loss_threshold=threshold)


def test_target_is_fixed_by_the_first_evaluation_that_reaches_it():
  state, events = _after(milestones.Milestones(), 0, 2.0, False)
  assert events == () and not state.reached_target
  state, events = _after(state, 50, 1.0, True, time_s=4.5)
  assert events == (Event.TARGET,)
  assert (state.steps_to_target, state.time_to_target_s) == (50, 4.5)
  assert state.time_to_target_compile_free_s == 4.0
  # Reaching it again later changes nothing.
  state, events = _after(state, 100, 0.9, True, time_s=9.0)
  assert events == ()
  assert (state.steps_to_target, state.time_to_target_s) == (50, 4.5)
  assert state.time_to_target_compile_free_s == 4.0


def test_solution_is_the_first_train_loss_below_the_threshold():
  state, events = _after(milestones.Milestones(), 10, 0.1, False)
  assert events == () and state.solution_step is None  # Not strictly below.
  state, events = _after(state, 20, 0.05, False)
  assert events == (Event.SOLUTION,) and state.solution_step == 20
  state, events = _after(state, 30, 0.01, False)
  assert events == () and state.solution_step == 20


def test_target_and_solution_at_once_come_in_that_order():
  state, events = _after(milestones.Milestones(), 40, 0.01, True)
  assert events == (Event.TARGET, Event.SOLUTION)
  assert state.steps_to_target == state.solution_step == 40


def test_a_non_finite_train_loss_is_divergence_and_nothing_else():
  start = milestones.Milestones()
  for loss in (math.nan, math.inf, -math.inf):
    state, events = _after(start, 10, loss, True)
    assert events == (Event.DIVERGED,)
    assert state == start  # The target "reached" by a NaN model never counts.
