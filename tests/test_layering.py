"""The one-way data flow: workloads -> submissions -> harness -> records ->
scoring. No module imports a package above its own, and scoring reads runs
only through `harness.records` (the main job and the paper's figures, which
train and then score, are the modules that compose the layers)."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ('workloads', 'submissions', 'harness', 'scoring')
# Scoring modules that may call the runner: the composed main job and its
# entry point (which names the runner's set-up errors), and the paper's
# figures (each trains its sweep as a suite, then judges its records).
COMPOSERS = {'scoring.main_job', 'scoring.demo'}
COMPOSER_PACKAGES = ('scoring.paper_figures.',)
# What else of the harness scoring may use: none of it trains or reads runs
# (one-line errors of entry points and their compilation cache, provenance
# facts, the one mapping from records to TensorBoard scalars, which the live
# runner shares, and the calibration record with its rules, which read
# nothing but records).
SCORING_MAY_USE = ('harness.records', 'harness.cli',
                   'harness.compilation_cache', 'harness.provenance',
                   'harness.tensorboard_log', 'harness.calibration')


def _imports(path: pathlib.Path) -> set[str]:
  tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      found.update(f'{node.module}.{alias.name}' for alias in node.names)
  return found


def _modules():
  for layer in LAYERS:
    for path in sorted((ROOT / layer).rglob('*.py')):
      name = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
      yield name.removesuffix('.__init__'), path


@pytest.mark.parametrize('module, path', list(_modules()),
                         ids=lambda v: v if isinstance(v, str) else '')
def test_no_module_imports_a_layer_above_its_own(module, path):
  rank = LAYERS.index(module.split('.')[0])
  for imported in _imports(path):
    top = imported.split('.')[0]
    if top in LAYERS:
      assert LAYERS.index(top) <= rank, f'{module} imports {imported}'
    if module.startswith('harness.records'):
      assert top not in LAYERS or imported.startswith('harness.records'), (
          f'the records contract imports {imported}')
    if top == 'harness' and module.startswith('scoring.') and (
        module not in COMPOSERS and not module.startswith(COMPOSER_PACKAGES)):
      assert imported.startswith(SCORING_MAY_USE), (
          f'{module} reads runs through {imported}, not harness.records')


def test_the_check_sees_the_imports_it_forbids(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('from harness import runner\nimport scoring.aeos\n'
                 'from . import sibling\n')
  assert _imports(bad) == {'harness.runner', 'scoring.aeos'}


def test_the_calibration_record_scoring_reads_reads_only_records():
  imported = _imports(ROOT / 'harness' / 'calibration.py')
  assert {i for i in imported if i.split('.')[0] in LAYERS} <= {
      i for i in imported if i.startswith('harness.records')}
