"""Statistics and tables of an evaluation suite: pure functions, no I/O, no torch.

A suite run is a list of *run records* (plain dicts, as stored in ``results.json``)::

    {'encoder': 'maskclu', 'protocol': 'scan_objbg_full', 'seed': 0, 'status': 'ok' | 'failed' | 'skipped',
     'values': {'OBJ_BG': 88.2, ...}, 'max_values': {...}, 'reason': '', ...}

``values`` maps a table column to one number (one seed) or to a list of numbers (one per
few-shot fold); ``max_values`` (optional) to the largest number behind it (e.g. the best of the
voting repeats). ``aggregate`` turns the records into one cell per (encoder, column):
mean ± std over every number (seeds, and folds within a seed), their max (labelled as such), n,
and how many runs failed or were skipped, with the reasons. The std is the **sample** standard
deviation (n - 1; 0 for a single number), as the voting repeats and the few-shot folds of the
classification runner report it.
``render_markdown`` draws the cells in the layout of the papers' tables (columns in ``COLUMNS``
order: ModelNet40, ScanObjectNN, few-shot, SVM, ShapeNetPart) with the protocol details beside it.
"""
import math

from tools.report import markdown_table

# The papers' column order; columns a suite does not produce are left out, unknown ones go last.
COLUMNS = (
    'ModelNet40', 'ModelNet40 +vote',
    'OBJ_BG', 'OBJ_ONLY', 'PB_T50_RS',
    'OBJ_BG MLP-Linear', 'OBJ_ONLY MLP-Linear', 'PB_T50_RS MLP-Linear',
    'OBJ_BG MLP-3', 'OBJ_ONLY MLP-3', 'PB_T50_RS MLP-3',
    '5w10s', '5w20s', '10w10s', '10w20s',
    'SVM ModelNet40',
    'ShapeNetPart inst. mIoU', 'ShapeNetPart cls. mIoU',
)
STATUSES = ('ok', 'failed', 'skipped')


