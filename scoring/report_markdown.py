"""The report as Markdown: `tables.document` laid out, figures linked.

A table row that shows one run links its submission cell (or a trailing
`run` cell) to the run's page (`runs/<page>.html`); the report's provenance
closes the document, its date and commit also under the title.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

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


def _link(text: str, href: str) -> str:
  label = text.replace('[', '\\[').replace(']', '\\]')
  return f'[{label}]({href.replace(" ", "%20")})'


def _body_rows(block: tables.Table, run_links: Mapping[str, str]
               ) -> tuple[tuple[str, ...], list[list[str]]]:
  """Columns and escaped cells; a row that shows one run links its page."""
  hrefs = [run_links.get(p) if p else None for p in block.run_paths]
  hrefs += [None] * (len(block.rows) - len(hrefs))
  rows = [[_escape(c) for c in row] for row in block.rows]
  if not any(hrefs):
    return block.columns, rows
  column = (block.columns.index('submission')
            if 'submission' in block.columns else None)
  for cells, href in zip(rows, hrefs):
    if column is None:
      cells.append(_link('run', href) if href else '')
    elif href:
      cells[column] = _link(cells[column], href)
  return block.columns + (('run',) if column is None else ()), rows


def _notes(block: tables.Table) -> list[str]:
  """The caption, then any per-column explanation lines the table has."""
  lines = [block.caption] if block.caption else []
  lines += block.column_notes
  return [f'_{line}_' for line in lines]


def render_table(block: tables.Table,
                 run_links: Mapping[str, str] | None = None) -> str:
  """One table; rows whose run has an entry in `run_links` link its page."""
  run_links = run_links or {}
  lines = [f'### {block.title}']
  if block.warning:
    lines.append(f'> **Warning:** {block.warning}')
  lines += _notes(block)
  lines.append('')
  if not block.rows:
    lines.append('(none)')
    return '\n'.join(lines)
  columns, rows = _body_rows(block, run_links)
  lines.append('| ' + ' | '.join(map(_escape, columns)) + ' |')
  lines.append('|' + '---|' * len(columns))
  lines.extend('| ' + ' | '.join(row) + ' |' for row in rows)
  return '\n'.join(lines)


def _figure(block: figures_lib.Figure) -> str:
  text = f'![{block.title}]({FIGURE_DIR}/{block.name})'
  return f'{text}\n\n_{block.caption}_' if block.caption else text


def provenance_section(provenance: Sequence[tuple[str, str]]) -> str:
  """The report's provenance as a two-column table (empty when none)."""
  if not provenance:
    return ''
  return '\n'.join(['## Provenance', '', '| | |', '|---|---|'] + [
      f'| {_escape(k)} | {_escape(v)} |' for k, v in provenance])


def _provenance_line(provenance: Sequence[tuple[str, str]]) -> str:
  known = dict(provenance)
  said = [f'{k} {known[k]}' for k in ('built', 'git commit') if k in known]
  return f'_{", ".join(said)} (provenance at the end)_' if said else ''


def render_markdown(leaderboard: leaderboard_lib.Leaderboard,
                    figures: Sequence[figures_lib.Figure], *,
                    run_links: Mapping[str, str] | None = None,
                    provenance: Sequence[tuple[str, str]] = ()) -> str:
  """The report as Markdown; figures are linked from `figures/`.

  Args:
    leaderboard: the computed statistics.
    figures: the figures rendered from them.
    run_links: run directory -> its page, relative to the report (rows of
      runs without an entry are not linked).
    provenance: (label, text) facts about the report's making, shown at the
      end (and the build date and commit under the title).

  Returns:
    The Markdown text.
  """
  links = run_links or {}
  renderers: dict[type, Callable[[Any], str]] = {
      tables.Heading: _heading,
      tables.Paragraph: _paragraph,
      tables.Table: lambda block: render_table(block, links),
      figures_lib.Figure: _figure,
  }
  parts = [renderers[type(b)](b)
           for b in tables.document(leaderboard, figures)]
  parts.insert(1 if parts else 0, _provenance_line(provenance))
  parts.append(provenance_section(provenance))
  return '\n\n'.join(p for p in parts if p) + '\n'
