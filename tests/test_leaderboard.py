"""Leaderboard reports over hand-made experiment directories, and compare."""

import csv
import dataclasses
import html
import json
import logging
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from harness import records
from scoring import comparison
from scoring import leaderboard
from scoring import report_files
from scoring import report_markdown
from scoring import tables
from tests import scoring_fixtures as fx

CHROMIUM = '/usr/bin/chromium'
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
  root = tmp_path_factory.mktemp('experiment')
  bad = fx.make_experiment(root)
  return root, bad


@pytest.fixture(scope='module')
def report(experiment, tmp_path_factory):
  root, _ = experiment
  return report_files.build_report([root], tmp_path_factory.mktemp('report'))


def _group(board, name):
  return next(g for g in board.groups if g.name == name)


def test_scores_and_ranks_by_hand(report):
  cpu = _group(report.leaderboard, 'cpu')
  got = {s.submission: s.score for s in cpu.standings}
  assert got == pytest.approx(fx.EXPECTED_SCORES)
  assert [(s.rank, s.submission, s.workloads_reached)
          for s in cpu.standings] == [(1, 'sgd', 2), (2, 'adam', 1)]
  assert [w.name for w in cpu.workloads] == ['w1', 'w2', 'w3']
  assert cpu.cell('w1', 'adam').time_s == 10.0
  assert cpu.cell('w1', 'sgd').time_s == 25.0
  assert cpu.cell('w1', 'sgd').ratio == 2.5
  assert math.isinf(cpu.cell('w3', 'sgd').ratio)  # Everyone failed on w3.


def test_representative_run_sets_the_median(report, experiment):
  root, _ = experiment
  cpu = _group(report.leaderboard, 'cpu')
  # sgd w1: studies 20, inf, 25 -> median study is study 2 (trial 0).
  assert cpu.cell('w1', 'sgd').representative == str(
      root / 'w1' / 'sgd' / 'study_2' / 'trial_0')
  assert cpu.cell('w1', 'adam').representative.endswith('study_0/trial_0')
  adam = cpu.cell('w1', 'adam').aeos
  assert adam.preconditioned and adam.onset_step == 40
  assert adam.sharpness_growth == pytest.approx(3.0)
  # Without a preconditioner lambda_1(H) is the ratio times the threshold.
  assert cpu.cell('w1', 'sgd').aeos.sharpness_growth == pytest.approx(1.05)
  assert not cpu.cell('w1', 'sgd').aeos.preconditioned
  assert len(cpu.cell('w1', 'adam').series.steps) == 12


def test_hardware_kinds_are_ranked_separately(report):
  groups = report.leaderboard.groups
  assert [g.name for g in groups] == ['cpu', fx.GPU_KIND]
  assert not any(g.mixed for g in groups)
  gpu = _group(report.leaderboard, fx.GPU_KIND)
  assert [(s.submission, s.score, s.rank) for s in gpu.standings] == [
      ('adam', 1.0, 1)]  # A single submission is fastest everywhere.


def test_mixed_hardware_only_with_flag_and_marked(experiment, tmp_path):
  root, _ = experiment
  out = report_files.build_report([root], tmp_path, allow_mixed_hardware=True)
  (group,) = out.leaderboard.groups
  assert group.mixed and group.name == leaderboard.MIXED_GROUP
  assert group.device_kinds == ('NVIDIA H100 80GB HBM3', 'cpu')
  # adam w1: studies 10, 11, 9 (cpu) and 5 (gpu): median 9.5.
  assert group.cell('w1', 'adam').time_s == 9.5
  ratio = 25.0 / 9.5
  scores = {s.submission: s.score for s in group.standings}
  assert scores['sgd'] == pytest.approx((4 - ratio + 3) / 9)
  for name in ('report.md', 'index.html'):
    text = (tmp_path / name).read_text()
    assert 'MIXED HARDWARE' in text, name
  assert json.loads((tmp_path / 'leaderboard.json').read_text())[
      'groups'][0]['mixed'] is True


