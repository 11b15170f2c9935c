"""The names a leaderboard ranks runs under: identities and splits.

`names(runs)` gives each run its (workload, submission) name and a note per
split; `scoring.run_set` documents the rules (a submission is identified by
(name, baseline, source SHA-256); runs whose workload settings, data source
or batch regime differ are ranked apart, the most common keeping the plain
name).
"""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Hashable, Iterable, Mapping, Sequence, TypeVar

from harness import records

_K = TypeVar('_K', bound=Hashable)


def _canonical(value: Any) -> str:
  return json.dumps(value, sort_keys=True, default=str)


def _flat(value: Any, prefix: str = '') -> dict[str, str]:
  """Nested JSON data as {dotted key: canonical JSON of the leaf}."""
  if isinstance(value, dict) and value:
    out = {}
    for key, item in value.items():
      out.update(_flat(item, f'{prefix}{key}.'))
    return out
  return {prefix.rstrip('.'): _canonical(value)}


def _difference(variant: Mapping[str, str], plain: Mapping[str, str]) -> str:
  """`key=value, ...` where `variant` differs from `plain`, shortened."""
  keys = sorted(k for k in variant.keys() | plain.keys()
                if variant.get(k) != plain.get(k))
  parts = [f'{k}={variant.get(k, "absent")[:24]}' for k in keys]
  text = ', '.join(parts)
  return text if len(text) <= 72 else text[:71] + '…'


def _unique(labels: dict[_K, str]) -> dict[_K, str]:
  """`labels` with a short hash of the key added where two coincide."""
  counts = collections.Counter(labels.values())
  return {k: label if counts[label] == 1 else
          f'{label} #{hashlib.sha256(repr(k).encode()).hexdigest()[:6]}'
          for k, label in labels.items()}


def _split(base: str, variants: Sequence[tuple[str, dict[str, str], bool]]
           ) -> dict[str, str]:
  """A label per variant key of one name.

  Args:
    base: the name.
    variants: (key, flattened settings, preferred) per run.

  Returns:
    key -> label: the preferred (else the most common, else the first)
    variant keeps `base`; the others are `base [what differs]`.
  """
  counts = collections.Counter(key for key, _, _ in variants)
  flat = {key: settings for key, settings, _ in variants}
  preferred = {key for key, _, chosen in variants if chosen}
  if len(flat) == 1:
    return {key: base for key in flat}
  plain = min(flat, key=lambda k: (k not in preferred, -counts[k], k))
  return _unique({k: base if k == plain else
                  f'{base} [{_difference(flat[k], flat[plain])}]'
                  for k in flat})


def _split_note(what: str, labels: Mapping[str, str],
                counts: Mapping[str, int]) -> str:
  shown = '; '.join(f'{labels[k]!r} ({counts[k]} runs)'
                    for k in sorted(labels, key=labels.get))
  return f'{what} are ranked apart: {shown}.'


def _data_source(meta: records.Meta) -> Any:
  data = meta.config.get('data')
  return data.get('source') if isinstance(data, dict) else None


def _workload_labels(runs: Sequence[records.RunRecord]
                     ) -> tuple[list[str], list[str]]:
  """Each run's workload name, split where settings differ; and notes."""
  keys = [_canonical([r.meta.workload.to_json(), _data_source(r.meta)])
          for r in runs]
  by_name: dict[str, list[int]] = collections.defaultdict(list)
  for i, run in enumerate(runs):
    by_name[run.workload].append(i)
  names, notes = [''] * len(runs), []
  for name in sorted(by_name):
    members = by_name[name]
    labels = _split(name, [
        (keys[i], _flat({**runs[i].meta.workload.to_json(),
                         'data.source': _data_source(runs[i].meta)}), False)
        for i in members])
    for i in members:
      names[i] = labels[keys[i]]
    if len(labels) > 1:
      notes.append(_split_note(
          f'Runs of workload {name!r} with different settings', labels,
          collections.Counter(keys[i] for i in members)))
  return names, notes


def _identity(meta: records.Meta) -> tuple[str, bool, str]:
  facts = meta.submission
  return facts.name, facts.baseline, facts.source_sha256


def _identity_labels(identities: Iterable[tuple[str, bool, str]]
                     ) -> tuple[dict[tuple[str, bool, str], str], list[str]]:
  """A name per submission identity, and a note per name shared."""
  by_name = collections.defaultdict(list)
  for identity in sorted(set(identities)):
    by_name[identity[0]].append(identity)
  labels, notes = {}, []
  for name, identities_of_name in by_name.items():
    baselines = sum(baseline for _, baseline, _ in identities_of_name)
    for identity in identities_of_name:
      _, baseline, sha = identity
      labels[identity] = name if baseline and baselines == 1 else (
          f'{name} ({"baseline" if baseline else "file"} {sha[:8] or "?"})')
    if len(identities_of_name) > 1:
      notes.append(
          f'{len(identities_of_name)} different submissions are named '
          f'{name!r} (a baseline and files, or versions of their code, told '
          'apart by source SHA-256); they are ranked apart: ' +
          ', '.join(repr(labels[i]) for i in identities_of_name) + '.')
  return _unique(labels), notes


def names(runs: Sequence[records.RunRecord]
           ) -> tuple[list[tuple[str, str]], list[str]]:
  """(workload, submission) names per run, and notes on every split."""
  workloads, notes = _workload_labels(runs)
  identity_labels, identity_notes = _identity_labels(
      _identity(r.meta) for r in runs)
  by_cell: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
  for i, run in enumerate(runs):
    by_cell[(workloads[i], identity_labels[_identity(run.meta)])].append(i)
  submissions = [''] * len(runs)
  for (workload, base), members in sorted(by_cell.items()):
    keys = {i: _canonical(runs[i].meta.regime.to_json()) for i in members}
    labels = _split(base, [
        (keys[i], _flat(runs[i].meta.regime.to_json()),
         runs[i].meta.regime == runs[i].meta.workload.default_regime)
        for i in members])
    for i in members:
      submissions[i] = labels[keys[i]]
    if len(labels) > 1:
      notes.append(_split_note(
          f'Runs of {base!r} on {workload!r} with different batch regimes',
          labels, collections.Counter(keys.values())))
  return list(zip(workloads, submissions)), identity_notes + notes
