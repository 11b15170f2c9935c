"""The main job: full-batch Adam at the adaptive edge of stability.

Trains the paper's FC network (5 tanh layers of 200) on 2,000 images of the
bundled Fashion-MNIST subset with full-batch Adam (no bias correction,
β1 = 0.9, β2 = 0.999, η = 2e-4) under the MSE loss of Cohen et al. (2021),
probing λ1(H) and λ1(P⁻¹H) every 20 steps, then reads the run's records back,
draws the figure and describes the AEoS statistics. Expected: λ1(P⁻¹H) rises
to 38/η and hovers there while λ1(H) keeps rising.

It composes every layer (it trains with `harness.runner` and scores the
records it wrote), which is why it lives at the top, in scoring; its entry
point is `python -m scoring.demo`.

Rerun with the same settings, the demo replaces its own previous run; a
finished run of anything else in that run directory is kept unless
`overwrite` is set.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

from harness import config as config_lib
from harness import records
from harness import run_directory
from harness import runner
from scoring import aeos
from scoring import run_figure
from submissions import loading


@dataclasses.dataclass(frozen=True)
class MainJob:
  """The main job's settings; `python -m scoring.demo` has a flag for each.

  Attributes:
    experiment_dir: root directory of the run records.
    submission: baseline name or submission path.
    learning_rate: step size η.
    steps: training steps.
    curvature_every: probe every this many steps.
    train_size: full-batch size.
    quiet: no progress lines.
    overwrite: replace whatever finished run the run directory holds; by
      default only a previous run of this same demo is replaced.
  """

  experiment_dir: str = 'runs/demo'
  submission: str = 'adam_nobc'
  learning_rate: float = 2e-4
  steps: int = 400
  curvature_every: int = 20
  train_size: int = 2000
  quiet: bool = False
  overwrite: bool = False

  def run_config(self) -> config_lib.RunConfig:
    """The run: full batch, all its steps, past the target and the
    workload's runtime budget (the demo shows the dynamics, not a score)."""
    config = config_lib.RunConfig(
        workload='fmnist_fc_mse', submission=self.submission,
        hparams={'learning_rate': self.learning_rate},
        experiment_dir=self.experiment_dir, max_steps=self.steps,
        max_runtime_s=math.inf,
        eval_every=100, stop_at_target=False, full_batch=True,
        train_size=self.train_size, chunk_size=min(self.train_size, 1000),
        quiet=self.quiet, overwrite=self.overwrite,
        # The curvature batch in one chunk: cheaper products than the
        # training's chunks of 1,000 (BENCHMARKS.md, probe overhead).
        curvature=config_lib.CurvatureConfig(every=self.curvature_every,
                                             chunk_size=self.train_size))
    if not config.overwrite and _holds_this_demo(config):
      config = dataclasses.replace(config, overwrite=True)
    return config


def _holds_this_demo(config: config_lib.RunConfig) -> bool:
  """Whether the run directory holds a run started with these settings."""
  name = loading.submission_name(config.submission)
  meta_file = records.run_dir(config.experiment_dir, config.workload, name,
                              config.study, config.trial) / records.META_FILE
  try:
    meta = records.read_json(meta_file, records.Meta)
  except (OSError, records.RecordError):
    return False
  return not run_directory.changed_flags(meta.config, config)


@dataclasses.dataclass(frozen=True)
class DemoResult:
  run: records.RunRecord
  stats: aeos.AeosStats
  figure: pathlib.Path


def run_demo(config: config_lib.RunConfig) -> DemoResult:
  """Trains, reads the records back, and writes `aeos.png` beside them."""
  result = runner.train(config)
  run = records.read_run(result.run_dir)
  figure = result.run_dir / 'aeos.png'
  figure.write_bytes(run_figure.plot_run(run))
  return DemoResult(run, aeos.aeos_stats(run.curvature, run.summary), figure)


def describe(result: DemoResult) -> str:
  """A short printed summary of the run and its AEoS statistics."""
  s, summary = result.stats, result.run.summary
  # A run that diverged before its first probe has none; its last
  # evaluation then gives the train loss.
  last = result.run.curvature[-1] if result.run.curvature else None
  fmt = lambda v, f='.3g': 'n/a' if v is None else format(v, f)  # noqa: E731
  seen = last or (result.run.metrics[-1] if result.run.metrics else None)
  status = summary.status.value
  if summary.status is records.Status.BUDGET_EXHAUSTED:
    status += (' (its fixed steps ran out: the demo shows the dynamics and '
               'is not scored against the target)')
  if last is None:
    threshold = 'no probe'
  elif last.stability_threshold is None:
    threshold = f'unknown: {last.threshold_unknown}'
  else:
    threshold = fmt(last.stability_threshold, '.4g')
  lines = [
      f'status: {status}, {summary.final_step} steps, '
      f'train loss {fmt(seen and seen.train_loss)} at step '
      f'{fmt(seen and seen.step, "d")}',
      f'time: submission {summary.submission_time_s:.1f}s, curvature '
      f'probes {summary.probe_time_s:.1f}s, evaluation '
      f'{summary.eval_time_s:.1f}s, first step '
      f'{summary.first_step_s:.1f}s, wall {summary.wall_time_s:.1f}s',
      f'stability threshold: {threshold}',
      f'AEoS onset (ratio >= 0.9): step {fmt(s.onset_step, "d")}',
      f'threshold ratio after onset: median {fmt(s.ratio_median)}, '
      f'IQR {fmt(s.ratio_iqr)}, within ±15%: {fmt(s.fraction_in_band, ".0%")}',
      (f'raw sharpness: {fmt(s.sharpness_at_onset)} at onset -> '
       f'{fmt(s.sharpness_final)} at the end (x{fmt(s.sharpness_growth)})'
       if s.onset_step is not None else
       f'raw sharpness: {fmt(last and last.sharpness)} at the last probe; '
       f'peak threshold ratio {fmt(s.ratio_peak)}'),
      f'figure: {result.figure}',
  ]
  return '\n'.join(lines)
