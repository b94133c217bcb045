"""Furniture: chair, stool, bench, table, desk, bed, sofa, cabinet, bookshelf.

Legs, flat tops, panels and drawer fronts are shared between them (``parts.py``); what tells
them apart is how the parts are arranged (a back above a seat, drawers under a top, open
shelves), in proportions that overlap from one category to the next.
"""
import numpy as np

from datasets.demo.parts import (Z_AXIS, drawer_fronts, legs, moved, panel, renamed, rod, stretchers,
                                 swivel_base)
from datasets.demo.primitives import Box, Ellipsoid, Part, TorusArc, cylinder, rotation

FLAT = rotation('x', 90)


def chair_back(rng, width, height, t, name='back'):
    """A chair back standing on y=0 (z=0 its plane): a solid panel, slats between posts, or a frame."""
    style = rng.choice(['panel', 'slats', 'frame'], p=[0.5, 0.3, 0.2])
    if style == 'panel':
        return [panel(width, height, t, (0, height / 2, 0), name)]
    post = rng.uniform(0.03, 0.05)
    parts = [panel(post, height, post, (s * (width - post) / 2, height / 2, 0), name) for s in (-1, 1)]
    parts.append(panel(width, rng.uniform(0.05, 0.12), t, (0, height * 0.95, 0), name))
    if style == 'slats':
        count = int(rng.integers(2, 6))
        if rng.random() < 0.5:  # vertical slats
            xs = np.linspace(-width / 2, width / 2, count + 2)[1:-1]
            parts += [panel(0.03, height * 0.8, t * 0.6, (x, height * 0.45, 0), name) for x in xs]
        else:
            ys = np.linspace(0.1, 0.85, count) * height
            parts += [panel(width, 0.04, t * 0.6, (0, y, 0), name) for y in ys]
    return parts


def chair(rng):
    width, depth = rng.uniform(0.4, 0.62), rng.uniform(0.38, 0.6)
    seat_h, seat_t = rng.uniform(0.38, 0.52), rng.uniform(0.03, 0.1)
    parts = [panel(width, seat_t, depth, (0, seat_h - seat_t / 2, 0), 'seat')]
    leg_h = seat_h - seat_t
    base = rng.choice(['legs', 'swivel', 'sled'], p=[0.6, 0.25, 0.15])
    if base == 'legs':
        t = rng.uniform(0.025, 0.06)
        inset = t / 2 + rng.uniform(0.0, 0.06)
        parts += legs(rng, width, depth, leg_h, t, inset)
        if rng.random() < 0.4:
            parts += stretchers(width, depth, leg_h * rng.uniform(0.2, 0.5), inset, t * 0.6)
    elif base == 'swivel':
        parts += swivel_base(rng, leg_h, rng.uniform(0.25, 0.35))
    else:
        r = rng.uniform(0.01, 0.02)
        for s in (-1, 1):
            x = s * width * 0.45
            parts += [rod((x, r, -depth / 2), (x, r, depth / 2), r, 'leg'),
                      rod((x, r, depth / 2), (x, leg_h, depth * 0.4), r, 'leg'),
                      rod((x, r, -depth / 2), (x, leg_h, -depth * 0.4), r, 'leg')]
    back_h, back_t, tilt = rng.uniform(0.3, 0.65), rng.uniform(0.02, 0.08), rng.uniform(0, 18)
    back = chair_back(rng, width * rng.uniform(0.8, 1.0), back_h, back_t)
    parts += moved(back, (0, seat_h, -depth / 2 + back_t / 2), rotation('x', -tilt))
    if rng.random() < 0.35:
        arm_h = rng.uniform(0.18, 0.28)
        for s in (-1, 1):
            x = s * (width / 2 + 0.02)
            parts += [panel(0.05, 0.04, depth * 0.8, (x, seat_h + arm_h, 0), 'arm'),
                      panel(0.04, arm_h, 0.04, (x, seat_h + arm_h / 2, depth * 0.3), 'arm')]
    return parts


