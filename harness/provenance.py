"""Facts about the software and hardware of a run, for `meta.json`."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import socket
from typing import Any

import jax

_PACKAGES = ('aeosperf', 'jax', 'jaxlib', 'flax', 'optax', 'numpy',
             'tensorflow-datasets')


def versions() -> dict[str, str]:
  found = {'python': platform.python_version()}
  for name in _PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = 'not installed'
  return found


def devices() -> dict[str, Any]:
  local = jax.local_devices()
  return {
      'kind': local[0].device_kind,
      'platform': local[0].platform,
      'count': jax.device_count(),
      'local_count': len(local),
      'process_count': jax.process_count(),
  }


def host() -> dict[str, Any]:
  return {'hostname': socket.gethostname(), 'machine': platform.machine(),
          'system': platform.system()}


def now_iso() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec='seconds')
