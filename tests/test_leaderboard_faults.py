"""No bad record breaks a leaderboard: seeded corruptions of valid runs.

Each record set is a copy of one valid experiment (written with
`tests.scoring_fixtures`) with a few seeded mutations: truncations, wrong
types, deep nesting, huge integers, directories in place of files, UTF-16,
NaN in odd places, missing files, summary/metrics mismatches, duplicated
runs, missing experiment directories. Every set must build a leaderboard
(and its JSON, Markdown, HTML and CSV views) without an exception, score
every run no mutation touched, and skip every other run with an entry that
names the file at fault.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
import shutil
import subprocess
import sys
from typing import Any, Callable

import pytest

from harness import records
from scoring import comparison
from scoring import leaderboard
from scoring import report_files
from scoring import report_html
from scoring import report_markdown
from tests import scoring_fixtures as fx

REPO = pathlib.Path(__file__).resolve().parents[1]
JSON_FILES = (records.META_FILE, records.SUMMARY_FILE)
JSONL_FILES = (records.METRICS_FILE, records.CURVATURE_FILE)
RECORD_FILES = JSON_FILES + JSONL_FILES


@dataclasses.dataclass(frozen=True)
class Mutation:
  """What one mutation did.

  Attributes:
    name: the mutation.
    run: the run directory it touched (None: none in particular).
    file: the file or directory a skip must name.
    fatal: the run must not be scored.
    named: some skipped entry must name `file`, even when the run is still
      scored (a part of it skipped).
  """

  name: str
  run: pathlib.Path | None
  file: pathlib.Path
  fatal: bool = False
  named: bool = False


@dataclasses.dataclass
class RecordSet:
  root: pathlib.Path
  experiment_dirs: list[pathlib.Path]
  runs: list[pathlib.Path]
  mutations: list[Mutation] = dataclasses.field(default_factory=list)
  # Runs that may be left out; every other run must be scored.
  touched: set[pathlib.Path] = dataclasses.field(default_factory=set)
  chosen: set[pathlib.Path] = dataclasses.field(default_factory=set)


def _write_base(root: pathlib.Path) -> list[pathlib.Path]:
  """Eight runs: two workloads, two baselines, two studies; some fail."""
  runs = []
  for w_index, workload in enumerate(('w1', 'w2')):
    for s_index, submission in enumerate(('adam', 'sgd')):
      for study in (0, 1):
        reached = (w_index + s_index + study) % 3 != 2
        time_s = 10.0 + 5 * s_index + study + w_index
        runs.append(fx.write_run(
            root, workload, submission, study,
            status='reached_target' if reached else 'budget_exhausted',
            time_to_target_s=time_s if reached else None,
            steps_to_target=int(10 * time_s) if reached else None,
            curvature=fx.rising_probes(6, preconditioned=submission == 'adam'),
            summary_overrides={'solution_step': 40,
                               'sharpness_at_solution': 20.0 + study}))
  return runs


# ---- Mutations of JSON values ----


_DEEP = '"__deep__"'  # Stands for a list nested thousands of levels deep.


def _odd_values(rng: random.Random) -> list[Any]:
  return [None, True, 'x', '\ud800', [], {}, {'a': [1]}, -1, 0, 2.5,
          float('nan'), float('inf'), 10**rng.randint(19, 4000),
          json.loads(_DEEP)]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
  """Every key path into nested dicts and lists."""
  out = [prefix] if prefix else []
  if isinstance(value, dict):
    for key, item in value.items():
      out += _paths(item, prefix + (key,))
  elif isinstance(value, list):
    for index, item in enumerate(value):
      out += _paths(item, prefix + (index,))
  return out


def _set_at(value: Any, path: tuple, new: Any) -> None:
  for key in path[:-1]:
    value = value[key]
  value[path[-1]] = new


def _json_text(text: str, rng: random.Random) -> str:
  """One JSON object's text with one value replaced by an odd one."""
  data = json.loads(text)
  _set_at(data, rng.choice(_paths(data)), rng.choice(_odd_values(rng)))
  depth = rng.choice([65, 300, 5000])
  return json.dumps(data).replace(_DEEP, '[' * depth + ']' * depth)


