"""The report as one self-contained HTML page.

Tables are HTML tables; figures are embedded as base64 PNG data URIs; the
style sheet is inline. The page loads nothing from anywhere else.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Callable, Sequence

from scoring import figures as figures_lib
from scoring import leaderboard as leaderboard_lib
from scoring import tables

_STYLE = """
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
"""


def _heading(block: tables.Heading) -> str:
  return f'<h{block.level}>{html.escape(block.text)}</h{block.level}>'


def _paragraph(block: tables.Paragraph) -> str:
  css = ' class="warning"' if block.warning else ''
  return f'<p{css}>{html.escape(block.text)}</p>'


def _row(cells: Sequence[str], tag: str) -> str:
  return '<tr>' + ''.join(f'<{tag}>{html.escape(c)}</{tag}>'
                          for c in cells) + '</tr>'


def _table(block: tables.Table) -> str:
  parts = [f'<section class="table"><h3>{html.escape(block.title)}</h3>']
  if block.warning:
    parts.append(f'<p class="warning">{html.escape(block.warning)}</p>')
  if block.caption:
    parts.append(f'<p class="caption">{html.escape(block.caption)}</p>')
  if block.rows:
    parts.append('<table><thead>' + _row(block.columns, 'th') +
                 '</thead><tbody>' +
                 ''.join(_row(r, 'td') for r in block.rows) +
                 '</tbody></table>')
  else:
    parts.append('<p>(none)</p>')
  parts.append('</section>')
  return '\n'.join(parts)


def data_uri(png: bytes) -> str:
  return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')


def _figure(block: figures_lib.Figure) -> str:
  title = html.escape(block.title)
  return (f'<figure><img src="{data_uri(block.png)}" alt="{title}">'
          f'<figcaption>{title}</figcaption></figure>')


_RENDERERS: dict[type, Callable[[Any], str]] = {
    tables.Heading: _heading,
    tables.Paragraph: _paragraph,
    tables.Table: _table,
}


def _body(blocks: Sequence[Any]) -> list[str]:
  """Rendered blocks; consecutive figures share one wrapping row."""
  parts: list[str] = []
  gallery: list[str] = []
  for block in blocks:
    if isinstance(block, figures_lib.Figure):
      gallery.append(_figure(block))
      continue
    if gallery:
      parts.append('<div class="figures">' + ''.join(gallery) + '</div>')
      gallery = []
    parts.append(_RENDERERS[type(block)](block))
  if gallery:
    parts.append('<div class="figures">' + ''.join(gallery) + '</div>')
  return parts


def render_html(leaderboard: leaderboard_lib.Leaderboard,
                figures: Sequence[figures_lib.Figure]) -> str:
  """The report as a self-contained HTML page.

  Args:
    leaderboard: the computed statistics.
    figures: the figures rendered from them (embedded as data URIs).

  Returns:
    The HTML text.
  """
  body = '\n'.join(_body(tables.document(leaderboard, figures)))
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          '<title>aeosperf leaderboard</title>\n'
          f'<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n'
          '</html>\n')
