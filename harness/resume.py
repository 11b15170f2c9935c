"""What a run saves to continue later, and how it takes it back.

A checkpoint is taken at a step boundary: the training state after `step`
updates and the run's bookkeeping as it stood before that step's
evaluation, probe or preconditioner save. A resumed run therefore drops the
records of steps >= `step`, restores the state, and does the step's actions
again, deterministically, so its records equal an uninterrupted run's except
for timings. The bookkeeping is the clock's totals (as big_vision's Chrono
keeps them, so submission time adds up across restarts), the milestones
reached, how many training batches were drawn (the data order's position;
per-step PRNG keys derive from the seed and the step), the probe's totals
and which warm-start vectors it holds.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from harness import milestones as milestones_lib
from harness import records


@dataclasses.dataclass(frozen=True)
class Boundary:
  """A run as it stood at the start of one step's actions.

  Attributes:
    step: updates made so far.
    state: (params, optimizer state, model state).
    warm: the probe's warm-start eigenvectors by name ('raw', 'pre').
    bookkeeping: the JSON part (see the module docstring).
  """

  step: int
  state: tuple[Any, Any, Any]
  warm: dict[str, Any]
  bookkeeping: dict[str, Any]

  @property
  def milestones(self) -> milestones_lib.Milestones:
    return milestones_lib.Milestones(**self.bookkeeping['milestones'])

  def tree(self) -> dict[str, Any]:
    params, opt_state, model_state = self.state
    return {'params': params, 'opt_state': opt_state,
            'model_state': model_state, 'warm': self.warm}


def save(checkpoints, boundary: Boundary) -> None:
  checkpoints.save(boundary.step, boundary.tree(), boundary.bookkeeping)


def restore(checkpoints, step: int, like_state: tuple[Any, Any, Any],
            like_warm) -> Boundary:
  """The boundary saved at `step`.

  Args:
    checkpoints: the run's `checkpoints.Checkpoints`.
    step: a saved step.
    like_state: freshly initialised (params, optimizer state, model state),
      giving structure, dtypes and shardings.
    like_warm: name -> warm-start vectors like those the probe makes, for
      the names the checkpoint's bookkeeping lists.
  """
  bookkeeping = checkpoints.bookkeeping(step)
  names = bookkeeping['probe']['warm'] if bookkeeping.get('probe') else []
  like = Boundary(step, like_state, {n: like_warm(n) for n in names},
                  bookkeeping).tree()
  tree, bookkeeping = checkpoints.restore(step, like)
  state = (tree['params'], tree['opt_state'], tree['model_state'])
  return Boundary(step, state, dict(tree['warm']), bookkeeping)


@dataclasses.dataclass(frozen=True)
class EarlierRecords:
  """What a resumed run takes back from its own records before `step`."""

  evaluations: tuple[records.EvalRecord, ...]
  at_solution: records.ProbeRecord | None

  @classmethod
  def read(cls, directory: pathlib.Path) -> EarlierRecords:
    evaluations, _ = records.read_jsonl(directory / records.METRICS_FILE,
                                        records.EvalRecord)
    probes, _ = records.read_jsonl(directory / records.CURVATURE_FILE,
                                   records.ProbeRecord)
    solution = [p for p in probes if p.reason is records.ProbeReason.SOLUTION]
    return cls(tuple(evaluations), solution[-1] if solution else None)
