"""One writer per run directory, and when a launch starts, resumes or
refuses (harness.run_directory's table)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from harness import config as config_lib
from harness import records
from harness import run_directory
from tests import scoring_fixtures as fx

CONFIG = config_lib.RunConfig(workload='fmnist_fc', submission='adam')


def _run(tmp_path, status: str | None = None, **summary) -> os.PathLike:
  """A run directory written by CONFIG; no summary when `status` is None."""
  path = fx.write_run(tmp_path, 'fmnist_fc', 'adam',
                      status=status or 'reached_target',
                      finished=status is not None,
                      summary_overrides=summary or None)
  meta = json.loads((path / records.META_FILE).read_text())
  meta['config'] = json.loads(json.dumps(dataclasses.asdict(CONFIG)))
  (path / records.META_FILE).write_text(json.dumps(meta))
  return path


def _source_of(path) -> str:
  """The source hash the run in `path` was started with ('new' if none)."""
  try:
    meta = records.read_json(path / records.META_FILE, records.Meta)
  except records.RecordError:
    return 'new'
  return meta.submission.source_sha256


def _open(path, **changes) -> run_directory.Opened:
  source = changes.pop('source_sha256', None) or _source_of(path)
  return run_directory.open_run(path, dataclasses.replace(CONFIG, **changes),
                                source_sha256=source, started='now')


def test_empty_directory_starts(tmp_path):
  opened = _open(tmp_path / 'new')
  assert not opened.resume
  opened.close()


@pytest.mark.parametrize('status', ['reached_target', 'budget_exhausted',
                                    'diverged'])
def test_finished_run_is_kept_unless_overwritten(tmp_path, status):
  path = _run(tmp_path, status=status, final_step=7)
  with pytest.raises(run_directory.RunDirectoryError,
                     match=f'finished run \\({status} at step 7\\).*'
                     '--overwrite'):
    _open(path)
  assert (path / records.SUMMARY_FILE).exists()
  opened = _open(path, overwrite=True)
  assert not opened.resume
  assert not (path / records.SUMMARY_FILE).exists()
  assert not (path / records.METRICS_FILE).exists()
  opened.close()


def test_setup_error_does_not_block_the_rerun(tmp_path):
  path = _run(tmp_path, status='error', final_step=0, error='missing data')
  opened = _open(path)
  assert not opened.resume
  opened.close()


@pytest.mark.parametrize('summary', [
    {},  # Killed: no summary.
    {'status': 'interrupted', 'final_step': 12},
    {'status': 'error', 'final_step': 12, 'error': 'in update'},
])
def test_unfinished_run_resumes(tmp_path, summary):
  path = _run(tmp_path, **summary)
  opened = _open(path)
  assert opened.resume
  assert (path / records.METRICS_FILE).exists()
  opened.close()
  with pytest.raises(run_directory.RunDirectoryError,
                     match='unfinished run.*--resume.*--overwrite'):
    _open(path, resume=False)


def test_resume_refuses_changed_flags(tmp_path):
  path = _run(tmp_path)
  with pytest.raises(run_directory.RunDirectoryError,
                     match="seed: 0 -> 1.*same flags"):
    _open(path, seed=1)
  # Flags that change no record may differ.
  opened = _open(path, quiet=True, checkpoint_every=5)
  assert opened.resume
  opened.close()


def test_resume_refuses_changed_code(tmp_path):
  path = _run(tmp_path)
  with pytest.raises(run_directory.RunDirectoryError,
                     match='source of submission adam changed'):
    _open(path, source_sha256='edited')


def test_unreadable_meta_is_refused_unless_overwritten(tmp_path):
  path = _run(tmp_path)
  (path / records.META_FILE).write_text('{')
  with pytest.raises(run_directory.RunDirectoryError, match='overwrite'):
    _open(path)
  _open(path, overwrite=True).close()


def test_live_run_refuses_a_second_launch_and_an_overwrite(tmp_path):
  path = _run(tmp_path)
  first = _open(path)
  for changes in ({}, {'overwrite': True}):
    with pytest.raises(run_directory.RunDirectoryError,
                       match=f'in use by host .* pid {os.getpid()} since now'):
      _open(path, **changes)
  assert records.lock_holder(path).startswith('host ')
  first.close()
  assert records.lock_holder(path) is None
  _open(path).close()


def test_lock_of_a_killed_process_is_free(tmp_path):
  path = tmp_path / 'run'
  script = ('import os, sys\n'
            'from harness import records\n'
            'records.RunLock(sys.argv[1]).acquire("then")\n'
            'os._exit(0)\n')
  subprocess.run([sys.executable, '-c', script, str(path)], check=True,
                 timeout=120)
  assert (path / records.LOCK_FILE).exists()
  assert records.lock_holder(path) is None


def test_truncate_from_drops_later_records_and_torn_lines(tmp_path):
  path = _run(tmp_path, status='interrupted', final_step=12)
  with open(path / records.METRICS_FILE, 'a') as f:
    f.write('{"step": 99, "trunc')
  before = records.read_run(path).metrics
  writer = records.RunWriter(path)
  writer.truncate_from(before[1].step)
  run = records.read_run(path)
  assert run.metrics == before[:1]
  assert run.summary is None and not run.warnings
