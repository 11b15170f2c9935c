"""A run's training curve: the loss and the target metric as it trained.

Drawn from the records only. Evaluations (`metrics.jsonl`) carry the step,
the submission time, the training loss and the validation metrics; probes
(`curvature.jsonl`) add the training loss at more steps, but no time, so
they extend the curve against steps only.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from harness.records import EvalRecord, ProbeRecord, finite


@dataclasses.dataclass(frozen=True)
class TrainingCurve:
  """One run's curve, sorted by step; None where a value is not finite.

  Attributes:
    eval_steps: steps of the evaluations.
    eval_times_s: their submission time.
    eval_train_loss: the training loss each evaluation recorded.
    target_metric: the validation target metric at each evaluation.
    loss_steps: steps with a training loss, from evaluations and probes.
    loss: the training loss at `loss_steps`.
  """

  eval_steps: tuple[int, ...] = ()
  eval_times_s: tuple[float, ...] = ()
  eval_train_loss: tuple[float | None, ...] = ()
  target_metric: tuple[float | None, ...] = ()
  loss_steps: tuple[int, ...] = ()
  loss: tuple[float | None, ...] = ()


def training_curve(metrics: Sequence[EvalRecord],
                   curvature: Sequence[ProbeRecord],
                   target_metric: str) -> TrainingCurve:
  """The curve of one run.

  Args:
    metrics: the run's evaluations (of one step, the first written counts).
    curvature: the run's probes.
    target_metric: the `<split>/<metric>` key of the validation target, e.g.
      `validation/accuracy` (meta.json `workload.target_metric`).

  Returns:
    The curve, sorted by step.
  """
  evals: dict[int, EvalRecord] = {}
  for record in metrics:
    evals.setdefault(record.step, record)
  ordered = [evals[s] for s in sorted(evals)]
  loss = {p.step: finite(p.train_loss) for p in curvature}
  loss.update({e.step: finite(e.train_loss) for e in ordered})
  return TrainingCurve(
      eval_steps=tuple(e.step for e in ordered),
      eval_times_s=tuple(float(e.submission_time_s) for e in ordered),
      eval_train_loss=tuple(finite(e.train_loss) for e in ordered),
      target_metric=tuple(finite(e.metrics.get(target_metric))
                          for e in ordered),
      loss_steps=tuple(sorted(loss)),
      loss=tuple(loss[s] for s in sorted(loss)))
