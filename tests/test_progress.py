"""Progress lines: training speed from the submission clock, ETA by wall."""

from __future__ import annotations

import io
from unittest import mock

from harness import progress


def _lines(times, reports, **kwargs):
  stream = io.StringIO()
  with mock.patch.object(progress.time, 'perf_counter', side_effect=times):
    bar = progress.Progress(100, stream=stream, min_interval_s=0, **kwargs)
    for step, submission_time in reports:
      bar.step(step, submission_time, 0.5)
  return stream.getvalue().splitlines()


def test_rate_uses_submission_time_and_eta_wall_time():
  # 10 steps take 1 s of training but 5 s of wall time (probes, evals).
  lines = _lines([0.0, 5.0, 10.0], [(0, 0.0), (10, 1.0), (20, 2.0)])
  assert 'ETA ?' in lines[0]
  assert '10.0 steps/s' in lines[1]
  assert 'ETA 0:00:45' in lines[1]  # 90 steps at 0.5 s of wall each.
  assert 'ETA 0:00:40' in lines[2]


def test_quiet_prints_nothing():
  assert _lines([0.0, 1.0], [(0, 0.0), (10, 1.0)], quiet=True) == []
