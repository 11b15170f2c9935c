r"""The main job: full-batch Adam at the adaptive edge of stability.

Trains the paper's FC network (5 tanh layers of 200) on 2,000 images of the
bundled Fashion-MNIST subset with full-batch Adam (no bias correction,
β1 = 0.9, β2 = 0.999, η = 2e-4) under the MSE loss of Cohen et al. (2021),
probing λ1(H) and λ1(P⁻¹H) every 20 steps, then draws the figure and prints
the AEoS statistics::

  python -m harness.demo --experiment_dir=runs/demo

Expected: λ1(P⁻¹H) rises to 38/η and hovers there while λ1(H) keeps rising.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

from absl import app
from absl import flags

from harness import config as config_lib
from harness import records
from harness import runner
from scoring import aeos
from scoring import run_figure

_EXPERIMENT_DIR = flags.DEFINE_string('experiment_dir', 'runs/demo',
                                      'Root directory of the run records.')
_SUBMISSION = flags.DEFINE_string('submission', 'adam_nobc',
                                  'Baseline name or submission path.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 2e-4, 'Step size η.')
_STEPS = flags.DEFINE_integer('steps', 400, 'Training steps.')
_PROBE_EVERY = flags.DEFINE_integer('curvature_every', 20,
                                    'Probe every this many steps.')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', 2000, 'Full-batch size.')
_QUIET = flags.DEFINE_bool('quiet', False, 'No progress lines.')


@dataclasses.dataclass(frozen=True)
class DemoResult:
  run: records.RunRecord
  stats: aeos.AeosStats
  figure: pathlib.Path


def demo_config(experiment_dir: str, *, submission: str = 'adam_nobc',
                learning_rate: float = 2e-4, steps: int = 400,
                curvature_every: int = 20, train_size: int = 2000,
                quiet: bool = False) -> config_lib.RunConfig:
  """The main job's run: full batch, keeps training past the target."""
  return config_lib.RunConfig(
      workload='fmnist_fc_mse', submission=submission,
      hparams={'learning_rate': learning_rate},
      experiment_dir=experiment_dir, max_steps=steps, eval_every=100,
      stop_at_target=False, full_batch=True, train_size=train_size,
      chunk_size=min(train_size, 1000), quiet=quiet, overwrite=True,
      curvature=config_lib.CurvatureConfig(every=curvature_every))


def run_demo(config: config_lib.RunConfig) -> DemoResult:
  """Trains, then writes `aeos.png` into the run directory."""
  result = runner.train(config)
  run = records.read_run(result.run_dir)
  figure = result.run_dir / 'aeos.png'
  figure.write_bytes(run_figure.plot_run(run))
  return DemoResult(run, aeos.aeos_stats(run.curvature, run.summary), figure)


def describe(result: DemoResult) -> str:
  """A short printed summary of the run and its AEoS statistics."""
  s, summary = result.stats, result.run.summary
  last = result.run.curvature[-1]
  fmt = lambda v, f='.3g': 'n/a' if v is None else format(v, f)  # noqa: E731
  lines = [
      f'status: {summary["status"]}, {summary["final_step"]} steps, '
      f'train loss {fmt(last["train_loss"])}',
      f'time: submission {summary["submission_time_s"]:.1f}s, curvature '
      f'probes {summary["probe_time_s"]:.1f}s, evaluation '
      f'{summary["eval_time_s"]:.1f}s, first step '
      f'{summary["first_step_s"]:.1f}s, wall {summary["wall_time_s"]:.1f}s',
      f'stability threshold: {fmt(last["stability_threshold"], ".0f")}',
      f'AEoS onset (ratio >= 0.9): step {fmt(s.onset_step, "d")}',
      f'threshold ratio after onset: median {fmt(s.ratio_median)}, '
      f'IQR {fmt(s.ratio_iqr)}, within ±15%: {fmt(s.fraction_in_band, ".0%")}',
      f'raw sharpness: {fmt(s.sharpness_at_onset)} at onset -> '
      f'{fmt(s.sharpness_final)} at the end (x{fmt(s.sharpness_growth)})',
      f'figure: {result.figure}',
  ]
  return '\n'.join(lines)


def main(argv):
  del argv
  config = demo_config(
      _EXPERIMENT_DIR.value, submission=_SUBMISSION.value,
      learning_rate=_LEARNING_RATE.value, steps=_STEPS.value,
      curvature_every=_PROBE_EVERY.value, train_size=_TRAIN_SIZE.value,
      quiet=_QUIET.value)
  print(describe(run_demo(config)))


if __name__ == '__main__':
  sys.exit(app.run(main))