def samples(value):
    """A results value -> list of floats: a number gives one, a list one per entry, a dict
    (fold -> number) one per value; ``None`` entries (a fold that failed) are dropped."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value if v is not None]
    return [float(value)]


def describe(values):
    """Numbers -> {'mean', 'std' (sample, n - 1; 0 for one number), 'max', 'min', 'n'}; None when empty."""
    values = [float(v) for v in values]
    if not values:
        return None
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {'mean': mean, 'std': std, 'max': max(values), 'min': min(values), 'n': n}


def check_record(record):
    """Raise ValueError naming the record when it lacks a field or has an unknown status."""
    missing = [k for k in ('encoder', 'protocol', 'seed', 'status') if k not in record]
    if missing:
        raise ValueError(f'run record {record!r}: missing {missing}')
    if record['status'] not in STATUSES:
        raise ValueError(f"run record {record['encoder']}/{record['protocol']}: status "
                         f"{record['status']!r}, expected one of {STATUSES}")


def aggregate(records):
    """Run records -> ``{encoder: {column: cell}}`` (encoders and columns in order of appearance).

    A cell: ``stats`` (``describe`` of every number of the successful runs, or None), ``max``
    (the largest ``max_values`` entry where runs report one, else ``stats['max']``), ``runs``
    (successful runs), ``seeds``, ``failed`` / ``skipped`` (lists of ``'seed S: reason'``).
    A failed or skipped run counts in every column its protocol feeds (``record['columns']``).
    """
    table = {}
    for record in records:
        check_record(record)
        columns = record.get('columns') or list(record.get('values', {}))
        row = table.setdefault(record['encoder'], {})
        for column in columns:
            cell = row.setdefault(column, {'numbers': [], 'maxes': [], 'runs': 0, 'seeds': [],
                                           'failed': [], 'skipped': []})
            status = record['status']
            if status == 'ok' and column in record.get('values', {}):
                numbers = samples(record['values'][column])
                cell['numbers'] += numbers
                cell['maxes'] += samples((record.get('max_values') or {}).get(column))
                cell['runs'] += 1
                cell['seeds'].append(record['seed'])
            else:
                reason = record.get('reason') or (f'results.json has no value for {column}'
                                                  if status == 'ok' else status)
                cell['failed' if status != 'skipped' else 'skipped'].append(f"seed {record['seed']}: {reason}")
    for row in table.values():
        for column, cell in row.items():
            numbers, maxes = cell.pop('numbers'), cell.pop('maxes')
            cell['stats'] = describe(numbers)
            cell['max'] = max(maxes) if maxes else (cell['stats']['max'] if cell['stats'] else None)
    return table


def ordered_columns(table, order=COLUMNS):
    """The columns present in ``table``, in ``order`` first, then in order of appearance."""
    present = []
    for row in table.values():
        present += [c for c in row if c not in present]
    return [c for c in order if c in present] + [c for c in present if c not in order]


def format_cell(cell, digits=2):
    """'mean ± std (max M)' for n > 1, 'value' for n = 1; failures and skips said in words."""
    if cell is None:
        return '—'
    stats, failed, skipped = cell['stats'], cell['failed'], cell['skipped']
    if stats is None:
        if failed:
            return f'failed ({len(failed)} of {len(failed) + len(skipped)} runs)'
        return 'skipped'
    text = f"{stats['mean']:.{digits}f}"
    if stats['n'] > 1:
        text += f" ± {stats['std']:.{digits}f}"
    if cell['max'] is not None and (stats['n'] > 1 or cell['max'] != stats['mean']):
        text += f" (max {cell['max']:.{digits}f})"
    if failed:
        text += f" ({len(failed)} of {cell['runs'] + len(failed)} runs failed)"
    return text


def results_table(table, row_header='encoder', digits=2):
    """(header, rows) of the main table: one row per encoder, one column per table column."""
    columns = ordered_columns(table)
    rows = [[encoder] + [format_cell(cells.get(c), digits) for c in columns] for encoder, cells in table.items()]
    return [row_header] + columns, rows


def protocol_table(protocols):
    """(header, rows) of the protocol details: ``protocols`` is a list of dicts with keys
    name, columns, config, points, votes, epochs, selection, seeds, statistic (missing: '—')."""
    keys = ('name', 'columns', 'config', 'points', 'votes', 'epochs', 'selection', 'seeds', 'statistic')
    header = ['protocol', 'columns', 'config', 'points', 'votes', 'epochs', 'reported epoch', 'seeds',
              'mean ± std over']
    rows = []
    for p in protocols:
        row = []
        for key in keys:
            value = p.get(key)
            if isinstance(value, (list, tuple)):
                value = ', '.join(map(str, value))
            row.append('—' if value in (None, '') else value)
        rows.append(row)
    return header, rows


def problems(records):
    """Lines for the runs that were skipped, failed, or finished with a reason (some few-shot folds
    failed): 'encoder / protocol / seed S: reason', skipped protocols said once per (protocol, reason)."""
    lines, seen = [], set()
    for r in records:
        if r['status'] == 'skipped':
            key = (r['protocol'], r.get('reason'))
            if key not in seen:
                seen.add(key)
                lines.append(f"skipped {r['protocol']}: {r.get('reason') or 'no reason given'}")
        elif r['status'] == 'failed':
            lines.append(f"FAILED {r['encoder']} / {r['protocol']} / seed {r['seed']}: "
                         f"{r.get('reason') or 'no reason given'}")
        elif r.get('reason'):   # a run that finished with a partial failure (e.g. a few-shot fold)
            lines.append(f"partly failed {r['encoder']} / {r['protocol']} / seed {r['seed']}: {r['reason']}")
    return lines


def render_markdown(title, records, protocols, notes=(), row_header='encoder', digits=2):
    """The whole ``results.md``: title, notes, the results table, the protocol details, and the
    skipped / failed runs (never dropped)."""
    table = aggregate(records)
    header, rows = results_table(table, row_header, digits)
    parts = [f'# {title}']
    notes = list(notes) + [
        'Cells: mean ± std over every run (seeds; few-shot: seeds × folds), std = sample std (n - 1); '
        '"max" is the largest single run (voting: the best repeat), labelled, never the mean.',
    ]
    parts.append('\n'.join(f'- {n}' for n in notes))
    parts.append(markdown_table(header, rows) if rows else '_no runs_')
    parts.append('## Protocols\n\n' + markdown_table(*protocol_table(protocols)))
    issues = problems(records)
    if issues:
        parts.append('## Skipped and failed runs\n\n' + '\n'.join(f'- {line}' for line in issues))
    return '\n\n'.join(parts) + '\n'
