"""Tests of `python -m harness.list_workloads`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

from harness import list_workloads
from workloads import base
from workloads import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def rows():
  return list_workloads.workload_rows()


def test_rows_cover_the_registry(rows):
  assert [r.name for r in rows] == registry.names()
  by_name = {r.name: r for r in rows}
  expected = {'fmnist_fc': 319_810, 'cifar100_wrn': 36_536_884,
              'imagenet_resnet50': 25_557_032,
              'wmt_transformer_preln': 133_521_408}
  for name, count in expected.items():
    assert by_name[name].num_params == count
  for row in rows:
    assert row.tier in {t.value for t in base.Tier}
    assert row.num_params > 0 and row.step_budget > 0
    assert row.runtime_budget_s > 0
    assert row.target_metric.startswith('validation/')
  resnet = by_name['imagenet_resnet50']
  assert (resnet.target_value, resnet.higher_is_better) == (0.22569, False)
  assert by_name['imagenet_resnet50_b65536'].batch_size == 65_536


def test_counting_allocates_nothing():
  before = len(jax.live_arrays())
  list_workloads.parameter_count(registry.get('wmt_transformer_preln'))
  assert len(jax.live_arrays()) == before


def test_tier_filter_and_formats(rows):
  smoke = [r for r in rows if r.tier == 'smoke']
  table = list_workloads.format_table(smoke)
  lines = table.splitlines()
  assert lines[0].split()[:3] == ['workload', 'tier', 'target']
  assert len(lines) == len(smoke) + 1
  assert 'fmnist_fc_relu' in table and '319,810' in table
  # Each budget in the unit that reads best: seconds, minutes, hours.
  fc = next(line for line in lines if line.startswith('fmnist_fc '))
  assert fc.split()[5:9] == ['calibrated', '300', '21', 's'], fc
  cnn = next(line for line in list_workloads.format_table(rows).splitlines()
             if line.startswith('fmnist_cnn '))
  assert '  1.0 h  ' in cnn, cnn
  parsed = json.loads(list_workloads.format_json(rows))
  assert [r['name'] for r in parsed] == registry.names()
  assert {'tier', 'target_value', 'step_budget', 'runtime_budget_s',
          'num_params'} <= set(parsed[0])


def test_command_line_lists_without_tensorflow():
  code = ('import sys; from absl import flags; '
          'from harness import list_workloads as l; '
          'flags.FLAGS(["x", "--tier=full", "--format=json"]); l.main(["x"]); '
          'assert not any(m.split(".")[0] == "tensorflow" '
          'for m in sys.modules), "TF imported"')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  parsed = json.loads(out.stdout)
  assert {r['tier'] for r in parsed} == {'full'}
  assert {r['name'] for r in parsed} >= {'imagenet_resnet50',
                                         'wmt_transformer_postln'}
