"""Adaptive-edge-of-stability statistics of one run's curvature probes.

Definitions (probes sorted by step; one probe per step, the first written
wins; probes whose threshold ratio is not a finite number are ignored):

* threshold ratio q = lambda_1(P^-1 H) / threshold for preconditioned methods,
  lambda_1(H) / threshold otherwise (the runner writes it as
  `threshold_ratio`).
* onset: the first probe with q >= 0.9 (`ONSET_RATIO`).
* equilibrium: over the probes from the onset on (the onset probe included),
  the median of q, its 25th and 75th percentiles (NumPy's linear
  interpolation) and their difference, the interquartile range; and the
  fraction of those probes with |q - 1| <= 0.15 (`BAND`).
* peak ratio: the largest q over all usable probes, for every run with
  one, including runs that never reach the onset (how close they came).
* sharpness growth at the AEoS: lambda_1(H) at the last probe divided by
  lambda_1(H) at the onset probe. Adam's raw sharpness keeps rising at the
  AEoS (growth well above 1); frozen Adam's mostly stops (growth near 1).
* sharpness at solution: `summary.json`'s `sharpness_at_solution` and
  `preconditioned_sharpness_at_solution`; when absent, the probe at
  `solution_step`. When it is missing, `solution_missing` says why: a run
  that stopped at the target before its train loss reached the threshold
  never measures it (train past the target with
  `--keep_training_past_target`), and a solution step without a probe has
  nothing to report.
* threshold unknown: when no probe has a finite ratio but some say why the
  threshold is unknown (`threshold_unknown`), the first reason is kept, so
  views can say "threshold unknown" rather than show nothing.

Runs are read through `harness.records` (`ProbeRecord`, `Summary`).

A run without probes (or that never reaches the onset) gets None for the
statistics that need them, never an error.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from harness.records import ProbeRecord, Summary, finite

ONSET_RATIO = 0.9
BAND = 0.15


@dataclasses.dataclass(frozen=True)
class CurvatureSeries:
  """The probe series a figure draws (finite values only, by step).

  Attributes:
    steps: probe steps.
    sharpness: lambda_1(H) per step (None where not finite).
    preconditioned_sharpness: lambda_1(P^-1 H) per step; all None for methods
      without a preconditioner.
    threshold: the stability threshold in force at each step.
  """

  steps: tuple[int, ...] = ()
  sharpness: tuple[float | None, ...] = ()
  preconditioned_sharpness: tuple[float | None, ...] = ()
  threshold: tuple[float | None, ...] = ()

  @property
  def preconditioned(self) -> bool:
    return any(v is not None for v in self.preconditioned_sharpness)


@dataclasses.dataclass(frozen=True)
class AeosStats:
  """AEoS statistics of one run; None where the records cannot give them.

  Attributes:
    num_probes: usable probes (finite threshold ratio, distinct steps).
    num_probes_from_onset: usable probes from the onset on, those behind
      the median, IQR and band fraction (0 without an onset).
    preconditioned: whether the method has a preconditioner.
    onset_step: first step with threshold ratio >= ONSET_RATIO.
    ratio_median: median threshold ratio from the onset on.
    ratio_q25: its 25th percentile.
    ratio_q75: its 75th percentile.
    ratio_iqr: ratio_q75 - ratio_q25.
    ratio_peak: the largest threshold ratio over all usable probes.
    fraction_in_band: fraction of probes from the onset on with
      |ratio - 1| <= BAND.
    sharpness_at_onset: lambda_1(H) at the onset probe.
    sharpness_final: lambda_1(H) at the last probe.
    sharpness_growth: sharpness_final / sharpness_at_onset.
    solution_step: first step the train loss fell below the workload's
      threshold (from summary.json).
    sharpness_at_solution: lambda_1(H) there.
    preconditioned_sharpness_at_solution: lambda_1(P^-1 H) there.
    solution_missing: why `sharpness_at_solution` is None; None when it is
      known.
    threshold_unknown: why the threshold is unknown, when no probe has a
      finite ratio and a probe says why.
  """

  num_probes: int = 0
  num_probes_from_onset: int = 0
  preconditioned: bool = False
  onset_step: int | None = None
  ratio_median: float | None = None
  ratio_q25: float | None = None
  ratio_q75: float | None = None
  ratio_iqr: float | None = None
  ratio_peak: float | None = None
  fraction_in_band: float | None = None
  sharpness_at_onset: float | None = None
  sharpness_final: float | None = None
  sharpness_growth: float | None = None
  solution_step: int | None = None
  sharpness_at_solution: float | None = None
  preconditioned_sharpness_at_solution: float | None = None
  solution_missing: str | None = None
  threshold_unknown: str | None = None


STOPPED_AT_TARGET = (
    'stopped at target before the train loss reached the threshold; train '
    'past the target (--keep_training_past_target) to measure it')


def _one_per_step(curvature: Sequence[ProbeRecord]) -> list[ProbeRecord]:
  """Probes sorted by step; of several at one step the first written."""
  by_step: dict[int, ProbeRecord] = {}
  for probe in curvature:
    by_step.setdefault(probe.step, probe)
  return [by_step[s] for s in sorted(by_step)]


def usable_probes(curvature: Sequence[ProbeRecord]) -> list[ProbeRecord]:
  """Probes with a finite threshold ratio, sorted by step, one per step."""
  return _one_per_step([p for p in curvature
                        if finite(p.threshold_ratio) is not None])


def curvature_series(curvature: Sequence[ProbeRecord]) -> CurvatureSeries:
  """The probe series of a run, for figures."""
  probes = _one_per_step(curvature)
  return CurvatureSeries(
      steps=tuple(p.step for p in probes),
      sharpness=tuple(finite(p.sharpness) for p in probes),
      preconditioned_sharpness=tuple(
          finite(p.preconditioned_sharpness) for p in probes),
      threshold=tuple(finite(p.stability_threshold) for p in probes))


def _at_solution(summary: Summary | None, probes: Sequence[ProbeRecord]
                 ) -> tuple[int | None, float | None, float | None]:
  if summary is None:
    return None, None, None
  step = summary.solution_step
  sharp = finite(summary.sharpness_at_solution)
  precond = finite(summary.preconditioned_sharpness_at_solution)
  probe = next((p for p in probes if step is not None and p.step == step),
               None)
  if probe is not None:
    sharp = sharp if sharp is not None else finite(probe.sharpness)
    precond = precond if precond is not None else finite(
        probe.preconditioned_sharpness)
  return step, sharp, precond


def _solution_missing(summary: Summary | None, step: int | None,
                      sharpness: float | None) -> str | None:
  """Why the sharpness at solution is unknown; None when it is known."""
  if sharpness is not None:
    return None
  if summary is None:
    return 'run not finished'
  if step is not None:
    return f'no probe at the solution step ({step})'
  stopped = summary.steps_to_target
  if stopped is not None and summary.final_step <= stopped:
    return STOPPED_AT_TARGET
  return (f'train loss never fell below the threshold in '
          f'{summary.final_step} steps')


def _threshold_unknown(curvature: Sequence[ProbeRecord]) -> str | None:
  return next((p.threshold_unknown for p in curvature
               if p.threshold_unknown and finite(p.threshold_ratio) is None),
              None)


def _growth(final: float | None, onset: float | None) -> float | None:
  if final is None or onset is None or onset <= 0:
    return None
  return final / onset


def aeos_stats(curvature: Sequence[ProbeRecord],
               summary: Summary | None = None, *,
               onset_ratio: float = ONSET_RATIO,
               band: float = BAND) -> AeosStats:
  """AEoS statistics of one run.

  Args:
    curvature: the run's curvature.jsonl records.
    summary: the run's summary.json, or None while running.
    onset_ratio: threshold ratio that marks the onset.
    band: half-width of the band around ratio 1 counted as "at the
      threshold".

  Returns:
    The statistics; None fields where the records cannot give them.
  """
  every_probe = sorted(curvature, key=lambda p: p.step)
  solution_step, sharp_sol, precond_sol = _at_solution(summary, every_probe)
  probes = usable_probes(curvature)
  preconditioned = any(
      finite(p.preconditioned_sharpness) is not None for p in curvature)
  base = AeosStats(
      num_probes=len(probes), preconditioned=preconditioned,
      ratio_peak=max((p.threshold_ratio for p in probes), default=None),
      solution_step=solution_step, sharpness_at_solution=sharp_sol,
      preconditioned_sharpness_at_solution=precond_sol,
      solution_missing=_solution_missing(summary, solution_step, sharp_sol),
      threshold_unknown=None if probes else _threshold_unknown(curvature))
  onset = next((i for i, p in enumerate(probes)
                if p.threshold_ratio >= onset_ratio), None)
  if onset is None:
    return base
  after = np.array([p.threshold_ratio for p in probes[onset:]], float)
  q25, q50, q75 = np.percentile(after, [25, 50, 75]).tolist()
  sharp_onset = finite(probes[onset].sharpness)
  sharp_final = finite(probes[-1].sharpness)
  return dataclasses.replace(
      base, onset_step=probes[onset].step,
      num_probes_from_onset=len(after), ratio_median=q50,
      ratio_q25=q25, ratio_q75=q75, ratio_iqr=q75 - q25,
      fraction_in_band=float(np.mean(np.abs(after - 1.0) <= band)),
      sharpness_at_onset=sharp_onset, sharpness_final=sharp_final,
      sharpness_growth=_growth(sharp_final, sharp_onset))