def stool(rng):
    height = rng.uniform(0.45, 0.8)
    seat_t = rng.uniform(0.03, 0.08)
    radius = rng.uniform(0.15, 0.22)
    seat = cylinder(radius, seat_t) if rng.random() < 0.7 else Box(2 * radius, seat_t, 2 * radius)
    parts = [Part(seat, 'seat', (0, height - seat_t / 2, 0))]
    leg_h = height - seat_t
    if rng.random() < 0.3:
        parts += [Part(cylinder(rng.uniform(0.025, 0.04), leg_h), 'leg', (0, leg_h / 2, 0)),
                  Part(cylinder(radius * rng.uniform(0.8, 1.3), 0.03), 'leg', (0, 0.015, 0))]
    else:
        count, splay = int(rng.choice([3, 4])), rng.uniform(4, 12)
        spread = radius * rng.uniform(0.6, 0.9)
        spin = rng.uniform(0, 360)
        r = rng.uniform(0.012, 0.025)
        for k in range(count):
            rot = rotation('y', spin + 360 * k / count)
            foot = rot @ [spread + leg_h * np.tan(np.radians(splay)), 0, 0]
            parts.append(rod(foot, rot @ [spread, leg_h, 0], r, 'leg'))
    if rng.random() < 0.5:
        ring = TorusArc(radius * rng.uniform(0.9, 1.3), rng.uniform(0.008, 0.015))
        parts.append(Part(ring, 'leg', (0, leg_h * rng.uniform(0.25, 0.45), 0), FLAT))
    if rng.random() < 0.1:
        back_h = rng.uniform(0.12, 0.25)
        parts.append(panel(radius * 1.6, back_h, 0.03, (0, height + back_h / 2, -radius * 0.8), 'back'))
    return parts


def bench(rng):
    length, depth, height = rng.uniform(0.9, 1.8), rng.uniform(0.3, 0.5), rng.uniform(0.38, 0.5)
    seat_t = rng.uniform(0.03, 0.08)
    if rng.random() < 0.4:
        count = int(rng.integers(3, 6))
        zs = np.linspace(-depth / 2, depth / 2, 2 * count + 1)[1::2]
        parts = [panel(length, seat_t, depth / count * 0.8, (0, height - seat_t / 2, z), 'seat') for z in zs]
    else:
        parts = [panel(length, seat_t, depth, (0, height - seat_t / 2, 0), 'seat')]
    leg_h = height - seat_t
    if rng.random() < 0.4:   # slab ends
        t = rng.uniform(0.03, 0.06)
        parts += [panel(t, leg_h, depth * rng.uniform(0.8, 1.0),
                        (s * (length / 2 - rng.uniform(0.05, 0.2)), leg_h / 2, 0), 'leg') for s in (-1, 1)]
    else:
        t = rng.uniform(0.03, 0.07)
        parts += legs(rng, length, depth, leg_h, t, t / 2 + rng.uniform(0, 0.08), count=6 if length > 1.4 else 4)
    if rng.random() < 0.4:
        back_h = rng.uniform(0.25, 0.45)
        back = [panel(length, back_h, 0.03, (0, back_h / 2, 0), 'back')] if rng.random() < 0.5 else \
            [panel(length, 0.05, 0.03, (0, y, 0), 'back') for y in np.linspace(0.1, 0.9, 3) * back_h] + \
            [panel(0.04, back_h, 0.04, (s * length * 0.45, back_h / 2, 0), 'back') for s in (-1, 1)]
        parts += moved(back, (0, height, -depth / 2), rotation('x', -rng.uniform(0, 15)))
    if rng.random() < 0.25:
        arm_h = rng.uniform(0.15, 0.25)
        parts += [panel(0.05, arm_h, depth, (s * length / 2, height + arm_h / 2, 0), 'arm') for s in (-1, 1)]
    return parts


def table_top(rng, width, depth, t, y):
    """A rectangular, round or rounded-end top centred at height y."""
    shape = rng.choice(['rect', 'round', 'oval'], p=[0.6, 0.2, 0.2])
    if shape == 'rect':
        return [panel(width, t, depth, (0, y, 0), 'top')]
    if shape == 'round':
        return [Part(cylinder(max(width, depth) / 2, t), 'top', (0, y, 0))]
    core = width - depth
    return [panel(core, t, depth, (0, y, 0), 'top')] + \
        [Part(cylinder(depth / 2, t), 'top', (s * core / 2, y, 0)) for s in (-1, 1)]


