"""Settings for the whole test suite."""

from __future__ import annotations

import os

import pytest

from harness import compilation_cache


@pytest.fixture(scope='session', autouse=True)
def entry_points_compile_afresh():
  """Entry points the tests start keep out of the user's persistent
  compilation cache, and no test depends on what an earlier one compiled;
  the cache's own tests give a directory explicitly."""
  name = compilation_cache.ENVIRONMENT_VARIABLE
  before = os.environ.get(name)
  os.environ[name] = compilation_cache.OFF
  yield
  if before is None:
    os.environ.pop(name, None)
  else:
    os.environ[name] = before
