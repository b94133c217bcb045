"""Parts shared by several categories: legs, panels, open boxes, handles, knobs, wheels, wings.

Every builder returns a list of ``Part``s in the object frame (y up, +z the front, x the
width). Sharing them is deliberate: legs stand under chairs, stools, benches, tables, desks,
beds, sofas and cabinets; handles sit on mugs, bags, cabinets, doors, bins and sinks; wheels
on cars, motorbikes and skateboards; wings and fins on airplanes and rockets. No single part
type, and so no global statistic of it, names the category.
"""
import math

import numpy as np

from datasets.demo.primitives import Box, Frustum, Part, SphereZone, TorusArc, cylinder, rotation

X_AXIS = rotation('z', -90)    # maps the primitives' y axis onto +x
Z_AXIS = rotation('x', 90)     # maps the primitives' y axis onto +z
FLAT_RING = rotation('x', 90)  # a TorusArc (xy plane) lying in the xz plane


def moved(parts, at=(0.0, 0.0, 0.0), rot=None):
    """``parts`` rotated by ``rot`` (3x3, about the origin) then shifted by ``at``."""
    rot = np.eye(3) if rot is None else rot
    return [Part(p.shape, p.name, rot @ np.asarray(p.at, dtype=float) + at, rot @ p.rot) for p in parts]


def renamed(parts, name):
    return [Part(p.shape, name, p.at, p.rot) for p in parts]


def panel(w, h, t, at, name, rot=None):
    """A w x h x t slab (a Box) centred at ``at``."""
    return Part(Box(w, h, t), name, at, np.eye(3) if rot is None else rot)


