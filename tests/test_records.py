"""The run-record contract: typed records, refused when malformed, documented.

Writer and reader share the dataclasses of `harness.records`; these tests
check the round trip, that a missing, extra or ill-typed field is named with
its file and line, and that BUILD.md lists exactly the dataclasses' fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re

import pytest

from harness import records
from tests import scoring_fixtures as fx

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(tmp_path) -> pathlib.Path:
  return fx.write_run(tmp_path, 'w', 's', time_to_target_s=5.0,
                      steps_to_target=60, curvature=fx.rising_probes(4))


def _lines(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()]


def _rewrite(path: pathlib.Path, rows: list[dict]) -> None:
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_every_record_reads_back_equal(tmp_path):
  probes = fx.rising_probes(4)
  probes[1] = dataclasses.replace(probes[1], sharpness=math.inf,
                                  threshold_ratio=None,
                                  threshold_unknown='no dynamics hook')
  path = fx.write_run(tmp_path, 'w', 's', time_to_target_s=5.0,
                      steps_to_target=60, curvature=probes)
  run = records.read_run(path)
  assert not run.warnings
  assert run.curvature == tuple(probes)
  assert run.curvature[1].sharpness == math.inf  # Written as "inf".
  assert run.summary == records.read_json(path / records.SUMMARY_FILE,
                                          records.Summary)
  assert run.summary.status is records.Status.REACHED_TARGET
  assert run.meta.devices.kind == 'cpu' and run.device_kind == 'cpu'
  again = records.Meta.from_json(run.meta.to_json())
  assert again == run.meta
  assert run.metrics[-1].metrics['validation/accuracy'] == 0.85


def test_metrics_of_any_split_sit_beside_the_fixed_fields():
  line = {'step': 5, 'submission_time_s': 1.0, 'compile_free_time_s': 0.8,
          'train_loss': 0.5, 'target_reached': False, 'eval_seconds': 0.1,
          'train/loss': 0.5, 'test/bleu': 12.5,
          'schema_version': records.SCHEMA_VERSION}
  record = records.EvalRecord.from_json(line)
  assert record.metrics == {'train/loss': 0.5, 'test/bleu': 12.5}
  assert record.to_json() == line


def test_workload_details_round_trip_beside_the_typed_fields():
  facts = dataclasses.replace(fx.workload_meta('wmt'),
                              details={'direction': 'en-de', 'pre_ln': True})
  data = facts.to_json()
  assert data['direction'] == 'en-de' and 'details' not in data
  assert records.WorkloadFacts.from_json(data) == facts


@pytest.mark.parametrize('file_name, change, field, why', [
    (records.METRICS_FILE, lambda r: r.pop('train_loss'), 'train_loss',
     'missing'),
    (records.METRICS_FILE, lambda r: r.update(trainloss=1.0), 'trainloss',
     'unknown'),
    (records.METRICS_FILE, lambda r: r.update(step='3'), 'step', 'int'),
    (records.METRICS_FILE, lambda r: r.update(step=True), 'step', 'int'),
    (records.METRICS_FILE, lambda r: r.update({'validation/accuracy': 'x'}),
     'validation/accuracy', 'float'),
    (records.CURVATURE_FILE, lambda r: r.update(reason='whenever'), 'reason',
     'schedule, target, solution, final'),
    (records.CURVATURE_FILE, lambda r: r.update(sharpness_topk=3.0),
     'sharpness_topk', 'list'),
    (records.CURVATURE_FILE, lambda r: r.update(schema_version=1),
     'schema version 1', 'reads version'),
])
def test_a_bad_line_is_named_by_file_line_and_field(tmp_path, file_name,
                                                     change, field, why):
  path = _run(tmp_path)
  rows = _lines(path / file_name)
  change(rows[1])
  _rewrite(path / file_name, rows)
  run = records.read_run(path)
  (warning,) = run.warnings
  assert warning.startswith(f'{path / file_name}:2: ')
  assert field in warning and why in warning
  good = run.metrics if file_name == records.METRICS_FILE else run.curvature
  assert len(good) == len(rows) - 1  # The other lines are kept.


@pytest.mark.parametrize('change, message', [
    (lambda r: r.pop('final_step'), "missing field 'final_step'"),
    (lambda r: r.update(status='done'), "field 'status'"),
    (lambda r: r.update(time_to_target_s=[1.0]), "field 'time_to_target_s'"),
    (lambda r: r.update(extra=None), "unknown field 'extra'"),
])
def test_a_bad_summary_leaves_the_run_unfinished_and_says_why(
    tmp_path, change, message):
  path = _run(tmp_path)
  summary = json.loads((path / records.SUMMARY_FILE).read_text())
  change(summary)
  (path / records.SUMMARY_FILE).write_text(json.dumps(summary))
  run = records.read_run(path)
  assert run.summary is None and run.status is records.Status.KILLED
  (warning,) = run.warnings
  assert str(path / records.SUMMARY_FILE) in warning and message in warning


def test_a_bad_meta_makes_the_run_unreadable_with_the_field_named(tmp_path):
  path = _run(tmp_path)
  meta = json.loads((path / records.META_FILE).read_text())
  del meta['devices']['kind']
  (path / records.META_FILE).write_text(json.dumps(meta))
  with pytest.raises(records.RecordError,
                     match=r"meta\.json: field 'devices': missing field "
                     r"'kind'"):
    records.read_run(path)


def test_the_preconditioner_file_lives_in_the_run_directory(tmp_path):
  assert records.preconditioner_path(tmp_path, 10) == (
      tmp_path / 'preconditioner_step_10.npz')
  assert 'preconditioner_step_<N>.npz' in records.__doc__


def _documented_fields() -> dict[str, list[str]]:
  """Class name -> the fields BUILD.md's run-record tables list."""
  text = (ROOT / 'BUILD.md').read_text(encoding='utf-8')
  section = text.split('## Run records', 1)[1].split('\n## ', 1)[0]
  tables = {}
  for block in re.split(r'\n### ', section)[1:]:
    heading, _, body = block.partition('\n')
    named = re.search(r'\(`(\w+)`\)\s*$', heading)
    if named:
      tables[named.group(1)] = re.findall(r'^\| `(\w+)` \|', body, re.M)
  return tables


def test_build_md_lists_exactly_the_fields_of_every_record():
  documented = _documented_fields()
  kinds = {cls.__name__: cls for cls in (
      records.Meta, records.WorkloadFacts, records.Regime,
      records.SubmissionFacts, records.Devices, records.EvalRecord,
      records.ProbeRecord, records.Summary)}
  assert set(documented) == set(kinds)
  for name, cls in kinds.items():
    assert documented[name] == list(cls.field_names()), name
