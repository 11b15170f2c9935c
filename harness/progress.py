"""Progress of a run on stderr: steps, evaluations, probes, ETA.

What each line shows, and where it comes from:

- `step 120/400 | train loss 0.31 | 45.2 steps/s | ETA ≤ 0:00:06`, every
  `log_every` steps. The train loss is the loss the step's own update
  returned (its `metrics['loss']`, on its batch, at the parameters it
  started from); an update that returns none shows none, never a stand-in.
  Steps/s is training speed, steps per second of submission time since the
  previous report (`?` before there is one); the ETA is by the wall clock since the first report, so
  it counts evaluations and probes too, and it runs to the step or time
  budget, whichever comes first. A run that stops at its target may end
  sooner, so its ETA reads `≤`.
- `eval at step 50/400 | train/loss 0.29 | validation/loss 0.30 |
  validation/accuracy 0.81 (target 0.85)` at each evaluation: the metric
  names and values the evaluation measured.
- `probe at step 40 (schedule, 0.83s) | λ1(H) 12.3 | λ1(P⁻¹H) 3.7e+04 |
  threshold 3.8e+04 | ratio 0.98` at each curvature probe, after a line while
  the first probe of a launch compiles.
- `hparams: learning_rate=0.001, beta1=0.9` once at the start.

On a terminal (stderr is a TTY) the step lines become one rich progress bar
and the other lines print above it; elsewhere (CI logs, files) every line is
plain text without control codes. `quiet` prints nothing.
"""

from __future__ import annotations

import datetime
import math
import time
from typing import Any, Mapping, TextIO

from rich import console as rich_console
from rich import progress as rich_progress

from harness import records

# The evaluation metrics a line shows besides the target metric.
_EVAL_SHOWN = ('train/loss', 'validation/loss')


def _console(stream: TextIO | None,
             force_terminal: bool | None) -> rich_console.Console:
  # No markup, highlighting or wrapping: a line is written as it was made,
  # so a log file holds the same text a test reads.
  return rich_console.Console(
      file=stream, stderr=stream is None, force_terminal=force_terminal,
      markup=False, highlight=False, emoji=False, soft_wrap=True)


def _number(value: float | None) -> str:
  return 'n/a' if value is None else f'{value:.4g}'


def hparams_line(hparams: Mapping[str, Any]) -> str:
  """`hparams: name=value, ...` in the order given."""
  values = ', '.join(
      f'{name}={value:.6g}' if isinstance(value, float) else
      f'{name}={value!r}' for name, value in hparams.items())
  return f'hparams: {values or "none"}'


def probe_line(record: records.ProbeRecord) -> str:
  """A probe's time, sharpness, threshold and their ratio, on one line."""
  parts = [f'probe at step {record.step} ({record.reason.value}, '
           f'{record.probe_seconds:.2f}s)',
           f'λ1(H) {_number(record.sharpness)}']
  if record.preconditioned_sharpness is not None:
    parts.append(f'λ1(P⁻¹H) {_number(record.preconditioned_sharpness)}')
  if record.stability_threshold is None:
    parts.append(f'threshold unknown: {record.threshold_unknown}')
  else:
    parts += [f'threshold {_number(record.stability_threshold)}',
              f'ratio {record.threshold_ratio:.3f}']
  return ' | '.join(parts)


def eval_parts(metrics: Mapping[str, float], target: str,
               target_value: float | None = None) -> list[str]:
  """`name value` for the train and validation losses and the target."""
  shown = [name for name in _EVAL_SHOWN if name in metrics and name != target]
  parts = [f'{name} {metrics[name]:.4g}' for name in shown]
  if target in metrics:
    goal = '' if target_value is None else f' (target {target_value:g})'
    parts.append(f'{target} {metrics[target]:.4f}{goal}')
  return parts


def ending_line(summary: records.Summary, directory: object) -> str:
  """How the run ended, its submission time and target, and its records."""
  if summary.steps_to_target is None:
    target = 'target not reached'
  else:
    target = (f'target reached at step {summary.steps_to_target} after '
              f'{summary.time_to_target_s:.2f}s')
  return (f'{summary.status.value} after {summary.final_step} steps: '
          f'submission time {summary.submission_time_s:.2f}s, {target}; '
          f'records in {directory}')


