"""The report as Markdown: `tables.document` laid out, figures linked."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from scoring import figures as figures_lib
from scoring import leaderboard as leaderboard_lib
from scoring import tables

FIGURE_DIR = 'figures'


def _escape(text: str) -> str:
  return text.replace('|', '\\|').replace('\n', ' ')


def _heading(block: tables.Heading) -> str:
  return f'{"#" * block.level} {block.text}'


def _paragraph(block: tables.Paragraph) -> str:
  return f'> **Warning:** {block.text}' if block.warning else block.text


def _table(block: tables.Table) -> str:
  lines = [f'### {block.title}']
  if block.warning:
    lines.append(f'> **Warning:** {block.warning}')
  if block.caption:
    lines.append(f'_{block.caption}_')
  lines.append('')
  if not block.rows:
    lines.append('(none)')
    return '\n'.join(lines)
  lines.append('| ' + ' | '.join(map(_escape, block.columns)) + ' |')
  lines.append('|' + '---|' * len(block.columns))
  lines.extend('| ' + ' | '.join(map(_escape, row)) + ' |'
               for row in block.rows)
  return '\n'.join(lines)


def _figure(block: figures_lib.Figure) -> str:
  return f'![{block.title}]({FIGURE_DIR}/{block.name})'


_RENDERERS: dict[type, Callable[[Any], str]] = {
    tables.Heading: _heading,
    tables.Paragraph: _paragraph,
    tables.Table: _table,
    figures_lib.Figure: _figure,
}


def render_markdown(leaderboard: leaderboard_lib.Leaderboard,
                    figures: Sequence[figures_lib.Figure]) -> str:
  """The report as Markdown; figures are linked from `figures/`.

  Args:
    leaderboard: the computed statistics.
    figures: the figures rendered from them.

  Returns:
    The Markdown text.
  """
  blocks = tables.document(leaderboard, figures)
  return '\n\n'.join(_RENDERERS[type(b)](b) for b in blocks) + '\n'

