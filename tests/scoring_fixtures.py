"""Hand-made run directories for the scoring tests.

`write_run` writes a run through `harness.records.RunWriter` the way the
runner does: meta.json, one metrics line per evaluation (the last one
reaching the target when the run did), optional curvature probes, and a
summary.json unless the run has not finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pathlib
from typing import Any, Sequence

from harness import records

ADAM_THRESHOLD_LR = 38.0  # EMA heavy ball at beta = 0.9: threshold 38 / lr.


_REGIME = records.Regime(full_batch=True, train_size=100, batch_size=100,
                         chunk_size=100)


def workload_meta(name: str, **overrides: Any) -> records.WorkloadFacts:
  facts = records.WorkloadFacts(
      name=name, tier='smoke', loss_type='softmax_cross_entropy',
      target_metric='validation/accuracy', target_value=0.8,
      target_higher_is_better=True, train_loss_threshold=0.1,
      step_budget=1000, runtime_budget_s=600.0, default_regime=_REGIME,
      curvature_batch_size=100)
  return dataclasses.replace(facts, **overrides)


def compile_free(time_s: float) -> float:
  """The compile-free time the fixtures record beside an AlgoPerf time."""
  return 0.9 * time_s


def _metrics(time_s: float | None, steps: int | None, reached: bool
             ) -> list[records.EvalRecord]:
  """Three evaluations; the last reaches the target when `reached`."""
  end_step = steps if steps is not None else 300
  end_time = time_s if time_s is not None else 30.0
  rows = []
  for k in (1, 2, 3):
    last = k == 3
    rows.append(records.EvalRecord(
        step=end_step * k // 3, submission_time_s=end_time * k / 3,
        compile_free_time_s=compile_free(end_time * k / 3),
        train_loss=1.0 / k, target_reached=reached and last,
        eval_seconds=0.1,
        metrics={'train/loss': 1.0 / k,
                 'validation/accuracy': 0.85 if reached and last else 0.5}))
  return rows


def write_run(root: pathlib.Path, workload: str, submission: str,
              study: int = 0, trial: int = 0, *,
              status: str = 'reached_target',
              time_to_target_s: float | None = None,
              steps_to_target: int | None = None,
              device_kind: str = 'cpu',
              curvature: Sequence[records.ProbeRecord] = (),
              summary_overrides: dict[str, Any] | None = None,
              finished: bool = True,
              workload_overrides: dict[str, Any] | None = None,
              baseline: bool = True,
              source_sha256: str | None = None,
              start_time: str = '2025-01-01T00:00:00',
              regime: records.Regime | None = None,
              config: dict[str, Any] | None = None,
              reached: bool | None = None
              ) -> pathlib.Path:
  """Writes one run directory and returns its path.

  Args:
    root: the experiment directory.
    workload: workload name.
    submission: submission name.
    study: study index.
    trial: trial index.
    status: the summary status (ignored when not `finished`).
    time_to_target_s: time to target of a run that reached it.
    steps_to_target: steps to target of a run that reached it.
    device_kind: meta.json devices.kind.
    curvature: curvature.jsonl records.
    summary_overrides: fields replaced in summary.json.
    finished: False leaves summary.json out (a running run).
    workload_overrides: fields replaced in meta.json's workload.
    baseline: meta.json submission.baseline.
    source_sha256: meta.json submission.source_sha256 (default: a hash of
      the submission's name).
    start_time: meta.json start_time.
    regime: meta.json regime (default: the workload's default regime).
    config: meta.json config.
    reached: the run reached the target (its last evaluation says so and
      summary.json records the time); default: status reached_target. True
      with another status is a run that ended so after the target.

  Returns:
    The run directory.
  """
  path = records.run_dir(root, workload, submission, study, trial)
  writer = records.RunWriter(path)
  writer.write_meta(records.Meta(
      workload=workload_meta(workload, **(workload_overrides or {})),
      submission=records.SubmissionFacts(
          name=submission, spec=submission if baseline else
          f'my/{submission}.py', baseline=baseline,
          source_sha256=source_sha256 or hashlib.sha256(
              submission.encode()).hexdigest()),
      hparams={'learning_rate': 0.01 * (trial + 1)},
      seed=100 * study + trial, study=study, trial=trial,
      regime=regime or _REGIME, config=config or {},
      devices=records.Devices(
          kind=device_kind, platform='cpu', count=1, local_count=1,
          process_count=1),
      versions={'jax': 'test'}, host={'hostname': 'test-host'},
      start_time=start_time, run_dir=str(path)))
  reached = status == 'reached_target' if reached is None else reached
  for row in _metrics(time_to_target_s, steps_to_target, reached):
    writer.append_eval(row)
  for probe_record in curvature:
    writer.append_probe(probe_record)
  if finished:
    fields = dict(
        status=status, time_to_target_s=time_to_target_s if reached else None,
        time_to_target_compile_free_s=(
            compile_free(time_to_target_s) if reached and time_to_target_s
            is not None else None),
        steps_to_target=steps_to_target if reached else None,
        final_step=steps_to_target or 300,
        submission_time_s=time_to_target_s or 30.0,
        compile_free_time_s=compile_free(time_to_target_s or 30.0))
    writer.write_summary(summary(**{**fields, **(summary_overrides or {})}))
  writer.close()
  return path


def summary(**overrides: Any) -> records.Summary:
  """A summary.json of a run that ran out of budget, with `overrides`."""
  if 'status' in overrides:
    overrides['status'] = records.Status(overrides['status'])
  if overrides.get('error_kind') is not None:
    overrides['error_kind'] = records.ErrorKind(overrides['error_kind'])
  return dataclasses.replace(records.Summary(
      status=records.Status.BUDGET_EXHAUSTED, time_to_target_s=None,
      time_to_target_compile_free_s=None, steps_to_target=None, target_metric='validation/accuracy',
      target_value=0.8, solution_step=None, sharpness_at_solution=None,
      preconditioned_sharpness_at_solution=None, final_step=300,
      final_metrics={}, submission_time_s=30.0,
      compile_free_time_s=compile_free(30.0), eval_time_s=0.3,
      probe_time_s=0.1, first_step_s=0.5, prepare_for_eval_s=0.0,
      wall_time_s=40.0,
      timed_compiles=0, resumed_at_steps=(), error=None),
                             **overrides)


def probe(step: int, ratio: float, *, sharpness: float = 10.0,
          learning_rate: float = 0.01, preconditioned: bool = True,
          reason: str = 'schedule') -> records.ProbeRecord:
  """One curvature record with the given threshold ratio.

  The threshold is 38 / lr; the preconditioned sharpness (or, without a
  preconditioner, the sharpness itself) is ratio * threshold.
  """
  threshold = ADAM_THRESHOLD_LR / learning_rate
  measured = ratio * threshold if math.isfinite(ratio) else ratio
  return records.ProbeRecord(
      step=step, reason=records.ProbeReason(reason),
      learning_rate=learning_rate, train_loss=1.0, curvature_batch_loss=1.0,
      sharpness=measured if not preconditioned else sharpness,
      sharpness_topk=(sharpness,),
      preconditioned_sharpness=measured if preconditioned else None,
      preconditioned_sharpness_topk=(measured,) if preconditioned else None,
      stability_threshold=threshold, threshold_ratio=ratio,
      threshold_unknown=None, grad_norm=1.0,
      preconditioner_norm=1.0 if preconditioned else None,
      lanczos_residual=1e-6, lanczos_hvps=20, lanczos_converged=True,
      curvature_batch_size=100, probe_seconds=0.01)


def adam_like(steps: Sequence[int], ratios: Sequence[float],
              sharpness: Sequence[float], **kwargs: Any
              ) -> list[records.ProbeRecord]:
  """Probes at `steps` with the given threshold ratios and raw sharpness."""
  return [probe(s, r, sharpness=h, **kwargs)
          for s, r, h in zip(steps, ratios, sharpness)]


def rising_probes(num: int = 12, *, every: int = 10, onset: int = 4,
                  growth: float = 3.0, preconditioned: bool = True,
                  learning_rate: float = 0.01, wiggle: float = 0.05
                  ) -> list[records.ProbeRecord]:
  """A run that reaches the threshold at probe `onset` and stays near it.

  The threshold ratio rises linearly to 1 at probe `onset`, then alternates
  1 + wiggle, 1 - wiggle. With a preconditioner, the raw sharpness grows
  linearly by a factor `growth` from the onset to the last probe; without
  one, the raw sharpness is ratio * threshold.
  """
  out = []
  for i in range(num):
    ratio = (0.2 + 0.8 * i / onset if i < onset
             else 1.0 + wiggle * (1 if i % 2 else -1) * (i > onset))
    progress = max(0, i - onset) / max(1, num - 1 - onset)
    sharp = 5.0 * (1 + (growth - 1) * progress)
    out.append(probe(i * every, ratio, sharpness=sharp,
                     learning_rate=learning_rate,
                     preconditioned=preconditioned))
  return out


def corrupt_meta(path: pathlib.Path) -> None:
  (path / records.META_FILE).write_text('{"workload": {"name": ')


def corrupt_summary(path: pathlib.Path) -> None:
  (path / records.SUMMARY_FILE).write_text('not json at all')


def truncate_metrics(path: pathlib.Path) -> None:
  with open(path / records.METRICS_FILE, 'a', encoding='utf-8') as f:
    f.write('{"step": 999, "submission_ti')


# (workload, submission, study, trial) -> time to target (inf: failed).
# cpu: adam w1 = median(10, 11, 9) = 10, sgd w1 = median(20, inf, 25) = 25;
# adam w2 = inf, sgd w2 = 40; w3: everyone failed.
# Ratios: w1 adam 1, sgd 2.5; w2 adam inf, sgd 1; w3 inf.
# Scores (n = 3, tau_max = 4): adam 3/9, sgd (1.5 + 3)/9 = 1/2.
EXPERIMENT_TIMES = {
    ('w1', 'adam', 0, 0): 10.0, ('w1', 'adam', 0, 1): 12.0,
    ('w1', 'adam', 1, 0): 11.0, ('w1', 'adam', 1, 1): math.inf,
    ('w1', 'adam', 2, 0): 9.0, ('w1', 'adam', 2, 1): 30.0,
    ('w1', 'sgd', 0, 0): 20.0, ('w1', 'sgd', 0, 1): 50.0,
    ('w1', 'sgd', 1, 0): math.inf, ('w1', 'sgd', 2, 0): 25.0,
    ('w2', 'adam', 0, 0): math.inf, ('w2', 'sgd', 0, 0): 40.0,
    ('w3', 'adam', 0, 0): math.inf, ('w3', 'sgd', 0, 0): math.inf,
}
EXPECTED_SCORES = {'adam': 3 / 9, 'sgd': 1 / 2}
GPU_KIND = 'NVIDIA H100 80GB HBM3'
LEARNING_RATES = {'adam': 0.01, 'sgd': 0.1}


def make_experiment(root: pathlib.Path, *, with_bad_runs: bool = True,
                    speedup: float = 1.0, with_gpu: bool = True
                    ) -> dict[str, pathlib.Path]:
  """An experiment directory with known scores (see EXPERIMENT_TIMES).

  Args:
    root: the experiment directory to write.
    with_bad_runs: add a corrupt meta.json, a corrupt summary.json, a killed
      run (no summary, no lock holder) and a truncated metrics line (which
      leaves its run usable).
    speedup: divides sgd's times and multiplies its sharpness at solution
      (for comparing two reports).
    with_gpu: add one adam run on another device kind.

  Returns:
    Named paths of the bad runs.
  """
  for (w, s, study, trial), t in EXPERIMENT_TIMES.items():
    t = t / speedup if s == 'sgd' else t
    reached = math.isfinite(t)
    steps = int(10 * t) if reached else None
    solution_sharpness = 30.0 + trial if s == 'adam' else (
        20.0 + trial) * speedup
    write_run(root, w, s, study, trial,
              status='reached_target' if reached else 'budget_exhausted',
              time_to_target_s=t if reached else None, steps_to_target=steps,
              curvature=rising_probes(preconditioned=s == 'adam',
                                      onset=4 + trial,
                                      learning_rate=LEARNING_RATES[s]),
              summary_overrides={'solution_step': 60 + 10 * trial + study,
                                 'sharpness_at_solution': solution_sharpness})
  if with_gpu:
    write_run(root, 'w1', 'adam', 5, 0, time_to_target_s=5.0,
              steps_to_target=50, device_kind=GPU_KIND,
              curvature=rising_probes())
  if not with_bad_runs:
    return {}
  bad = {
      'corrupt_meta': write_run(root, 'w2', 'adam', 1, 0,
                                time_to_target_s=1.0, steps_to_target=10),
      'killed': write_run(root, 'w2', 'sgd', 1, 0, finished=False),
      'corrupt_summary': write_run(root, 'w3', 'adam', 0, 1,
                                   time_to_target_s=1.0, steps_to_target=10),
      'truncated': records.run_dir(root, 'w1', 'sgd', 0, 1),
  }
  corrupt_meta(bad['corrupt_meta'])
  corrupt_summary(bad['corrupt_summary'])
  truncate_metrics(bad['truncated'])
  return bad