class Progress:
  """A run's progress lines; see the module docstring for their content."""

  def __init__(self, total_steps: int, *, quiet: bool = False,
               log_every: int = 1, stops_at_target: bool = False,
               max_runtime_s: float | None = None,
               stream: TextIO | None = None,
               force_terminal: bool | None = None):
    self.total_steps = total_steps
    self.quiet = quiet
    self.log_every = log_every
    self.stops_at_target = stops_at_target
    self.max_runtime_s = max_runtime_s
    self.console = _console(stream, force_terminal)
    self._bar: rich_progress.Progress | None = None
    self._task: rich_progress.TaskID | None = None
    self._rate_mark: tuple[float, int] | None = None
    self._last_rate: float | None = None
    self._wall_mark: tuple[float, int, float] | None = None
    self._noted_eta = False
    self._probe_compiled = False

  @property
  def terminal(self) -> bool:
    return self.console.is_terminal

  # ---- Lines ----

  def message(self, text: str) -> None:
    """One line (above the bar on a terminal)."""
    if not self.quiet:
      self.console.print(text)

  def step(self, step: int, submission_time_s: float,
           loss: float | None) -> None:
    """A synchronised step: a line every `log_every` steps, or the bar."""
    if self.quiet:
      return
    self._note_eta()
    rate = self._rate(step, submission_time_s)
    eta = self._eta(step, submission_time_s)
    parts = [] if loss is None else [f'train loss {loss:.4g}']
    speed = '?' if rate is None else f'{rate:.1f}'
    parts += [f'{speed} steps/s', f'ETA {eta}']
    if self.terminal:
      self._update_bar(step, ' | '.join(parts))
    elif step % self.log_every == 0:
      self.message(' | '.join([self._step_of(step), *parts]))

  def evaluation(self, step: int, metrics: Mapping[str, float], target: str,
                 target_value: float | None = None) -> None:
    """An evaluation's metrics by name."""
    parts = eval_parts(metrics, target, target_value)
    self.message(' | '.join([f'eval at {self._step_of(step)}', *parts]))

  def probe_starting(self) -> None:
    """Before a probe: says so while the launch's first one compiles."""
    if not self._probe_compiled:
      self._probe_compiled = True
      self.message('compiling the curvature probe (Lanczos) ...')

  def probe(self, record: records.ProbeRecord) -> None:
    self.message(probe_line(record))

  def hparams(self, hparams: Mapping[str, Any]) -> None:
    self.message(hparams_line(hparams))

  def close(self, text: str | None = None) -> None:
    """Ends the bar, if any, then prints `text`."""
    if self._bar is not None:
      self._bar.stop()
      self._bar = None
    if text is not None:
      self.message(text)

  # ---- Parts ----

  def _step_of(self, step: int) -> str:
    return f'step {step:>{len(str(self.total_steps))}}/{self.total_steps}'

  def _note_eta(self) -> None:
    if self.stops_at_target and not self._noted_eta:
      self._noted_eta = True
      self.message('ETA: time left to the step or time budget; the run stops '
                   'earlier if it reaches the target (≤)')

  def _update_bar(self, step: int, info: str) -> None:
    if self._bar is None:
      self._bar = rich_progress.Progress(
          rich_progress.TextColumn('step'), rich_progress.BarColumn(),
          rich_progress.MofNCompleteColumn(),
          rich_progress.TextColumn('{task.fields[info]}', markup=False),
          console=self.console)
      self._bar.start()
      self._task = self._bar.add_task('train', total=self.total_steps,
                                      info='')
    self._bar.update(self._task, completed=step, info=info)

  def _rate(self, step: int, submission_time_s: float) -> float | None:
    # Steps per second of submission time since the previous report.
    mark = self._rate_mark
    if mark is not None and step == mark[1]:
      return self._last_rate
    self._rate_mark = (submission_time_s, step)
    if mark is None or submission_time_s <= mark[0]:
      self._last_rate = None
    else:
      self._last_rate = (step - mark[1]) / (submission_time_s - mark[0])
    return self._last_rate

  def _eta(self, step: int, submission_time_s: float) -> str:
    """Wall time to the nearer budget, from the pace since the first call."""
    now = time.perf_counter()
    if self._wall_mark is None:
      self._wall_mark = (now, step, submission_time_s)
    start, first_step, first_time_s = self._wall_mark
    if step <= first_step or now <= start:
      return '?'
    wall_s = now - start
    left = [(self.total_steps - step) * wall_s / (step - first_step)]
    if self.max_runtime_s is not None and submission_time_s > first_time_s:
      left.append((self.max_runtime_s - submission_time_s) * wall_s /
                  (submission_time_s - first_time_s))
    seconds = max(0.0, min(left))
    if not math.isfinite(seconds):
      return '?'
    bound = '≤ ' if self.stops_at_target else ''
    return f'{bound}{datetime.timedelta(seconds=round(seconds))}'