# ---- Mutations of files ----


def _pick_file(rng: random.Random, run: pathlib.Path,
               names: tuple[str, ...] = RECORD_FILES) -> pathlib.Path:
  present = [run / n for n in names if (run / n).is_file()]
  return rng.choice(present or [run / names[0]])


def m_truncate(rng, rs, run):
  file = _pick_file(rng, run)
  data = file.read_bytes()
  file.write_bytes(data[:rng.randrange(len(data))])
  return Mutation('truncate', run, file, fatal=file.name == records.META_FILE)


def m_directory(rng, rs, run):
  file = _pick_file(rng, run)
  file.unlink()
  file.mkdir()
  (file / 'inside').write_text('{}')
  return Mutation('directory', run, file, fatal=file.name in JSON_FILES,
                  named=True)


def m_utf16(rng, rs, run):
  file = _pick_file(rng, run)
  file.write_bytes(file.read_text().encode(rng.choice(['utf-16',
                                                       'utf-16-le'])))
  return Mutation('utf16', run, file, fatal=file.name in JSON_FILES,
                  named=True)


def m_bom(rng, rs, run):
  file = _pick_file(rng, run)
  file.write_bytes(b'\xef\xbb\xbf' + file.read_bytes())
  return Mutation('bom', run, file, fatal=file.name in JSON_FILES,
                  named=True)


def m_delete(rng, rs, run):
  file = _pick_file(rng, run)
  file.unlink()
  return Mutation('delete', run, file, fatal=file.name in JSON_FILES)


def m_empty(rng, rs, run):
  file = _pick_file(rng, run)
  file.write_bytes(b'')
  return Mutation('empty', run, file, fatal=file.name in JSON_FILES)


def m_odd_json_value(rng, rs, run):
  file = _pick_file(rng, run, JSON_FILES)
  file.write_text(_json_text(file.read_text(), rng))
  return Mutation('odd_json_value', run, file)


def m_odd_line_value(rng, rs, run):
  file = _pick_file(rng, run, JSONL_FILES)
  lines = file.read_text().splitlines()
  index = rng.randrange(len(lines))
  lines[index] = _json_text(lines[index], rng)
  file.write_text('\n'.join(lines) + '\n')
  return Mutation('odd_line_value', run, file)


def m_garbage_line(rng, rs, run):
  file = _pick_file(rng, run, JSONL_FILES)
  lines = file.read_bytes().split(b'\n')
  junk = rng.choice([b'\x00' * 64, bytes(rng.randrange(256) for _ in
                                         range(40)), b'{"step": 1,,}',
                     b'[' * 100000, b'{"step": ' + b'9' * 5000 + b'}'])
  lines.insert(rng.randrange(len(lines)), junk)
  file.write_bytes(b'\n'.join(lines))
  return Mutation('garbage_line', run, file, named=True)


def m_whole_deep(rng, rs, run):
  file = _pick_file(rng, run)
  depth = rng.choice([70, 900, 100000])
  file.write_text('{"hparams": ' + '[' * depth + ']' * depth + '}\n')
  return Mutation('whole_deep', run, file, fatal=file.name in JSON_FILES,
                  named=True)


def _rewrite_summary(run: pathlib.Path, **changes: Any) -> pathlib.Path:
  file = run / records.SUMMARY_FILE
  data = json.loads(file.read_text())
  data.update(changes)
  file.write_text(json.dumps(data))
  return file


def m_mismatch(rng, rs, run):
  summary = json.loads((run / records.SUMMARY_FILE).read_text())
  if summary['time_to_target_s'] is None:
    file = _rewrite_summary(run, time_to_target_s=3.0)
  elif rng.random() < 0.5:
    file = _rewrite_summary(
        run, time_to_target_s=summary['time_to_target_s'] * rng.choice(
            [0.5, 2.0, 1.001]))
  else:
    file = _rewrite_summary(run,
                            steps_to_target=summary['steps_to_target'] + 1)
  return Mutation('mismatch', run, file, fatal=True, named=True)