def test_bad_records_are_skipped_named_and_logged(experiment, tmp_path,
                                                  caplog):
  root, bad = experiment
  with caplog.at_level(logging.WARNING):
    out = report_files.build_report([root], tmp_path)
  skipped = {(s.path, s.whole_run): s.reason for s in out.leaderboard.skipped}
  assert 'meta.json' in skipped[(str(bad['corrupt_meta']), True)]
  assert 'killed at step 300' in skipped[(str(bad['killed']), True)]
  assert 'summary.json' in skipped[(str(bad['corrupt_summary']), True)]
  assert 'truncated last line' in skipped[(str(bad['truncated']), False)]
  assert len(skipped) == 4
  logged = caplog.text
  for path in bad.values():
    assert str(path) in logged
  markdown = (tmp_path / 'report.md').read_text()
  html_text = (tmp_path / 'index.html').read_text()
  skipped_section = markdown.split('### Skipped')[1]
  for path in bad.values():
    assert str(path) in skipped_section
    assert str(path) in html_text
  assert 'metrics.jsonl:4' in skipped_section


def test_duplicate_and_timeless_runs_are_skipped(tmp_path):
  first, second = tmp_path / 'first', tmp_path / 'second'
  fx.write_run(first, 'w', 'adam', time_to_target_s=3.0, steps_to_target=30)
  fx.write_run(second, 'w', 'adam', time_to_target_s=1.0, steps_to_target=10)
  timeless = fx.write_run(second, 'w', 'adam', 1, 0,
                          status='budget_exhausted',
                          summary_overrides={'status': 'reached_target'})
  board = leaderboard.compute_leaderboard([first, second])
  assert [r.path for r in board.runs] == [str(first / 'w/adam/study_0/trial_0')]
  reasons = {s.path: s.reason for s in board.skipped}
  assert f'duplicate of {first / "w/adam/study_0/trial_0"}' in reasons[
      str(second / 'w/adam/study_0/trial_0')]
  assert 'time_to_target_s' in reasons[str(timeless)]
  assert board.groups[0].cell('w', 'adam').time_s == 3.0


def test_run_with_truncated_line_is_still_scored(report, experiment):
  _, bad = experiment
  paths = {r.path for r in report.leaderboard.runs}
  assert str(bad['truncated']) in paths
  assert str(bad['killed']) not in paths
  assert str(bad['corrupt_summary']) not in paths
  assert len(report.leaderboard.runs) == len(fx.EXPERIMENT_TIMES) + 1


def test_json_and_csv_are_views_of_the_same_statistics(report):
  out = report.out_dir
  data = json.loads((out / 'leaderboard.json').read_text())
  assert data['schema'] == report_files.JSON_SCHEMA
  cpu = next(g for g in data['groups'] if g['name'] == 'cpu')
  assert {s['submission']: s['score'] for s in cpu['standings']} == \
      pytest.approx(fx.EXPECTED_SCORES)
  w3 = next(c for c in cpu['cells'] if c['workload'] == 'w3')
  assert w3['time_s'] is None and w3['ratio'] is None  # inf -> null.
  assert 'series' not in data['runs'][0]
  with open(out / 'runs.csv') as f:
    runs = list(csv.DictReader(f))
  assert len(runs) == len(report.leaderboard.runs)
  assert {r['status'] for r in runs} == {'reached_target', 'budget_exhausted'}
  first = next(r for r in runs if r['path'].endswith('w1/adam/study_0/trial_0'))
  assert float(first['time_to_target_s']) == 10.0
  assert int(first['onset_step']) == 40
  with open(out / 'scores.csv') as f:
    rows = list(csv.DictReader(f))
  assert [(r['group'], r['rank'], r['submission']) for r in rows] == [
      ('cpu', '1', 'sgd'), ('cpu', '2', 'adam'), (fx.GPU_KIND, '1', 'adam')]
  assert float(rows[0]['score']) == pytest.approx(0.5)
  with open(out / 'times.csv') as f:
    times = list(csv.DictReader(f))
  assert len(times) == 7  # 3 x 2 cpu cells + 1 gpu cell.


