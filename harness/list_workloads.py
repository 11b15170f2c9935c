r"""Lists the registered workloads: `python -m harness.list_workloads`.

Prints each workload's tier, target (validation metric and value) and where
it comes from (calibrated, literature or provisional), step and
runtime budgets, default batch and parameter count. Parameter counts come
from `jax.eval_shape` of the workload's `init_model_fn`: shapes only,
nothing allocated, no data read. Example::

  python -m harness.list_workloads --tier=full --format=json

This module only parses flags; `workload_rows` and the formatters do the
work. A bad flag or an unexpected argument ends in one line,
`harness.list_workloads: error: ...`, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

from absl import app
from absl import flags
import jax

from harness import cli
from workloads import base
from workloads import registry

PROGRAM = 'harness.list_workloads'

_TIER = flags.DEFINE_enum('tier', None, [t.value for t in base.Tier],
                          'List only the workloads of this tier.')
_FORMAT = flags.DEFINE_enum('format', 'table', ['table', 'json'],
                            'Output format.')


@dataclasses.dataclass(frozen=True)
class WorkloadRow:
  """One workload's listing.

  Attributes:
    name: registry name.
    tier: 'smoke', 'small' or 'full'.
    target_metric: e.g. 'validation/accuracy'.
    target_value: the value to reach.
    higher_is_better: whether the target is a lower bound.
    target_source: 'calibrated' (by `harness.calibrate`, its record in
      workloads/calibrations/), 'literature' or 'provisional'.
    step_budget: steps allowed.
    runtime_budget_s: submission time allowed, in seconds.
    batch_size: the default regime's batch (the train size when full batch).
    full_batch: the default regime's mode.
    num_params: trainable parameters.
  """

  name: str
  tier: str
  target_metric: str
  target_value: float
  higher_is_better: bool
  target_source: str
  step_budget: int
  runtime_budget_s: float
  batch_size: int
  full_batch: bool
  num_params: int


def parameter_count(workload: base.Workload) -> int:
  """Trainable parameters of `workload`'s model, from shapes alone."""
  params, _ = jax.eval_shape(workload.init_model_fn, jax.random.key(0))
  return base.count_params(params)


def workload_row(workload: base.Workload) -> WorkloadRow:
  regime = workload.default_regime
  return WorkloadRow(
      name=workload.name, tier=workload.tier.value,
      target_metric=f'validation/{workload.target_metric_name}',
      target_value=workload.target_value,
      higher_is_better=workload.target_higher_is_better,
      target_source=workload.target_source.value,
      step_budget=workload.step_budget,
      runtime_budget_s=workload.runtime_budget_s,
      batch_size=regime.batch_size, full_batch=regime.full_batch,
      num_params=parameter_count(workload))


def workload_rows(tier: str | None = None) -> list[WorkloadRow]:
  """Rows of the registered workloads (of one tier if given), by name."""
  workloads = (registry.get(name) for name in registry.names())
  return [workload_row(w) for w in workloads
          if tier is None or w.tier.value == tier]


def _target(row: WorkloadRow) -> str:
  relation = '>=' if row.higher_is_better else '<='
  return f'{row.target_metric} {relation} {row.target_value:g}'


def _batch(row: WorkloadRow) -> str:
  return f'full ({row.batch_size:,})' if row.full_batch else (
      f'{row.batch_size:,}')


def _runtime(row: WorkloadRow) -> str:
  seconds = row.runtime_budget_s
  if seconds < 60:
    return f'{seconds:g} s'
  if seconds < 3600:
    return f'{seconds / 60:.1f} min'
  return f'{seconds / 3600:.1f} h'


_COLUMNS = (
    ('workload', lambda r: r.name),
    ('tier', lambda r: r.tier),
    ('target', _target),
    ('source', lambda r: r.target_source),
    ('steps', lambda r: f'{r.step_budget:,}'),
    ('runtime', _runtime),
    ('batch', _batch),
    ('parameters', lambda r: f'{r.num_params:,}'),
)


def format_table(rows: Sequence[WorkloadRow]) -> str:
  """A fixed-width text table, one workload per line."""
  cells = [[name for name, _ in _COLUMNS]]
  cells += [[cell(row) for _, cell in _COLUMNS] for row in rows]
  widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
  return '\n'.join('  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                   for line in cells)


def format_json(rows: Sequence[WorkloadRow]) -> str:
  """A JSON list of the rows' fields."""
  return json.dumps([dataclasses.asdict(r) for r in rows], indent=2)


_FORMATTERS = {'table': format_table, 'json': format_json}


parse_flags = cli.flags_parser(PROGRAM)


def main(argv: Sequence[str]) -> None:
  cli.no_arguments(PROGRAM, argv, hint='choose with --tier and --format')
  print(_FORMATTERS[_FORMAT.value](workload_rows(_TIER.value)))


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
