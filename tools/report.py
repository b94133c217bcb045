"""``report.md``: a Markdown report of result tables and figures, written atomically.

    from tools.report import write_report, results_table
    header, rows = results_table({'MaskClu': {'ModelNet40 (%)': '92.1 ± 0.2'}, ...}, row_header='encoder')
    write_report(folder, 'Demo evaluation', tables=[('Classification', header, rows)],
                 figures=[('Loss curves', f'{folder}/loss.png')], notes=['demo data, not benchmarks'])

Figures are linked relative to ``folder`` (so the folder can be moved or zipped as is); a
figure file that does not exist is shown as missing in the report, never dropped silently.
"""
import math
import os

from utils.io import atomic_write


def format_cell(value):
    """A table cell: None and NaN -> '—', floats with 4 significant digits, anything else str();
    '|' is escaped and line breaks become <br>, so the cell cannot break the table."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '—'
    text = f'{value:.4g}' if isinstance(value, float) else str(value)
    return text.replace('|', '\\|').replace('\r\n', '<br>').replace('\n', '<br>')


def markdown_table(header, rows):
    """A pipe table; every row must have ``len(header)`` cells."""
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"table row {i} has {len(row)} cells, the header {len(header)}: {row!r}")
    lines = ['| ' + ' | '.join(map(format_cell, header)) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(map(format_cell, row)) + ' |' for row in rows]
    return '\n'.join(lines)


def results_table(results, row_header=''):
    """``{row name: {column: value}}`` -> (header, rows); columns in order of first appearance,
    a value a row lacks is None ('—')."""
    columns = []
    for values in results.values():
        columns += [c for c in values if c not in columns]
    return [row_header, *columns], [[name, *(values.get(c) for c in columns)] for name, values in results.items()]


def write_report(folder, title, tables=(), figures=(), notes=(), filename='report.md', sections=()):
    """Write ``<folder>/<filename>`` and return its path.

    ``tables``: (caption, header, rows) each; ``sections``: Markdown blocks placed as they are
    after the tables (e.g. an evaluation suite's results); ``figures``: (caption, image path)
    each, linked relative to ``folder``; ``notes``: lines printed under the title (how it was measured).
    """
    os.makedirs(folder, exist_ok=True)
    parts = [f'# {title}']
    if notes:
        parts.append('\n'.join(f'- {note}' for note in notes))
    for caption, header, rows in tables:
        parts.append(f'## {caption}\n\n{markdown_table(header, rows)}')
    parts += [section.strip() for section in sections]
    if figures:
        parts.append('## Figures')
    for caption, path in figures:
        link = os.path.relpath(path, folder).replace(os.sep, '/')
        if os.path.isfile(path):
            parts.append(f'### {caption}\n\n![{caption}]({link})')
        else:
            parts.append(f'### {caption}\n\n**figure missing**: `{link}` was not written')
    out = os.path.join(folder, filename)
    with atomic_write(out, 'w') as f:
        f.write('\n\n'.join(parts) + '\n')
    return out
