"""Runs the doctests of every package module that has one."""

from __future__ import annotations

import doctest
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ('harness', 'submissions', 'workloads', 'scoring')


def _defines_flags(source: str) -> bool:
  # Entry points define absl flags at import; importing two that share a
  # flag name would fail, and they hold no library code to document.
  return 'flags.DEFINE_' in source


def _modules_with_doctests() -> list[str]:
  names = []
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob('*.py')):
      source = path.read_text()
      if '>>>' in source and not _defines_flags(source):
        names.append('.'.join(path.relative_to(ROOT).with_suffix('').parts))
  return names


MODULES = _modules_with_doctests()


def test_the_curvature_example_is_found():
  assert 'harness.curvature._sharpness' in MODULES


@pytest.mark.parametrize('name', MODULES)
def test_doctests(name):
  module = importlib.import_module(name.removesuffix('.__init__'))
  failed, attempted = doctest.testmod(module)
  assert attempted > 0
  assert failed == 0