def m_metrics_target_lost(rng, rs, run):
  """The target evaluation's line torn by a crash: the claim is unbacked."""
  file = run / records.METRICS_FILE
  lines = file.read_text().splitlines()
  if not any('"target_reached": true' in line for line in lines):
    return m_garbage_line(rng, rs, run)
  kept = [line for line in lines if '"target_reached": true' not in line]
  file.write_text('\n'.join(kept) + '\n' + lines[-1][:20])
  return Mutation('metrics_target_lost', run, file, fatal=True, named=True)


def m_inferred_status(rng, rs, run):
  file = _rewrite_summary(run, status=rng.choice(['running', 'killed']))
  return Mutation('inferred_status', run, file, fatal=True, named=True)


def m_killed(rng, rs, run):
  file = run / records.SUMMARY_FILE
  file.unlink()
  (run / records.LOCK_FILE).write_text('host gone pid 1 since then\n')
  return Mutation('killed', run, file, fatal=True, named=True)


def m_lock_and_checkpoints(rng, rs, run):
  """Files a reader ignores: the run is still scored."""
  (run / records.LOCK_FILE).write_text('host h pid 2 since then\n')
  (run / records.CHECKPOINT_DIR / '100').mkdir(parents=True)
  (run / records.CHECKPOINT_DIR / '100' / 'state').write_bytes(b'\x00\x01')
  rs.touched.discard(run)
  return Mutation('lock_and_checkpoints', run, run / records.LOCK_FILE)


def m_schema_version(rng, rs, run):
  file = _pick_file(rng, run)
  lines = file.read_text().splitlines()
  index = rng.randrange(len(lines))
  data = json.loads(lines[index])
  data['schema_version'] = rng.choice([1, 2, 99, '3'])
  lines[index] = json.dumps(data)
  file.write_text('\n'.join(lines) + '\n')
  return Mutation('schema_version', run, file,
                  fatal=file.name == records.META_FILE)


def m_regime(rng, rs, run):
  """A run with another batch regime: ranked apart, still scored."""
  file = run / records.META_FILE
  data = json.loads(file.read_text())
  data['regime'].update(full_batch=False, batch_size=32, chunk_size=32)
  file.write_text(json.dumps(data))
  rs.touched.discard(run)
  return Mutation('regime', run, file)


def m_duplicate(rng, rs, run):
  """The run copied into a second experiment directory, maybe as a
  set-up error that started later (which must not displace it)."""
  other = rs.root / f'copy{len(rs.experiment_dirs)}'
  if other not in rs.experiment_dirs:
    rs.experiment_dirs.append(other)
  copy = other / run.relative_to(rs.experiment_dirs[0])
  shutil.copytree(run, copy)
  if rng.random() < 0.5:
    _rewrite_summary(copy, status='error', final_step=0,
                     time_to_target_s=None, steps_to_target=None,
                     error='ImportError: no module')
    meta = json.loads((copy / records.META_FILE).read_text())
    meta['start_time'] = '2026-01-01T00:00:00+00:00'
    (copy / records.META_FILE).write_text(json.dumps(meta))
    rs.touched.discard(run)  # The original must still be scored.
  else:
    rs.touched.add(run)
  rs.touched.add(copy)
  rs.runs.append(copy)
  return Mutation('duplicate', copy, copy, named=True)


def m_missing_experiment_dir(rng, rs, run):
  missing = rs.root / f'nowhere{len(rs.experiment_dirs)}'
  rs.experiment_dirs.append(missing)
  rs.touched.discard(run)
  return Mutation('missing_experiment_dir', None, missing, named=True)


MUTATIONS: tuple[Callable[..., Mutation], ...] = (
    m_truncate, m_directory, m_utf16, m_bom, m_delete, m_empty,
    m_odd_json_value, m_odd_json_value, m_odd_line_value, m_odd_line_value,
    m_garbage_line, m_whole_deep, m_mismatch, m_metrics_target_lost,
    m_inferred_status, m_killed, m_lock_and_checkpoints, m_schema_version,
    m_regime, m_duplicate, m_missing_experiment_dir)


