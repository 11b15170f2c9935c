"""The report as one HTML page, self-contained but for its run pages.

Tables are HTML tables; figures are embedded as base64 PNG data URIs; the
style sheet is inline. The only links lead to the report's own per-run pages
(`runs/<page>.html`, see `scoring.run_pages`): a table row that shows one
run links its submission cell (or a trailing `run` cell) there. The page
loads nothing from anywhere else. The report's provenance (versions, commit,
date, host, experiment directories, command line) closes the page.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Callable, Mapping, Sequence

from scoring import figures as figures_lib
from scoring import leaderboard as leaderboard_lib
from scoring import tables

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #1b1b1b; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
.caption { color: #555; font-size: 90%; margin: .2em 0; }
.warning { background: #fff3cd; border: 2px solid #d39e00; color: #5c4400;
           padding: .6em 1em; font-weight: bold; margin: .6em 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: .5em 0; flex: 1 1 460px; max-width: 660px; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 90%; }
.provenance th { width: 14em; }
"""


def _heading(block: tables.Heading) -> str:
  return f'<h{block.level}>{html.escape(block.text)}</h{block.level}>'


def _paragraph(block: tables.Paragraph) -> str:
  css = ' class="warning"' if block.warning else ''
  return f'<p{css}>{html.escape(block.text)}</p>'


def _cell(text: str, tag: str) -> str:
  return f'<{tag}>{html.escape(text)}</{tag}>'


def _link(text: str, href: str) -> str:
  return f'<td><a href="{html.escape(href)}">{html.escape(text)}</a></td>'


def _row(cells: Sequence[str], tag: str) -> str:
  return '<tr>' + ''.join(_cell(c, tag) for c in cells) + '</tr>'


def _linked_row(cells: Sequence[str], column: int | None,
                href: str | None) -> str:
  """A body row; `column` (or, when None, a trailing cell) links `href`."""
  parts = [_link(c, href) if href and i == column else _cell(c, 'td')
           for i, c in enumerate(cells)]
  if column is None:
    parts.append(_link('run', href) if href else _cell('', 'td'))
  return '<tr>' + ''.join(parts) + '</tr>'


def _notes(block: tables.Table) -> list[str]:
  """The caption, then any per-column explanation lines the table has."""
  lines = [block.caption] if block.caption else []
  lines += block.column_notes
  return [f'<p class="caption">{html.escape(line)}</p>' for line in lines]


def _rows(block: tables.Table, run_links: Mapping[str, str]) -> str:
  """Header and body; a row that shows one run links to its page."""
  hrefs = [run_links.get(p) if p else None for p in block.run_paths]
  if not any(hrefs):
    return ('<thead>' + _row(block.columns, 'th') + '</thead><tbody>' +
            ''.join(_row(r, 'td') for r in block.rows) + '</tbody>')
  column = (block.columns.index('submission')
            if 'submission' in block.columns else None)
  header = block.columns + (('run',) if column is None else ())
  hrefs += [None] * (len(block.rows) - len(hrefs))
  return ('<thead>' + _row(header, 'th') + '</thead><tbody>' +
          ''.join(_linked_row(r, column, h)
                  for r, h in zip(block.rows, hrefs)) + '</tbody>')


def render_table(block: tables.Table,
                 run_links: Mapping[str, str] | None = None) -> str:
  """One table; rows whose run has an entry in `run_links` link its page."""
  run_links = run_links or {}
  parts = [f'<section class="table"><h3>{html.escape(block.title)}</h3>']
  if block.warning:
    parts.append(f'<p class="warning">{html.escape(block.warning)}</p>')
  parts += _notes(block)
  if block.rows:
    parts.append(f'<table>{_rows(block, run_links)}</table>')
  else:
    parts.append('<p>(none)</p>')
  parts.append('</section>')
  return '\n'.join(parts)


def data_uri(png: bytes) -> str:
  return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')


def _figure(block: figures_lib.Figure) -> str:
  title = html.escape(block.title)
  extra = f'<br>{html.escape(block.caption)}' if block.caption else ''
  return (f'<figure><img src="{data_uri(block.png)}" alt="{title}">'
          f'<figcaption><b>{title}</b>{extra}</figcaption></figure>')


def _gallery(items: Sequence[str]) -> str:
  return '<div class="figures">' + ''.join(items) + '</div>'


def _body(blocks: Sequence[Any], run_links: Mapping[str, str]) -> list[str]:
  """Rendered blocks; consecutive figures share one wrapping row."""
  renderers: dict[type, Callable[[Any], str]] = {
      tables.Heading: _heading,
      tables.Paragraph: _paragraph,
      tables.Table: lambda block: render_table(block, run_links),
  }
  parts: list[str] = []
  gallery: list[str] = []
  for block in blocks:
    if isinstance(block, figures_lib.Figure):
      gallery.append(_figure(block))
      continue
    if gallery:
      parts.append(_gallery(gallery))
      gallery = []
    parts.append(renderers[type(block)](block))
  if gallery:
    parts.append(_gallery(gallery))
  return parts


def provenance_section(provenance: Sequence[tuple[str, str]]) -> str:
  """The report's provenance as a two-column table (empty when none)."""
  if not provenance:
    return ''
  rows = ''.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td>'
                 '</tr>' for k, v in provenance)
  return ('<section id="provenance"><h2>Provenance</h2>'
          f'<table class="provenance"><tbody>{rows}</tbody></table>'
          '</section>')


def _provenance_line(provenance: Sequence[tuple[str, str]]) -> str:
  """One line under the title: when and from what the report was built."""
  known = dict(provenance)
  said = [f'{k} {known[k]}' for k in ('built', 'git commit') if k in known]
  if not said:
    return ''
  return (f'<p class="caption">{html.escape(", ".join(said))} '
          '(<a href="#provenance">provenance</a>)</p>')


def page(title: str, body: str) -> str:
  """A whole HTML document with the report's style sheet."""
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>{html.escape(title)}</title>\n'
          f'<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n'
          '</html>\n')


def render_html(leaderboard: leaderboard_lib.Leaderboard,
                figures: Sequence[figures_lib.Figure], *,
                run_links: Mapping[str, str] | None = None,
                provenance: Sequence[tuple[str, str]] = ()) -> str:
  """The report as an HTML page.

  Args:
    leaderboard: the computed statistics.
    figures: the figures rendered from them (embedded as data URIs).
    run_links: run directory -> its page, relative to the report (rows of
      runs without an entry are not linked).
    provenance: (label, text) facts about the report's making, shown at the
      end (and the build date and commit under the title).

  Returns:
    The HTML text.
  """
  parts = _body(tables.document(leaderboard, figures), run_links or {})
  line = _provenance_line(provenance)
  if line:
    parts.insert(1 if parts else 0, line)
  parts.append(provenance_section(provenance))
  return page('aeosperf leaderboard', '\n'.join(p for p in parts if p))