def table(rng):
    height = rng.uniform(0.42, 0.8)   # coffee to dining
    width = rng.uniform(0.6, 1.9)
    depth = rng.uniform(0.5, min(width, 1.1))
    t = rng.uniform(0.025, 0.08)
    parts = table_top(rng, width, depth, t, height - t / 2)
    leg_h = height - t
    base = rng.choice(['legs', 'pedestal', 'trestle'], p=[0.65, 0.2, 0.15])
    if base == 'pedestal':
        parts.append(Part(cylinder(rng.uniform(0.04, 0.1), leg_h), 'leg', (0, leg_h / 2, 0)))
        if rng.random() < 0.5:
            parts.append(Part(cylinder(min(width, depth) * rng.uniform(0.25, 0.4), 0.04), 'leg', (0, 0.02, 0)))
        else:
            parts += [panel(min(width, depth) * 0.7, 0.05, 0.07, (0, 0.025, 0), 'leg', rotation('y', a))
                      for a in (0, 90)]
        return parts
    inset = rng.uniform(0.03, 0.15) * min(width, depth)
    if base == 'trestle':
        pt = rng.uniform(0.04, 0.08)
        parts += [panel(pt, leg_h, depth * 0.8, (s * (width / 2 - inset), leg_h / 2, 0), 'leg') for s in (-1, 1)]
        parts.append(panel(width - 2 * inset, 0.06, 0.04, (0, leg_h * 0.25, 0), 'support'))
        return parts
    leg_t = rng.uniform(0.035, 0.09)
    parts += legs(rng, width, depth, leg_h, leg_t, inset, count=6 if width > 1.6 and rng.random() < 0.5 else 4)
    style = rng.choice(['apron', 'shelf', 'stretcher', 'none'], p=[0.35, 0.2, 0.15, 0.3])
    if style == 'apron':
        h = rng.uniform(0.05, 0.12)
        parts += renamed(stretchers(width, depth, leg_h - h / 2, inset, 0.02), 'support')
    elif style == 'shelf':
        parts.append(panel(width - 2 * inset, 0.025, depth - 2 * inset, (0, rng.uniform(0.1, 0.3) * leg_h, 0),
                           'support'))
    elif style == 'stretcher':
        parts += renamed(stretchers(width, depth, rng.uniform(0.1, 0.3) * leg_h, inset, 0.03), 'support')
    return parts


def pedestal(rng, width, height, depth, x, name='drawer'):
    """A column of drawers under a desk top, centred at x, its front on z = depth / 2."""
    parts = [panel(width, height, depth, (x, height / 2, 0), name)]
    rows = int(rng.integers(1, 5))
    return parts + drawer_fronts(rng, width * 0.96, height * 0.95, x, height / 2, depth / 2, rows, 1, name)


def desk(rng):
    width, depth, height = rng.uniform(0.9, 1.7), rng.uniform(0.5, 0.8), rng.uniform(0.7, 0.78)
    t = rng.uniform(0.025, 0.05)
    parts = [panel(width, t, depth, (0, height - t / 2, 0), 'top')]
    under = height - t
    ped_w = rng.uniform(0.3, 0.45)
    layout = rng.choice(['one', 'two', 'legs'], p=[0.45, 0.3, 0.25])
    sides = {'one': [1], 'two': [-1, 1], 'legs': []}[layout]
    for s in sides:
        parts += pedestal(rng, ped_w, under, depth * 0.95, s * (width - ped_w) / 2)
    free = [s for s in (-1, 1) if s not in sides]
    if len(free) == 2 and rng.random() < 0.5:
        parts += legs(rng, width, depth, under, rng.uniform(0.04, 0.07), 0.05)
    else:
        for s in free:
            if rng.random() < 0.6:
                parts.append(panel(0.03, under, depth * 0.95, (s * (width / 2 - 0.015), under / 2, 0), 'leg'))
            else:
                parts += [panel(0.05, under, 0.05, (s * (width / 2 - 0.05), under / 2, z * (depth / 2 - 0.05)), 'leg')
                          for z in (-1, 1)]
    if rng.random() < 0.6:   # modesty panel at the back
        ph = under * rng.uniform(0.3, 0.7)
        parts.append(panel(width * 0.9, ph, 0.02, (0, under - ph / 2, -depth * 0.45), 'support'))
    if rng.random() < 0.25:   # hutch shelf on top
        hh = rng.uniform(0.25, 0.45)
        parts += [panel(width, 0.025, depth * 0.35, (0, height + hh, -depth * 0.32), 'support'),
                  *[panel(0.025, hh, depth * 0.35, (s * width / 2, height + hh / 2, -depth * 0.32), 'support')
                    for s in (-1, 1)]]
    return parts