def make_record_set(base: pathlib.Path, base_runs: list[pathlib.Path],
                    root: pathlib.Path, seed: int) -> RecordSet:
  rng = random.Random(seed)
  experiment = root / 'exp'
  shutil.copytree(base, experiment)
  runs = [experiment / r.relative_to(base) for r in base_runs]
  rs = RecordSet(root=root, experiment_dirs=[experiment], runs=list(runs))
  for _ in range(rng.choice([1, 1, 2, 3])):
    run = rng.choice(runs)
    if run in rs.chosen:
      continue
    rs.chosen.add(run)
    rs.touched.add(run)
    rs.mutations.append(rng.choice(MUTATIONS)(rng, rs, run))
  return rs


# ---- Checks ----


def _named(board: leaderboard.Leaderboard, mutation: Mutation) -> bool:
  """Some skipped entry of the mutated run names the mutated file."""
  return any(str(mutation.file) in s.reason or s.path == str(mutation.file)
             for s in board.skipped)


def check_record_set(rs: RecordSet, out: pathlib.Path) -> None:
  board = leaderboard.compute_leaderboard(rs.experiment_dirs)
  scored = {r.path for r in board.runs}
  whole = {s.path for s in board.skipped if s.whole_run}
  for run in rs.runs:
    assert str(run) in scored or str(run) in whole, (
        f'{run} is neither scored nor skipped ({rs.mutations})')
    assert not (str(run) in scored and str(run) in whole), run
  for run in set(rs.runs) - rs.touched:
    assert str(run) in scored, f'untouched {run} not scored: {board.skipped}'
  for entry in board.skipped:
    assert str(rs.root) in entry.reason, f'no file named: {entry}'
  for mutation in rs.mutations:
    if mutation.fatal:
      assert str(mutation.run) not in scored, mutation
    if mutation.named or (mutation.run is not None and
                          str(mutation.run) not in scored):
      assert _named(board, mutation), (mutation, board.skipped)
  duplicates = [s for s in board.skipped
                if s.kind is leaderboard.SkipKind.DUPLICATE]
  for entry in duplicates:
    assert entry.reason.startswith('duplicate of '), entry
  # Every view of the statistics renders.
  data = report_files.leaderboard_json(board)
  json.dumps(data, allow_nan=False)
  report_markdown.render_markdown(board, ())
  report_html.render_html(board, ())
  out.mkdir(parents=True, exist_ok=True)
  report_files.write_csvs(board, out)
  text = comparison.format_comparison(
      comparison.compare_leaderboards(data, data))
  assert '## Ranks and scores' in text


@pytest.fixture(scope='module')
def base(tmp_path_factory):
  root = tmp_path_factory.mktemp('base')
  return root, _write_base(root)


def _run_sets(base, tmp_path, seeds) -> set[str]:
  """Checks a record set per seed; returns the mutations made."""
  root, runs = base
  made = set()
  for seed in seeds:
    rs = make_record_set(root, runs, tmp_path / f'set{seed}', seed)
    made |= {m.name for m in rs.mutations}
    try:
      check_record_set(rs, tmp_path / f'set{seed}' / 'csv')
    except Exception as e:
      raise AssertionError(f'record set seed {seed}: {rs.mutations}') from e
    shutil.rmtree(tmp_path / f'set{seed}')
  return made


def test_300_corrupted_record_sets_build(base, tmp_path):
  made = _run_sets(base, tmp_path, range(300))
  assert made == {f.__name__.removeprefix('m_') for f in MUTATIONS}


@pytest.mark.slow
def test_1000_corrupted_record_sets_build(base, tmp_path):
  _run_sets(base, tmp_path, range(1000, 2000))


def test_full_reports_of_corrupted_sets_build_and_compare(base, tmp_path):
  """The whole build (figures included) for a few sets, then compare."""
  root, runs = base
  reports = []
  for seed in (3, 17, 42):
    rs = make_record_set(root, runs, tmp_path / f'set{seed}', seed)
    out = tmp_path / f'report{seed}'
    report_files.build_report(rs.experiment_dirs, out)
    assert (out / report_files.HTML_FILE).exists()
    reports.append(out)
  result = comparison.compare_reports(reports[0], reports[1])
  assert comparison.format_comparison(result)


# ---- A corrupt leaderboard.json ----


def _report_json(base, tmp_path) -> dict:
  root, _ = base
  return report_files.leaderboard_json(leaderboard.compute_leaderboard([root]))