def rod(start, end, r, name):
    """A closed cylinder of radius ``r`` from point ``start`` to point ``end``."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    axis = end - start
    length = float(np.linalg.norm(axis))
    return Part(cylinder(r, length), name, (start + end) / 2, align_y(axis / length))


def align_y(direction):
    """A rotation taking +y onto the unit vector ``direction``."""
    y = np.array([0.0, 1.0, 0.0])
    v, c = np.cross(y, direction), float(y @ direction)
    if c < -1 + 1e-9:
        return rotation('x', 180)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def legs(rng, width, depth, height, thickness, inset, name='leg', count=4, round_legs=None, splay=None):
    """``count`` (4 or 6) legs from y=0 up to ``height`` under a width x depth footprint, square or
    round, slightly splayed; 6 legs add a pair half-way along x."""
    round_legs = rng.random() < 0.5 if round_legs is None else round_legs
    splay = rng.uniform(0, 6) if splay is None else splay
    shape = cylinder(thickness / 2, height) if round_legs else Box(thickness, height, thickness)
    xs = (-1, 1) if count == 4 else (-1, 0, 1)
    parts = []
    for sx in xs:
        for sz in (-1, 1):
            rot = rotation('z', -sx * splay) @ rotation('x', sz * splay)
            at = (sx * (width / 2 - inset), height / 2, sz * (depth / 2 - inset))
            parts.append(Part(shape, name, at, rot))
    return parts


def stretchers(width, depth, y, inset, t, name='leg'):
    """Four rails joining the legs of ``legs`` at height ``y``."""
    w, d = width - 2 * inset, depth - 2 * inset
    return ([panel(w, t, t, (0, y, s * d / 2), name) for s in (-1, 1)]
            + [panel(t, t, d, (s * w / 2, y, 0), name) for s in (-1, 1)])


def swivel_base(rng, height, radius, name='leg'):
    """Office-chair base: a column on 4-5 spokes, with caster wheels half of the time."""
    count, spin = int(rng.choice([4, 5])), rng.uniform(0, 360)
    parts = [Part(cylinder(rng.uniform(0.025, 0.045), height), name, (0, height / 2, 0))]
    for k in range(count):
        rot = rotation('y', spin + 360 * k / count)
        parts.append(Part(Box(radius, 0.04, 0.05), name, rot @ [radius / 2, 0.06, 0], rot))
        if rng.random() < 0.5:
            parts.append(Part(cylinder(0.03, 0.03), name, rot @ [radius, 0.03, 0], Z_AXIS))
    return parts


def open_box(w, h, d, t, name, bottom=True, top_rim=0.0):
    """A box open at the top: a floor (optional) and four walls of thickness ``t``, standing on y=0.
    ``top_rim`` > 0 adds a flat rim of that width around the opening."""
    parts = [panel(w, t, d, (0, t / 2, 0), name)] if bottom else []
    parts += [panel(w, h, t, (0, h / 2, s * (d - t) / 2), name) for s in (-1, 1)]
    parts += [panel(t, h, d - 2 * t, (s * (w - t) / 2, h / 2, 0), name) for s in (-1, 1)]
    if top_rim > 0:
        parts += [panel(w + 2 * top_rim, t, top_rim, (0, h, s * (d + top_rim) / 2), name) for s in (-1, 1)]
        parts += [panel(top_rim, t, d, (s * (w + top_rim) / 2, h, 0), name) for s in (-1, 1)]
    return parts


def bar_handle(rng, length, at, name='handle', vertical=False):
    """A pull bar standing off the +z face at ``at``: a rod on two posts (or a knob, a quarter
    of the time)."""
    at = np.asarray(at, dtype=float)
    if rng.random() < 0.25:
        r = rng.uniform(0.012, 0.025)
        return [Part(SphereZone(r), name, at + [0, 0, 0.02 + r])]
    r, off = rng.uniform(0.006, 0.012), rng.uniform(0.025, 0.045)
    axis = np.array([0.0, 1.0, 0.0]) if vertical else np.array([1.0, 0.0, 0.0])
    ends = [at + s * axis * length / 2 for s in (-1, 1)]
    return ([rod(ends[0] + [0, 0, off], ends[1] + [0, 0, off], r, name)]
            + [rod(e, e + [0, 0, off], r, name) for e in ends])


def loop_handle(R, r, arc, at, rot, name='handle'):
    """A curved handle: a tube along an arc (mugs, bags, bins, pots)."""
    return Part(TorusArc(R, r, arc), name, at, rot)


def wheel(rng, radius, width, at, name='wheel', axis=Z_AXIS, tyre=True):
    """A wheel turning about ``axis``: a solid disc, or a tyre (torus) round a hub."""
    if not tyre or rng.random() < 0.4:
        return [Part(cylinder(radius, width), name, at, axis)]
    tube = min(width / 2, radius * 0.3)
    ring = axis @ rotation('x', -90)   # the torus plane perpendicular to the axle
    return [Part(TorusArc(radius - tube, tube), name, at, ring),
            Part(cylinder(radius - 1.6 * tube, width * 0.6), name, at, axis)]


def drawer_fronts(rng, width, height, x, y, z, rows, cols, name='drawer', handle='handle'):
    """A grid of proud drawer / door fronts on the plane z (front faces +z), each with a handle."""
    gap = rng.uniform(0.005, 0.015)
    w, h = width / cols, height / rows
    vertical = rng.random() < 0.3
    parts = []
    for i in range(rows):
        for j in range(cols):
            cx, cy = x - width / 2 + (j + 0.5) * w, y - height / 2 + (i + 0.5) * h
            parts.append(panel(w - gap, h - gap, 0.02, (cx, cy, z + 0.01), name))
            hx = cx if rows > 1 or cols == 1 else cx + (0.35 if j == 0 else -0.35) * w
            parts += renamed(bar_handle(rng, min(0.4 * w, 0.18), (hx, cy + 0.2 * h * (rows == 1), z + 0.02),
                                        vertical=vertical and rows == 1), handle)
    return parts


def wing_pair(rng, span, chord, thickness, root, sweep, dihedral, name='wing'):
    """Two tapered wings (each two boxes: root and tip) mirrored about the xy plane at ``root``."""
    parts = []
    taper = rng.uniform(0.4, 0.9)
    for side in (-1, 1):
        rot = rotation('y', -side * sweep) @ rotation('x', side * dihedral)
        inner = Box(chord, thickness, span * 0.55)
        outer = Box(chord * taper, thickness * 0.8, span * 0.45)
        parts += [Part(inner, name, root + rot @ [0, 0, side * span * 0.275], rot),
                  Part(outer, name, root + rot @ [-(1 - taper) * chord / 4, 0, side * span * 0.775], rot)]
    return parts


def cone_tip(r, h, at, name, rot=None):
    """A closed-bottom cone of base radius ``r`` pointing along the frame's +y."""
    return Part(Frustum(r, 0.0, h, top=False), name, at, np.eye(3) if rot is None else rot)


def ring_positions(count, radius, spin_deg):
    """(count, 3) points evenly spaced on a horizontal circle."""
    angles = np.radians(spin_deg) + 2 * math.pi * np.arange(count) / count
    return np.stack([radius * np.cos(angles), np.zeros(count), radius * np.sin(angles)], axis=1)
