"""The persistent compilation cache of the entry points, and scored times
that charge a cached compilation as if it had run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from harness import compilation_cache
from harness import records
from tests import commands


def test_flag_then_environment_then_default(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  monkeypatch.delenv(compilation_cache.ENVIRONMENT_VARIABLE, raising=False)
  assert compilation_cache.resolve(None) == tmp_path / 'xdg/aeosperf/jax'
  monkeypatch.setenv(compilation_cache.ENVIRONMENT_VARIABLE,
                     str(tmp_path / 'env'))
  assert compilation_cache.resolve(None) == tmp_path / 'env'
  assert compilation_cache.resolve(str(tmp_path / 'flag')) == (
      tmp_path / 'flag')
  assert compilation_cache.resolve('OFF') is None
  monkeypatch.setenv(compilation_cache.ENVIRONMENT_VARIABLE, 'off')
  assert compilation_cache.resolve(None) is None
  assert compilation_cache.resolve(str(tmp_path / 'flag')) == (
      tmp_path / 'flag')


# Compiles a function, timed by the submission clock; run twice on one cache
# directory. 'heavy' compiles in about a second, 'light' in well under one
# (which JAX's whole seconds would charge as nothing).
_CHARGED = textwrap.dedent('''
    import json, sys, pathlib
    import jax, jax.numpy as jnp
    from harness import clock, compilation_cache
    compilation_cache.enable(pathlib.Path(sys.argv[1]))
    layers = {'heavy': 60, 'light': 3}[sys.argv[2]]

    @jax.jit
    def program(x):
      for i in range(layers):
        x = jnp.tanh(x @ x.T + i) @ x
      return x

    x = jax.block_until_ready(jnp.ones((64, 64)))
    watch = clock.SubmissionClock()
    watch.resume()
    out = program(x)
    elapsed = watch.pause(out)
    print(json.dumps({'elapsed': elapsed,
                      'saved': compilation_cache.seconds_saved(),
                      'compiles': watch.compiles}))
''')


@pytest.mark.parametrize('program', ['heavy', 'light'])
def test_a_cached_compilation_is_charged_as_compiled(tmp_path, program):
  def run():
    out = subprocess.run(
        [sys.executable, '-c', _CHARGED, str(tmp_path), program],
        cwd=commands.ROOT, env=commands.environment(), capture_output=True,
        text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])

  fresh, cached = run(), run()
  assert fresh['saved'] == 0 and fresh['compiles'] == 1
  assert cached['compiles'] == 1  # Read from the cache, counted as one.
  assert cached['saved'] > 0.5 * fresh['elapsed']
  # Without the charge the cached run would take about 'elapsed - saved'.
  assert cached['elapsed'] == pytest.approx(fresh['elapsed'], rel=0.5)
  assert cached['elapsed'] - cached['saved'] < 0.5 * fresh['elapsed']


def _entries(directory: pathlib.Path) -> set[str]:
  return {p.name for p in directory.iterdir() if p.name.endswith('-cache')}


def test_second_run_compiles_nothing_it_compiled_before(tmp_path):
  cache = tmp_path / 'cache'

  def run(name: str) -> records.Summary:
    out = commands.run_module(
        'harness.submission_runner', '--workload=fmnist_fc',
        '--submission=adam', '--train_size=400', '--chunk_size=400',
        '--max_steps=6', '--eval_every=3', '--curvature_every=3', '--quiet',
        f'--experiment_dir={tmp_path / name}', f'--compilation_cache={cache}')
    assert out.returncode == 0, out.stderr
    return records.read_run(out.stdout.strip().splitlines()[-1]).summary

  first = run('first')
  written = _entries(cache)
  assert len(written) > 5  # Steps, evaluation, the probe and their helpers.
  second = run('second')
  assert _entries(cache) == written
  assert second.timed_compiles == first.timed_compiles == 0


def test_an_unusable_directory_is_one_line(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  out = commands.run_module('harness.submission_runner', '--workload=fmnist_fc',
                            '--submission=adam',
                            f'--compilation_cache={blocker / "cache"}')
  assert out.returncode == 2
  assert out.stderr.count('\n') == 1
  assert '--compilation_cache' in out.stderr and 'off' in out.stderr