def test_figures_written_and_embedded(report):
  out = report.out_dir
  names = sorted(p.name for p in (out / 'figures').iterdir())
  # Which figures there are is scoring.figures' (tests/test_figures.py);
  # every group has at least its profile and times.
  assert names == sorted(f.removeprefix('figures/') for f in report.files
                         if f.startswith('figures/'))
  for group in ('cpu', 'NVIDIA-H100-80GB-HBM3'):
    assert {f'{group}__profile.png', f'{group}__time.png'} <= set(names)
  for name in names:
    assert (out / 'figures' / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert f'figures/{name}' in (out / 'report.md').read_text()
  html_text = (out / 'index.html').read_text()
  sources = re.findall(r'<img src="([^"]*)"', html_text)
  assert len(sources) == len(names)
  assert all(s.startswith('data:image/png;base64,') for s in sources)
  # Self-contained but for its own run pages: nothing from anywhere else.
  assert not re.search(r'(src|href)="(?!data:|runs/[^"/]+\.html"|#)',
                       html_text)
  assert '<script' not in html_text


def test_empty_experiment_still_builds(tmp_path):
  (tmp_path / 'exp').mkdir()
  out = report_files.build_report([tmp_path / 'exp'], tmp_path / 'report')
  assert out.leaderboard.groups == ()
  assert 'No finished runs' in (tmp_path / 'report' / 'report.md').read_text()


def test_missing_experiment_dir_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere'):
    report_files.build_report([tmp_path / 'nowhere'], tmp_path / 'report')


def _probe_page(html_text: str, extra: str = '') -> dict:
  """Loads a page in headless chromium; returns what its images and tables
  looked like after load."""
  script = """<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({
    widths: Array.from(document.images, i => i.complete ? i.naturalWidth : -1),
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tbody tr').length});
  document.body.appendChild(out);
});
</script>"""
  with tempfile.TemporaryDirectory() as tmp:
    page = pathlib.Path(tmp) / 'page.html'
    page.write_text(html_text.replace('</body>', script + extra + '</body>'))
    result = subprocess.run(
        [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
         '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         f'--user-data-dir={tmp}/profile', '--virtual-time-budget=10000',
         '--dump-dom', page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True)
  match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
  assert match, f'page did not load: {result.stderr[-2000:]}'
  return json.loads(match.group(1))


_NEEDS_CHROMIUM = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f'{CHROMIUM} is absent (the test command installs Debian chromium)')


@_NEEDS_CHROMIUM
def test_html_renders_in_headless_chromium(report):
  html_text = (report.out_dir / 'index.html').read_text()
  seen = _probe_page(html_text)
  assert seen['tables'] == html_text.count('<table') >= 8
  assert seen['rows'] > 20
  assert len(seen['widths']) == len(list(
      (report.out_dir / 'figures').iterdir()))
  assert all(w > 100 for w in seen['widths']), seen['widths']
  # The probe does see a broken image.
  broken = _probe_page(html_text, '<img src="data:image/png;base64,AAAA">')
  assert broken['widths'][-1] == 0


_FRAMES_SCRIPT = """<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'probe';
  const prov = document.getElementById('provenance');
  out.textContent = JSON.stringify({
    provenance: prov ? prov.textContent : null,
    index_widths: Array.from(document.images,
                             i => i.complete ? i.naturalWidth : -1),
    frames: Array.from(document.querySelectorAll('iframe.probe'), f => {
      const d = f.contentDocument;
      if (!d || !d.body) return {href: f.getAttribute('src'), loaded: false};
      return {href: f.getAttribute('src'), loaded: true, title: d.title,
              back: Array.from(d.links, a => a.href),
              widths: Array.from(d.images,
                                 i => i.complete ? i.naturalWidth : -1)};
    })});
  document.body.appendChild(out);
});
</script>"""


def _probe_report(out_dir: pathlib.Path, hrefs) -> dict:
  """Loads the report's index in headless chromium with each page of `hrefs`
  in a frame; returns what the images, frames and provenance looked like."""
  with tempfile.TemporaryDirectory() as tmp:
    copy = pathlib.Path(tmp) / 'report'
    shutil.copytree(out_dir, copy)
    frames = ''.join(f'<iframe class="probe" src="{h}"></iframe>'
                     for h in hrefs)
    probe = copy / 'probe.html'
    probe.write_text((copy / 'index.html').read_text().replace(
        '</body>', frames + _FRAMES_SCRIPT + '</body>'))
    result = subprocess.run(
        [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
         '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         '--allow-file-access-from-files',  # Frames' documents are read.
         f'--user-data-dir={tmp}/profile', '--virtual-time-budget=20000',
         '--dump-dom', probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
  match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
  assert match, f'page did not load: {result.stderr[-2000:]}'
  return json.loads(html.unescape(match.group(1)))


@_NEEDS_CHROMIUM
def test_every_run_page_link_resolves_and_its_images_load(report):
  out = report.out_dir
  board = report.leaderboard
  assert sorted(report.run_pages) == sorted(r.path for r in board.runs)
  index = (out / 'index.html').read_text()
  linked = set(re.findall(r'href="(runs/[^"]+)"', index))
  # Exactly the rows that show one run link, each to that run's page.
  shown = {report.run_pages[p] for b in tables.document(board, ())
           if isinstance(b, tables.Table) for p in b.run_paths if p}
  assert linked == shown
  assert linked <= set(report.run_pages.values())
  markdown = (out / 'report.md').read_text()
  assert set(re.findall(r'\]\((runs/[^)]+)\)', markdown)) == linked
  hrefs = sorted(set(report.run_pages.values()))
  seen = _probe_report(out, hrefs + ['runs/no_such_page.html'])
  assert all(w > 100 for w in seen['index_widths']), seen['index_widths']
  assert 'git commit' in seen['provenance']
  assert 'version: jax' in seen['provenance']
  *frames, missing = seen['frames']
  assert not missing['loaded'], missing  # The probe sees a broken link.
  assert [f['href'] for f in frames] == hrefs
  for frame in frames:
    assert frame['loaded'] and ' — study ' in frame['title'], frame
    assert len(frame['widths']) == 1 and frame['widths'][0] > 100, frame
    assert any(a.endswith('/index.html') for a in frame['back']), frame


def test_compare_reports(report, experiment, tmp_path):
  root, _ = experiment
  faster = tmp_path / 'faster'
  fx.make_experiment(faster, with_bad_runs=False, with_gpu=False, speedup=2.0)
  report_b = report_files.build_report([faster], tmp_path / 'b')
  result = comparison.compare_reports(report.out_dir, report_b.out_dir)
  assert result.groups_only_a == (fx.GPU_KIND,)
  assert result.groups_only_b == ()
  ranks = {c.submission: c for c in result.ranks}
  # sgd halved its times: w1 12.5 s (ratio 1.25), w2 20 s.
  assert (ranks['sgd'].rank_a, ranks['sgd'].rank_b) == (1, 1)
  assert ranks['sgd'].score_delta == pytest.approx((2.75 + 3) / 9 - 0.5)
  assert ranks['adam'].score_delta == pytest.approx(0.0)
  times = {(c.workload, c.submission): c for c in result.times}
  assert times[('w1', 'sgd')].ratio == pytest.approx(0.5)
  assert times[('w1', 'adam')].ratio == pytest.approx(1.0)
  assert times[('w3', 'sgd')].ratio is None
  changed = {(c.workload, c.submission, c.statistic): c for c in result.aeos}
  at_solution = changed[('w1', 'sgd', 'sharpness_at_solution')]
  assert (at_solution.value_a, at_solution.value_b) == (20.0, 40.0)
  assert not any(c.submission == 'adam' for c in result.aeos)
  text = comparison.format_comparison(result)
  assert '×0.5' in text and 'sharpness_at_solution' in text
  assert 'not reached in either' in text


def test_compare_reports_rank_change(experiment, tmp_path):
  root, _ = experiment
  slower = tmp_path / 'slower'
  fx.make_experiment(slower, with_bad_runs=False, speedup=0.5)
  a = report_files.leaderboard_json(leaderboard.compute_leaderboard([root]))
  b = report_files.leaderboard_json(leaderboard.compute_leaderboard([slower]))
  result = comparison.compare_leaderboards(a, b)
  ranks = {(c.group, c.submission): (c.rank_a, c.rank_b) for c in result.ranks}
  # sgd w1 50 s: ratio 5 earns nothing; w2 80 s still best: 3/9 = adam's.
  assert ranks[('cpu', 'adam')] == (2, 1)
  assert ranks[('cpu', 'sgd')] == (1, 1)
  assert '2 → 1 (up 1)' in comparison.format_comparison(result)


def test_compare_rejects_non_report(tmp_path):
  (tmp_path / 'leaderboard.json').write_text('{"groups": []}')
  with pytest.raises(ValueError, match='schema'):
    comparison.load_report(tmp_path)


def test_command_lines(experiment, tmp_path):
  root, _ = experiment
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  run = subprocess.run(
      [sys.executable, '-m', 'scoring.report',
       f'--experiment_dirs={root}', f'--out={tmp_path / "r"}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  assert (tmp_path / 'r' / 'index.html').exists()
  assert 'Skipped' in run.stderr  # absl warnings name the bad files.
  shutil.copytree(tmp_path / 'r', tmp_path / 'r2')
  run = subprocess.run(
      [sys.executable, '-m', 'scoring.compare', f'--before={tmp_path / "r"}',
       f'--after={tmp_path / "r2"}', f'--out={tmp_path / "changes.md"}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  assert '## Ranks and scores' in run.stdout
  assert (tmp_path / 'changes.md').read_text() == run.stdout


# ---- Which runs count, and under which names ----


def _board_without_dirs(board):
  """The leaderboard minus the experiment directory list (order given)."""
  return dataclasses.replace(board, experiment_dirs=())


def test_duplicates_never_depend_on_the_order_of_experiment_dirs(tmp_path):
  a, b = tmp_path / 'a', tmp_path / 'b'
  # Trial 0: a finished run in a, a set-up error that started later in b.
  fx.write_run(a, 'w', 'adam', time_to_target_s=3.0, steps_to_target=30)
  fx.write_run(b, 'w', 'adam', status='error', start_time='2026-01-01',
               summary_overrides={'final_step': 0, 'error': 'ImportError'})
  # Trial 1: both finished; b's started later and wins.
  fx.write_run(a, 'w', 'adam', 0, 1, time_to_target_s=4.0, steps_to_target=40)
  fx.write_run(b, 'w', 'adam', 0, 1, time_to_target_s=5.0, steps_to_target=50,
               start_time='2025-06-01T00:00:00+00:00')
  # Trial 2: killed in a, finished in b.
  fx.write_run(a, 'w', 'adam', 0, 2, finished=False)
  fx.write_run(b, 'w', 'adam', 0, 2, status='budget_exhausted')
  one = leaderboard.compute_leaderboard([a, b])
  other = leaderboard.compute_leaderboard([b, a])
  assert _board_without_dirs(one) == _board_without_dirs(other)
  assert {r.path for r in one.runs} == {
      str(a / 'w/adam/study_0/trial_0'), str(b / 'w/adam/study_0/trial_1'),
      str(b / 'w/adam/study_0/trial_2')}
  dropped = {s.path: s.reason for s in one.skipped
             if s.kind is leaderboard.SkipKind.DUPLICATE}
  assert dropped == {
      str(b / 'w/adam/study_0/trial_0'): (
          f'duplicate of {a / "w/adam/study_0/trial_0"} (same workload, '
          'submission, study and trial); kept a finished run over a set-up '
          'error or inconsistent records'),
      str(a / 'w/adam/study_0/trial_1'): (
          f'duplicate of {b / "w/adam/study_0/trial_1"} (same workload, '
          'submission, study and trial); kept the later start_time'),
      str(a / 'w/adam/study_0/trial_2'): (
          f'duplicate of {b / "w/adam/study_0/trial_2"} (same workload, '
          'submission, study and trial); kept a finished run over a run that '
          'has not finished'),
  }
  # The study's fastest trial: 3 s (trial 0), not the error or 4 s.
  assert one.groups[0].cell('w', 'adam').time_s == 3.0


def test_a_file_named_like_a_baseline_is_ranked_apart(tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=3.0,
               steps_to_target=30)
  other = tmp_path / 'other'
  fx.write_run(other, 'w', 'adam', time_to_target_s=2.0, steps_to_target=20,
               baseline=False, source_sha256='1a2b3c4d' + '0' * 56)
  board = leaderboard.compute_leaderboard([tmp_path, other])
  (group,) = board.groups
  assert group.submissions == ('adam', 'adam (file 1a2b3c4d)')
  assert group.cell('w', 'adam (file 1a2b3c4d)').time_s == 2.0
  assert group.cell('w', 'adam').time_s == 3.0
  assert not [s for s in board.skipped if s.whole_run]  # Not duplicates.
  (note,) = board.notes
  assert "named 'adam'" in note and 'adam (file 1a2b3c4d)' in note
  entry = next(r for r in board.runs if not r.baseline)
  assert (entry.submission_name, entry.source_sha256[:8]) == ('adam',
                                                              '1a2b3c4d')


def test_two_versions_of_a_baseline_are_ranked_apart(tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', source_sha256='aaaa' * 16,
               time_to_target_s=3.0, steps_to_target=30)
  fx.write_run(tmp_path, 'w', 'adam', 1, source_sha256='bbbb' * 16,
               time_to_target_s=5.0, steps_to_target=50)
  (group,) = leaderboard.compute_leaderboard([tmp_path]).groups
  assert group.submissions == ('adam (baseline aaaaaaaa)',
                               'adam (baseline bbbbbbbb)')


def test_runs_with_another_batch_regime_are_not_trials_of_one_study(
    tmp_path):
  small = records.Regime(full_batch=False, train_size=100, batch_size=32,
                         chunk_size=32)
  for study in (0, 1):
    fx.write_run(tmp_path, 'w', 'adam', study, time_to_target_s=10.0 + study,
                 steps_to_target=100)
  fx.write_run(tmp_path, 'w', 'adam', 2, time_to_target_s=1.0,
               steps_to_target=10, regime=small)
  board = leaderboard.compute_leaderboard([tmp_path])
  (group,) = board.groups
  label = 'adam [batch_size=32, chunk_size=32, full_batch=false]'
  assert group.submissions == ('adam', label)
  # Without the split, the median of 10, 11 and 1 would be 10.
  assert group.cell('w', 'adam').time_s == 10.5
  assert group.cell('w', label).time_s == 1.0
  (note,) = board.notes
  assert 'different batch regimes' in note and label in note


def test_runs_with_other_workload_settings_or_data_are_other_workloads(
    tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=3.0,
               steps_to_target=30)
  fx.write_run(tmp_path, 'w', 'sgd', time_to_target_s=4.0, steps_to_target=40)
  fx.write_run(tmp_path, 'w', 'sgd', 1, time_to_target_s=1.0,
               steps_to_target=10, workload_overrides={'target_value': 0.5})
  fx.write_run(tmp_path, 'w', 'adam', 1, time_to_target_s=2.0,
               steps_to_target=20, config={'data': {'source': 'full'}})
  board = leaderboard.compute_leaderboard([tmp_path])
  (group,) = board.groups
  assert [w.name for w in group.workloads] == [
      'w', 'w [data.source="full"]', 'w [target_value=0.5]']
  assert group.cell('w', 'sgd').time_s == 4.0
  assert group.cell('w [target_value=0.5]', 'sgd').time_s == 1.0
  assert group.workloads[2].target_value == 0.5
  (note,) = board.notes
  assert "workload 'w' with different settings" in note


def test_killed_and_running_runs_are_told_apart(tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=3.0,
               steps_to_target=30)
  killed = fx.write_run(tmp_path, 'w', 'adam', 1, finished=False)
  running = fx.write_run(tmp_path, 'w', 'adam', 2, finished=False)
  (killed / records.LOCK_FILE).write_text('host gone pid 1 since then\n')
  with records.RunLock(running) as lock:
    lock.acquire('2025-01-01T00:00:00')
    board = leaderboard.compute_leaderboard([tmp_path])
  skipped = {s.path: s for s in board.skipped}
  assert skipped[str(killed)].kind is leaderboard.SkipKind.KILLED
  assert skipped[str(killed)].reason.startswith('killed at step 300: no ')
  assert skipped[str(running)].kind is leaderboard.SkipKind.RUNNING
  assert skipped[str(running)].reason.startswith('running at step 300')
  assert f'pid {os.getpid()}' in skipped[str(running)].reason
  assert [r.path for r in board.runs] == [str(tmp_path / 'w/adam/study_0/'
                                              'trial_0')]
  text = report_markdown.render_markdown(board, ())
  assert '(1 killed, 1 running)' in text
  assert 'whole run: killed' in text and 'whole run: running' in text


def test_summary_that_contradicts_metrics_is_not_scored(tmp_path):
  good = fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=3.0,
                      steps_to_target=30)
  bad = fx.write_run(tmp_path, 'w', 'adam', 1, time_to_target_s=3.0,
                     steps_to_target=30,
                     summary_overrides={'time_to_target_s': 1.0})
  board = leaderboard.compute_leaderboard([tmp_path])
  assert [r.path for r in board.runs] == [str(good)]
  (skip,) = board.skipped
  assert skip.kind is leaderboard.SkipKind.INCONSISTENT
  assert skip.path == str(bad)
  assert f'{bad}/summary.json: time_to_target_s 1.0 does not match' in (
      skip.reason)


def test_a_missing_experiment_dir_among_others_is_skipped(tmp_path):
  fx.write_run(tmp_path / 'a', 'w', 'adam', time_to_target_s=3.0,
               steps_to_target=30)
  board = leaderboard.compute_leaderboard([tmp_path / 'a', tmp_path / 'no'])
  (skip,) = board.skipped
  assert (skip.path, skip.kind) == (str(tmp_path / 'no'),
                                    leaderboard.SkipKind.MISSING)
  assert len(board.runs) == 1