def bed(rng):
    width, length = rng.uniform(0.9, 1.9), rng.uniform(1.9, 2.2)
    frame_h, lift = rng.uniform(0.12, 0.3), rng.uniform(0.0, 0.2)
    mattress_t = rng.uniform(0.15, 0.3)
    parts = [panel(width, frame_h, length, (0, lift + frame_h / 2, 0), 'frame'),
             panel(width * 0.97, mattress_t, length * 0.97, (0, lift + frame_h + mattress_t / 2, 0), 'mattress')]
    if lift > 0.03:
        parts += legs(rng, width, length, lift, rng.uniform(0.05, 0.09), 0.06, count=6 if width > 1.5 else 4)
    top = lift + frame_h + mattress_t
    head_h = top + rng.uniform(0.25, 0.8)
    parts.append(panel(width * rng.uniform(1.0, 1.08), head_h, rng.uniform(0.04, 0.1), (0, head_h / 2, -length / 2),
                       'headboard'))
    if rng.random() < 0.5:
        foot_h = top + rng.uniform(-0.1, 0.25)
        parts.append(panel(width, foot_h, 0.05, (0, foot_h / 2, length / 2), 'headboard'))
    pillows = int(rng.choice([0, 1, 2], p=[0.25, 0.35, 0.4]))
    for k in range(pillows):
        x = 0 if pillows == 1 else (k - 0.5) * width / 2
        shape = Ellipsoid(width / (2 * pillows) * rng.uniform(0.7, 0.9), rng.uniform(0.05, 0.09),
                          rng.uniform(0.15, 0.22))
        parts.append(Part(shape, 'pillow', (x, top + shape.b * 0.8, -length / 2 + 0.3)))
    return parts


def sofa(rng):
    width, depth = rng.uniform(1.2, 2.4), rng.uniform(0.75, 1.0)
    lift, base_h = rng.uniform(0.0, 0.14), rng.uniform(0.15, 0.3)
    arms = int(rng.choice([0, 1, 2], p=[0.1, 0.15, 0.75]))
    arm_w = rng.uniform(0.1, 0.25) if arms else 0.0
    inner = width - 2 * arm_w
    parts = [panel(width, base_h, depth, (0, lift + base_h / 2, 0), 'base')]
    if lift > 0.03:
        parts += legs(rng, width, depth, lift, 0.05, 0.06)
    seats, cush_t = int(rng.integers(1, 4)), rng.uniform(0.1, 0.2)
    seat_top = lift + base_h + cush_t
    for k in range(seats):
        x = -inner / 2 + (k + 0.5) * inner / seats
        parts.append(panel(inner / seats * 0.98, cush_t, depth * 0.8, (x, seat_top - cush_t / 2, depth * 0.08), 'seat'))
    back_h, back_t = rng.uniform(0.35, 0.6), rng.uniform(0.12, 0.22)
    back_rot = rotation('x', -rng.uniform(0, 15))
    at = np.array([0, lift + base_h, -depth / 2 + back_t / 2])
    if rng.random() < 0.5:
        parts.append(Part(Box(width, back_h + cush_t, back_t), 'back', at + back_rot @ [0, (back_h + cush_t) / 2, 0],
                          back_rot))
    else:
        for k in range(seats):
            x = -inner / 2 + (k + 0.5) * inner / seats
            parts.append(Part(Box(inner / seats * 0.96, back_h, back_t), 'back',
                              at + back_rot @ [x, cush_t + back_h / 2, 0], back_rot))
    arm_h = rng.uniform(0.15, 0.3)
    for s in ([1, -1][:arms] if arms else []):
        x = s * (width - arm_w) / 2
        parts.append(panel(arm_w, base_h + cush_t + arm_h, depth, (x, lift + (base_h + cush_t + arm_h) / 2, 0), 'arm'))
        if rng.random() < 0.4:
            parts.append(Part(cylinder(arm_w / 2, depth), 'arm', (x, lift + base_h + cush_t + arm_h, 0), Z_AXIS))
    if rng.random() < 0.2:   # chaise: an L-shaped extension
        side = rng.choice([-1, 1])
        ext = rng.uniform(0.5, 0.8)
        parts.append(panel(inner / 2.5, base_h + cush_t, ext, (side * inner / 4, lift + (base_h + cush_t) / 2,
                                                              depth / 2 + ext / 2), 'seat'))
    return parts


