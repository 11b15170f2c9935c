"""The figure of a calibration record, drawn from the committed records."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from harness import calibration
from scoring import calibration_figure

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / 'workloads' / 'calibrations').glob('*.json'))


def test_some_record_is_committed():
  assert COMMITTED


@pytest.mark.parametrize('path', COMMITTED, ids=lambda p: p.stem)
def test_figure_shows_the_search_the_reruns_target_and_budgets(path):
  record = calibration.read(path)
  fig = calibration_figure.draw_calibration(record)
  search, by_step, by_time = fig.axes[:3]
  assert len(search.lines) == len(record.search) + 1  # And the target.
  widths = [line.get_linewidth() for line in search.lines[:-1]]
  chosen = calibration.choose(record.search,
                              higher_is_better=record.higher_is_better)
  assert widths.index(max(widths)) == record.search.index(chosen)
  for ax, budget in ((by_step, record.step_budget),
                     (by_time, record.runtime_budget_s)):
    assert len(ax.lines) == len(record.seeds) + 2
    low, high = ax.get_ylim()
    assert low < record.target_value < high
    assert budget in ax.lines[-1].get_xdata()
    # Narrowed to the approach: the best rerun's peak is on the axes.
    best = max(r.best_value for r in record.seeds) if (
        record.higher_is_better) else min(r.best_value for r in record.seeds)
    assert low < best < high


def test_command_writes_beside_the_record_and_refuses_other_files(tmp_path):
  copy = tmp_path / 'w.json'
  copy.write_text(COMMITTED[0].read_text())
  out = subprocess.run([sys.executable, '-m', 'scoring.calibration_figure',
                        str(copy)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == str(tmp_path / 'w.png')
  assert (tmp_path / 'w.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  bad = tmp_path / 'bad.json'
  bad.write_text('{"workload": "w"}')
  out = subprocess.run([sys.executable, '-m', 'scoring.calibration_figure',
                        str(bad)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 2
  (line,) = out.stderr.strip().splitlines()
  assert line.startswith('scoring.calibration_figure: ')