def test_compare_survives_100_corrupted_leaderboards(base, tmp_path):
  good = _report_json(base, tmp_path)
  text = json.dumps(good)
  rng = random.Random(7)
  refused = 0
  for i in range(100):
    path = tmp_path / f'{i}.json'
    choice = i % 4
    if choice == 0:
      path.write_text(text[:rng.randrange(len(text))])
    elif choice == 1:
      path.write_text(_json_text(text, rng))
    elif choice == 2:
      path.write_bytes(text.encode('utf-16'))
    else:
      data = json.loads(text)
      data['groups'][0][rng.choice(['standings', 'cells', 'name'])] = (
          rng.choice(_odd_values(rng)[:10]))
      path.write_text(json.dumps(data))
    try:
      loaded = comparison.load_report(path)
    except comparison.ReportError as e:
      assert str(path) in str(e)
      refused += 1
      continue
    comparison.format_comparison(comparison.compare_leaderboards(good,
                                                                 loaded))
  assert refused >= 50  # Truncations, UTF-16 and broken structure.


@pytest.mark.parametrize('content, message', [
    (None, 'no such file'),
    ('{"groups": [', 'not valid JSON'),
    ('{"schema": "someone.else/9", "groups": []}', 'expected a leaderboard'),
    ('{"schema": "aeosperf.leaderboard/1", "groups": [{"name": 1}]}',
     'not a usable leaderboard'),
])
def test_compare_command_says_one_line_and_exits_2(base, tmp_path, content,
                                                   message):
  good = tmp_path / 'good'
  good.mkdir()
  (good / report_files.JSON_FILE).write_text(
      json.dumps(_report_json(base, tmp_path)))
  bad = tmp_path / 'bad'
  bad.mkdir()
  if content is not None:
    (bad / report_files.JSON_FILE).write_text(content)
  run = subprocess.run(
      [sys.executable, '-m', 'scoring.compare', f'--before={good}',
       f'--after={bad}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert run.returncode == 2, run.stderr
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
  assert str(bad / report_files.JSON_FILE) in lines[0]
  assert message in lines[0]


# ---- Replacing the report directory ----


def _tree(directory: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in sorted(directory.rglob('*')) if p.is_file()}


def test_a_failed_rebuild_leaves_the_old_report_intact(base, tmp_path,
                                                       monkeypatch):
  root = tmp_path / 'exp'
  shutil.copytree(base[0], root)
  out = tmp_path / 'report'
  report_files.build_report([root], out)
  before = _tree(out)
  # The rebuild would differ: one more run.
  fx.write_run(root, 'w3', 'adam', time_to_target_s=1.0, steps_to_target=10)

  def fail(*args, **kwargs):
    raise RuntimeError('disk full, say')

  monkeypatch.setattr(report_html, 'render_html', fail)
  with pytest.raises(RuntimeError, match='disk full'):
    report_files.build_report([root], out)  # After leaderboard.json.
  assert _tree(out) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['exp', 'report']
  monkeypatch.undo()
  report_files.build_report([root], out)
  assert 'w3' in (out / report_files.JSON_FILE).read_text()


def test_a_rebuild_replaces_the_whole_directory(base, tmp_path):
  root, _ = base
  out = tmp_path / 'report'
  report_files.build_report([root], out)
  stale = out / 'figures' / 'old-group__profile.png'
  stale.write_bytes(b'old')
  report = report_files.build_report([root], out)
  assert not stale.exists()
  assert sorted(_tree(out)) == sorted(report.files)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['report']


def test_a_directory_that_is_not_a_report_is_never_replaced(base, tmp_path):
  root, _ = base
  (tmp_path / 'notes.txt').write_text('mine')
  with pytest.raises(report_files.ReportError,
                     match="holds 'notes.txt', which is not part of a report"):
    report_files.build_report([root], tmp_path)
  assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_report_command_says_one_line_and_exits_2(tmp_path):
  run = subprocess.run(
      [sys.executable, '-m', 'scoring.report',
       f'--experiment_dirs={tmp_path / "nowhere"}',
       f'--out={tmp_path / "report"}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert run.returncode == 2, run.stderr
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and str(tmp_path / 'nowhere') in lines[0], lines
