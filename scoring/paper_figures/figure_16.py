"""Fig. 16 (App. D): at a tiny η freezing Adam's P sends λ1(P⁻¹H) to 38/η.

The claim (Cohen et al., 2022, App. D, Figs. 15 and 16): at extremely
small learning rates full-batch Adam's preconditioned sharpness λ1(P⁻¹H)
flatlines short of the threshold 38/η, or creeps up below it; freezing the
preconditioner at a step K of that phase (same η, seed and data) makes it
rise to the threshold at once. Adam's adaptivity, a P that keeps growing,
is what held it below. The paper shows it on its CNN on CIFAR-10 at
η = 2.236e-6, frozen at step 6,000 of 12,000.

Measured side by side: `adam_nobc` and `frozen_adam` (ν frozen after
`freeze_step` = K updates, then preconditioned EMA heavy-ball with P fixed)
at the same η, β1 = 0.9, β2 = 0.999, seed and data, full-batch, as two
sweeps (`_sweep`). Up to step K the two runs are one.

Criterion: Adam never reaches the onset (every probe's ratio
λ1(P⁻¹H) / (38/η) below 0.9, `aeos.ONSET_RATIO`): the onset is where a
run counts as having reached the edge (Fig. 1), so a run that stays under
it has not; and frozen Adam reaches the onset after K, no later than
halfway through its frozen phase (the paper's "at once", with half the
probes after it left for the median), and its median ratio from the onset
on lies within 1 ± 0.15 (`aeos.BAND`, the oscillation about the line; see
Fig. 1). Adam's bound is the onset itself, not a band about 1: the claim
is that it is held below the edge, and any probe at 0.9 or above would
put it at the edge by the definition every other figure uses.

On the bundled data the corner case does not appear. Full-batch on
'fmnist_fc_mse' (1,000 images unless said), the peak ratios by the last
step, Adam against frozen Adam, were: η = 1e-5, K = 300, 1,000 steps:
0.083 against 0.058 (Adam flat at 0.037 up to step 300); η = 2e-5,
K = 300, 1,500 steps: 0.39 against 0.21; η = 5e-5, K = 20 or 100, 1,000
steps: 0.79 against 0.50; 5,000 images, η = 3e-5, K = 200, 800 steps:
0.24 against 0.17; on 'fmnist_fc' at η = 5e-5, K = 200 both fell, from
0.40 to 0.02. Frozen Adam always fell behind: here the loss goes to zero,
the gradients fade, ν decays and Adam's P shrinks, which raises
λ1(P⁻¹H); with P frozen only λ1(H) can raise it, and it grows about 2.3×
and levels off. The adaptivity that held the paper's CNN below the line
lifts this network towards it. 'fmnist_cnn', the paper's architecture,
was too slow to try on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from harness import records
from scoring import aeos
from scoring import figures
from scoring.paper_figures import _claim
from scoring.paper_figures import _sweep

ADAM, FROZEN = 'adam_nobc', 'frozen_adam'
BETA1, BETA2 = 0.9, 0.999
CLAIM = ('at a tiny η full-batch Adam\'s λ1(P⁻¹H) stays below 38/η, and '
         'freezing its preconditioner sends it to the threshold at once')


@dataclasses.dataclass(frozen=True)
class Sizes:
  learning_rate: float
  freeze_step: int
  steps: int
  workload: str = 'fmnist_fc_mse'
  train_size: int = 1000
  curvature_every: int = 50


SCALES = {
    # 5e-5 is the largest η tried at which Adam stays under the onset for
    # 1,000 steps on 1,000 images (its ratio 0.16-0.17 from step 50 to
    # 100, the flat phase K falls in, then rising to 0.79; it reaches the
    # onset at step 1,250 when run on).
    'tiny': Sizes(learning_rate=5e-5, freeze_step=100, steps=200,
                  train_size=500),
    'default': Sizes(learning_rate=5e-5, freeze_step=100, steps=1000),
    # Fig. 16's run: the CNN on its 5,000 CIFAR-10 images (App. G),
    # frozen at step 6,000 of the 12,000 drawn.
    'paper': Sizes(learning_rate=2.236e-6, freeze_step=6000, steps=12_000,
                   workload='cifar10_cnn', train_size=5000,
                   curvature_every=100),
}


def _run(submission: str, sizes: Sizes, experiment_dir: pathlib.Path,
         **hparams) -> records.RunRecord:
  point = {'learning_rate': sizes.learning_rate, 'beta1': BETA1,
           'beta2': BETA2, **hparams}
  return _sweep.single(
      submission, sizes.workload, point,
      experiment_dir / f'{submission}_tiny_eta', train_size=sizes.train_size,
      steps=sizes.steps, curvature_every=sizes.curvature_every)


def _row(name: str, run: records.RunRecord) -> dict[str, Any]:
  stats = aeos.aeos_stats(run.curvature, run.summary)
  return {'submission': name, 'onset_step': stats.onset_step,
          'ratio_peak': stats.ratio_peak,
          'ratio_median': stats.ratio_median, 'ratio_iqr': stats.ratio_iqr,
          'fraction_in_band': stats.fraction_in_band,
          'at_edge': _claim.at_the_edge(stats), 'run': str(run.path)}


def judge(adam: dict[str, Any], frozen: dict[str, Any], sizes: Sizes
          ) -> bool:
  """The module docstring's criterion on the two rows."""
  latest = sizes.freeze_step + (sizes.steps - sizes.freeze_step) // 2
  onset = frozen['onset_step']
  return (adam['onset_step'] is None and frozen['at_edge'] and
          sizes.freeze_step < onset <= latest)


