"""Per-run pages of a report, and the per-run figure from the command line."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from harness import records
from scoring import report_files
from scoring import report_html
from scoring import report_markdown
from scoring import run_figure
from scoring import run_pages
from scoring import tables
from tests import commands
from tests import scoring_fixtures as fx

PNG = b'\x89PNG\r\n\x1a\n'


def _config() -> dict:
  return {'data': {'source': 'bundled', 'data_dir': '/data/fmnist'},
          'curvature': {'every': 10}, 'log_every': 7}


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """Two experiment directories with runs of the same names, one report."""
  root = tmp_path_factory.mktemp('pages')
  paths = [
      fx.write_run(root / 'a', 'w1', 'adam', time_to_target_s=3.0,
                   steps_to_target=30, curvature=fx.rising_probes(),
                   config=_config()),
      fx.write_run(root / 'b', 'w1', 'adam', 1, 0, time_to_target_s=4.0,
                   steps_to_target=40, curvature=fx.rising_probes(),
                   config=_config()),
      fx.write_run(root / 'a', 'w1', 'sgd', status='budget_exhausted',
                   curvature=fx.rising_probes(preconditioned=False)),
  ]
  report = report_files.build_report(
      [root / 'a', root / 'b'], root / 'report', dpi=60,
      command_line=['python', '-m', 'scoring.report', '--out=x'])
  return report, [str(p) for p in paths]


def test_a_page_and_figure_per_scored_run(built):
  report, paths = built
  assert sorted(report.run_pages) == sorted(paths)
  for path, href in report.run_pages.items():
    page = report.out_dir / href
    assert page.is_file()
    figure = page.with_suffix('.png')
    assert figure.read_bytes()[:8] == PNG
    text = page.read_text()
    assert f'src="{figure.name}"' in text
    assert 'href="../index.html"' in text
    assert path in text
    assert href in report.files and f'{href[:-5]}.png' in report.files


def test_page_shows_hparams_flags_host_and_data_source(built):
  report, paths = built
  text = (report.out_dir / report.run_pages[paths[0]]).read_text()
  for section in ('Hyperparameters', 'Flags (meta.json config)',
                  'Batch regime', 'Data source', 'Host and devices',
                  'Versions', 'Times', 'Adaptive edge of stability'):
    assert f'<h2>{section}</h2>' in text, section
  assert '<th>learning_rate</th><td>0.01</td>' in text
  assert '<th>curvature.every</th><td>10</td>' in text
  assert '<th>log_every</th><td>7</td>' in text
  assert '<th>source</th><td>bundled</td>' in text
  assert '<th>data_dir</th><td>/data/fmnist</td>' in text
  assert '<th>host.hostname</th><td>test-host</td>' in text
  assert '<th>devices.kind</th><td>cpu</td>' in text
  assert '<th>time to target (scored)</th><td>3 s</td>' in text
  assert '<th>onset_step</th><td>40</td>' in text
  failed = (report.out_dir / report.run_pages[paths[2]]).read_text()
  assert '<th>status</th><td>budget_exhausted</td>' in failed
  assert '<th>time to target (scored)</th><td>not reached</td>' in failed


def test_page_names_are_unique_stable_and_file_safe(tmp_path):
  a = records.run_dir(tmp_path / 'a', 'w1', 'adam', 0, 0)
  b = records.run_dir(tmp_path / 'b', 'w1', 'adam', 0, 0)
  assert run_pages.page_name(a) != run_pages.page_name(b)
  assert run_pages.page_name(a) == run_pages.page_name(str(a))
  assert run_pages.page_name(a).startswith('w1__adam__s0_t0__')
  odd = tmp_path / 'x' / 'wmt de→en' / 'my sub?' / 'study_2' / 'trial_3'
  name = run_pages.page_name(odd)
  assert re.fullmatch(r'[A-Za-z0-9._-]+', name), name
  assert '__s2_t3__' in name


def test_provenance_in_json_and_both_views(built):
  report, _ = built
  data = json.loads((report.out_dir / report_files.JSON_FILE).read_text())
  made = data['provenance']
  assert set(made['versions']) == set(report_files.PROVENANCE_PACKAGES)
  assert made['command_line'] == 'python -m scoring.report --out=x'
  assert re.fullmatch(r'[0-9a-f]{40}( \(modified\))?|unknown',
                      made['git_commit'])
  assert made['built'].endswith('+00:00')
  assert len(made['experiment_dirs']) == 2
  for name in (report_files.HTML_FILE, report_files.MARKDOWN_FILE):
    text = (report.out_dir / name).read_text()
    assert 'Provenance' in text and made['git_commit'] in text
    assert 'version: jax' in text and made['host'] in text


def test_git_commit_outside_a_checkout_is_unknown(monkeypatch, tmp_path):
  monkeypatch.setattr(report_files, '_PROJECT', tmp_path)
  assert report_files.git_commit() == 'unknown'


def test_rows_of_one_run_link_its_page():
  block = tables.Table(
      title='Runs', columns=('workload', 'submission', 'status'),
      rows=(('w', 'adam', 'ok'), ('w', 'sgd', 'ok')),
      run_paths=('/e/w/adam/study_0/trial_0', None))
  links = {'/e/w/adam/study_0/trial_0': 'runs/p.html'}
  text = report_html.render_table(block, links)
  assert text.count('<a href=') == 1
  assert '<td><a href="runs/p.html">adam</a></td>' in text
  markdown = report_markdown.render_table(block, links)
  assert '| w | [adam](runs/p.html) | ok |' in markdown
  assert '| w | sgd | ok |' in markdown
  no_column = tables.Table(title='T', columns=('workload', 'x'),
                           rows=(('w', '1'),), run_paths=tuple(links))
  text = report_html.render_table(no_column, links)
  assert '<th>run</th>' in text and '>run</a></td>' in text
  assert '[run](runs/p.html)' in report_markdown.render_table(no_column,
                                                              links)


def _legend_clear_of_data(fig) -> bool:
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  for ax in fig.axes:
    legend = ax.get_legend()
    if legend is not None and legend.get_window_extent(renderer).overlaps(
        ax.get_window_extent(renderer)):
      return False
  return True


def test_figure_panels_and_legends(built):
  _, paths = built
  with_p = run_figure.draw_run(records.read_run(paths[0]))
  without = run_figure.draw_run(records.read_run(paths[2]))
  assert len(with_p.axes) == 3
  assert len(without.axes) == 2  # No duplicated λ1(H) panel.
  assert without.axes[1].get_ylabel() == 'sharpness λ1(H)'
  labels = [line.get_label() for line in without.axes[1].lines]
  assert 'stability threshold' in labels
  for fig in (with_p, without):
    assert all(ax.get_legend() is not None for ax in fig.axes)
    assert _legend_clear_of_data(fig)
  without.axes[0].legend(loc='upper right')  # The check sees one inside.
  assert not _legend_clear_of_data(without)


def _command(*args: str) -> subprocess.CompletedProcess:
  return commands.run_module('scoring.run_figure', *args)


def test_run_figure_command_line(built, tmp_path):
  _, paths = built
  run = fx.write_run(tmp_path / 'e', 'w1', 'adam', time_to_target_s=3.0,
                     steps_to_target=30, curvature=fx.rising_probes())
  done = _command(str(run))
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == str(run / run_figure.DEFAULT_FILE)
  assert (run / run_figure.DEFAULT_FILE).read_bytes()[:8] == PNG
  out = tmp_path / 'fig.png'
  done = _command(paths[0], f'--out={out}', '--dpi=50')
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == str(out)
  assert out.read_bytes()[:8] == PNG
  missing = _command(str(tmp_path / 'nowhere'))
  assert missing.returncode == 2
  lines = missing.stderr.strip().splitlines()
  assert len(lines) == 1, missing.stderr
  assert lines[0].startswith('scoring.run_figure: error: ')
  assert 'nowhere' in lines[0]