def cabinet(rng):
    """Dressers, sideboards, wardrobes and night stands: a body with drawer or door fronts."""
    width, height, depth = rng.uniform(0.4, 1.6), rng.uniform(0.45, 1.9), rng.uniform(0.35, 0.6)
    lift = rng.choice([0.0, rng.uniform(0.05, 0.2)], p=[0.5, 0.5])
    body_h = height - lift
    parts = [panel(width, body_h, depth, (0, lift + body_h / 2, 0), 'body')]
    if lift > 0:
        parts += legs(rng, width, depth, lift, rng.uniform(0.03, 0.06), 0.04)
    if rng.random() < 0.5:
        parts.append(panel(width + 0.04, 0.03, depth + 0.03, (0, height + 0.015, 0.01), 'body'))
    kind = rng.choice(['drawers', 'doors', 'mixed'], p=[0.45, 0.3, 0.25])
    rows = int(rng.integers(2, 7)) if kind == 'drawers' else 1
    cols = int(rng.integers(1, 4)) if kind == 'drawers' else int(rng.integers(1, 3))
    fh = body_h * (rng.uniform(0.3, 0.5) if kind == 'mixed' else 0.95)
    parts += drawer_fronts(rng, width * 0.96, fh, 0, lift + body_h - fh / 2 - 0.01 * body_h, depth / 2, rows if
                           kind != 'mixed' else int(rng.integers(1, 3)), cols, 'door')
    if kind == 'mixed':
        dh = body_h * 0.93 - fh
        parts += drawer_fronts(rng, width * 0.96, dh, 0, lift + dh / 2 + 0.02, depth / 2, 1, int(rng.integers(1, 3)),
                               'door')
    return parts


def bookshelf(rng):
    width, height, depth = rng.uniform(0.4, 1.4), rng.uniform(0.7, 2.0), rng.uniform(0.22, 0.4)
    t = rng.uniform(0.015, 0.035)
    parts = [panel(t, height, depth, (s * (width - t) / 2, height / 2, 0), 'side') for s in (-1, 1)]
    if rng.random() < 0.75:
        parts.append(panel(width, height, 0.01, (0, height / 2, -depth / 2 + 0.005), 'back'))
    count = int(rng.integers(2, 7))
    ys = np.linspace(0, height - t, count + 1)
    if rng.random() < 0.3:
        ys = np.sort(np.concatenate([ys[[0, -1]], rng.uniform(0.1, 0.9, count - 1) * height]))
    parts += [panel(width - 2 * t, t, depth, (0, y + t / 2, 0), 'shelf') for y in ys]
    if rng.random() < 0.7:
        parts += books(rng, ys[:-1] + t, np.diff(ys) - t, width - 2 * t, depth)
    return parts


def books(rng, floors, clearances, width, depth):
    """Rows of books (thin boxes) standing on some of the shelves, filling part of each."""
    parts = []
    for y, room in zip(floors, clearances):
        if rng.random() < 0.3 or room < 0.12:
            continue
        count = int(rng.integers(3, 16))
        thick = rng.uniform(0.02, 0.05, count)
        heights = np.minimum(rng.uniform(0.15, 0.3, count), room * 0.9)
        x = -width / 2 + rng.uniform(0, 0.3) * width
        for w, h in zip(thick, heights):
            if x + w > width / 2:
                break
            d = depth * rng.uniform(0.6, 0.9)
            parts.append(panel(w * 0.95, h, d, (x + w / 2, y + h / 2, -depth / 2 + d / 2 + 0.01), 'book'))
            x += w
    return parts