def _describe(adam: dict[str, Any], frozen: dict[str, Any],
              sizes: Sizes) -> str:
  median = frozen['ratio_median']
  reached = ('never reaches the onset' if frozen['onset_step'] is None else
             f'onset at step {frozen["onset_step"]}, median ratio '
             f'{median:.3g} after it')
  adam_onset = ('no onset' if adam['onset_step'] is None else
                f'onset at step {adam["onset_step"]}')
  return (f'η = {sizes.learning_rate:g}: Adam\'s peak ratio '
          f'{adam["ratio_peak"]:.3g} ({adam_onset}); frozen at step '
          f'{sizes.freeze_step}: {reached} (peak {frozen["ratio_peak"]:.3g})')


def measure(sizes: Sizes, experiment_dir: pathlib.Path):
  runs = {ADAM: _run(ADAM, sizes, experiment_dir),
          FROZEN: _run(FROZEN, sizes, experiment_dir,
                       freeze_step=sizes.freeze_step)}
  adam, frozen = (_row(name, run) for name, run in runs.items())
  outcome = _claim.Outcome(
      figure='16', claim=CLAIM,
      criterion=(f'Adam: every ratio < {aeos.ONSET_RATIO} (no onset); '
                 f'frozen Adam: onset after the freeze and by halfway '
                 f'through the frozen phase, median ratio after it within '
                 f'1 ± {aeos.BAND}'),
      holds=judge(adam, frozen, sizes),
      verdict=_describe(adam, frozen, sizes), rows=(adam, frozen),
      settings=dataclasses.asdict(sizes))
  series = [(row, aeos.curvature_series(run.curvature))
            for row, run in zip((adam, frozen), runs.values())]
  return outcome, (sizes, series)


def draw(measured) -> Any:
  """λ1(P⁻¹H) of both runs against 38/η above, their ratios to it below;
  the freeze marked."""
  sizes, series = measured
  fig = figures.new_figure(8.0, 6.0)
  top, bottom = fig.subplots(2, 1, sharex=True)
  for i, (row, curve) in enumerate(series):
    top.plot(curve.steps, curve.preconditioned_sharpness, color=f'C{i}',
             linewidth=1.4, label=f'{row["submission"]}: λ1(P⁻¹H)')
    ratios = [None if s is None or t is None else s / t for s, t in zip(
        curve.preconditioned_sharpness, curve.threshold)]
    bottom.plot(curve.steps, ratios, color=f'C{i}', linewidth=1.4,
                label=f'{row["submission"]}: ratio to 38/η')
  threshold = (2 + 2 * BETA1) / ((1 - BETA1) * sizes.learning_rate)
  top.axhline(threshold, color='black', linestyle='--', linewidth=1.0,
              label='38/η')
  bottom.axhspan(1 - aeos.BAND, 1 + aeos.BAND, color='grey', alpha=0.2,
                 label=f'1 ± {aeos.BAND}')
  bottom.axhline(aeos.ONSET_RATIO, color='grey', linestyle=':',
                 linewidth=0.8, label=f'onset, {aeos.ONSET_RATIO}')
  for ax in (top, bottom):
    ax.axvline(sizes.freeze_step, color='grey', linewidth=0.8,
               label='freeze' if ax is top else None)
    ax.grid(alpha=0.3, which='both')
  top.set(yscale='log', ylabel='preconditioned sharpness')
  bottom.set(ylabel='ratio to threshold', xlabel='step')
  return _claim.finish(
      fig, f'Adam at η = {sizes.learning_rate:g}, and the same run with P '
      f'frozen at step {sizes.freeze_step}')


FIGURE = _claim.PaperFigure(figure='16', claim=CLAIM, scales=SCALES,
                            measure=measure, draw=draw)
