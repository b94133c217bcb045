"""Parametric object categories built from primitives, with per-instance variation.

Each builder takes a numpy Generator and returns a list of ``Part``s in a y-up frame.
``Category.parts`` lists its part names; for a category that also appears in ShapeNetPart
(``partseg``), the i-th name is that category's i-th global part id.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from datasets.demo.primitives import Box, Frustum, Part, SphereZone, TorusArc, cylinder, rotation

X_AXIS = rotation('z', -90)   # maps the primitives' y axis onto +x
Z_AXIS = rotation('x', 90)    # maps the primitives' y axis onto +z
FLAT_RING = rotation('x', 90)  # a TorusArc (xy plane) lying in the xz plane


def leg_set(rng, width, depth, height, thickness, inset, name='leg'):
    """Four vertical legs (boxes or cylinders, slightly splayed) under a w x d footprint."""
    round_legs, splay = rng.random() < 0.5, rng.uniform(0, 5)
    shape = cylinder(thickness / 2, height) if round_legs else Box(thickness, height, thickness)
    parts = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            rot = rotation('z', -sx * splay) @ rotation('x', sz * splay)
            at = (sx * (width / 2 - inset), height / 2, sz * (depth / 2 - inset))
            parts.append(Part(shape, name, at, rot))
    return parts


def airplane(rng):
    length, r = rng.uniform(1.6, 2.2), rng.uniform(0.08, 0.13)
    body_len, nose_len, tail_len = 0.7 * length, rng.uniform(0.12, 0.18) * length, 0.18 * length
    parts = [Part(cylinder(r, body_len, bottom=False, top=False), 'body', rot=X_AXIS),
             Part(Frustum(r, r * rng.uniform(0, 0.2), nose_len, bottom=False), 'body',
                  (body_len / 2 + nose_len / 2, 0, 0), X_AXIS),
             Part(Frustum(r, r * 0.3, tail_len, bottom=False), 'body',
                  (-body_len / 2 - tail_len / 2, 0, 0), rotation('z', 90))]
    span, chord, sweep = rng.uniform(0.7, 1.1), rng.uniform(0.22, 0.4), rng.uniform(0, 30)
    wing_x, wing_y = rng.uniform(-0.15, 0.1) * length, rng.uniform(-0.6, 0.6) * r
    engine_at = {0: (), 2: (0.4,), 4: (0.3, 0.6)}[int(rng.choice([0, 2, 4], p=[0.25, 0.5, 0.25]))]
    engine = cylinder(rng.uniform(0.05, 0.08), rng.uniform(0.25, 0.35))
    for side in (-1, 1):
        rot = rotation('y', -side * sweep)
        root = np.array([wing_x, wing_y, side * 0.6 * r])
        parts.append(Part(Box(chord, 0.03, span), 'wing', root + rot @ [0, 0, side * span / 2], rot))
        for f in engine_at:
            at = root + rot @ [0, 0, side * f * span] + [0.08, -engine.r0 - 0.03, 0]
            parts.append(Part(engine, 'engine', at, X_AXIS))
    tail_x, fin_h = -body_len / 2 - 0.6 * tail_len, rng.uniform(0.25, 0.4)
    parts += [Part(Box(chord * 0.6, 0.025, span * rng.uniform(0.6, 0.9)), 'tail', (tail_x, 0, 0)),
              Part(Box(chord * 0.7, fin_h, 0.025), 'tail', (tail_x, r + fin_h / 2, 0))]
    return parts


def chair(rng):
    width, depth = rng.uniform(0.8, 1.1), rng.uniform(0.75, 1.0)
    seat_t, seat_h = rng.uniform(0.06, 0.14), rng.uniform(0.8, 1.0)
    parts = [Part(Box(width, seat_t, depth), 'seat', (0, seat_h - seat_t / 2, 0))]
    leg_h = seat_h - seat_t
    if rng.random() < 0.65:
        t = rng.uniform(0.05, 0.09)
        parts += leg_set(rng, width, depth, leg_h, t, t / 2 + rng.uniform(0.02, 0.1))
    else:
        parts.append(Part(cylinder(rng.uniform(0.04, 0.06), leg_h - 0.08), 'leg', (0, 0.08 + (leg_h - 0.08) / 2, 0)))
        spin = rng.uniform(0, 72)
        for k in range(5):
            rot = rotation('y', spin + 72 * k)
            parts.append(Part(Box(0.45, 0.05, 0.07), 'leg', rot @ [0.22, 0.05, 0], rot))
    back_h, back_t, tilt = rng.uniform(0.6, 1.1), rng.uniform(0.05, 0.1), rng.uniform(0, 15)
    rot = rotation('x', -tilt)
    bottom = np.array([0, seat_h, -depth / 2 + back_t / 2])
    back = Box(width * rng.uniform(0.85, 1.0), back_h, back_t)
    parts.append(Part(back, 'back', bottom + rot @ [0, back_h / 2, 0], rot))
    if rng.random() < 0.4:
        arm_h = rng.uniform(0.2, 0.3)
        for side in (-1, 1):
            x = side * (width / 2 - 0.035)
            parts += [Part(Box(0.07, 0.05, depth * 0.8), 'arm', (x, seat_h + arm_h, 0)),
                      Part(Box(0.05, arm_h, 0.05), 'arm', (x, seat_h + arm_h / 2, depth * 0.3))]
    return parts


def table(rng):
    height, t = rng.uniform(0.65, 0.8), rng.uniform(0.04, 0.09)
    round_top = rng.random() < 0.3
    if round_top:
        radius = rng.uniform(0.5, 0.8)
        width = depth = radius * math.sqrt(2)
        parts = [Part(cylinder(radius, t), 'top', (0, height - t / 2, 0))]
    else:
        width, depth = rng.uniform(1.2, 2.0), rng.uniform(0.7, 1.1)
        parts = [Part(Box(width, t, depth), 'top', (0, height - t / 2, 0))]
    leg_h = height - t
    if round_top and rng.random() < 0.6:
        parts += [Part(cylinder(rng.uniform(0.05, 0.09), leg_h), 'leg', (0, leg_h / 2, 0)),
                  Part(cylinder(width * rng.uniform(0.3, 0.4), 0.05), 'leg', (0, 0.025, 0))]
        return parts
    leg_t = rng.uniform(0.05, 0.1)
    inset = leg_t / 2 + rng.uniform(0.02, 0.12)
    parts += leg_set(rng, width, depth, leg_h, leg_t, inset)
    style = rng.choice(['apron', 'shelf', 'none'], p=[0.4, 0.3, 0.3])
    if style == 'apron':
        h = rng.uniform(0.06, 0.12)
        y = height - t - h / 2
        parts += [Part(Box(width - 2 * inset, h, 0.03), 'support', (0, y, s * (depth / 2 - inset))) for s in (-1, 1)]
        parts += [Part(Box(0.03, h, depth - 2 * inset), 'support', (s * (width / 2 - inset), y, 0)) for s in (-1, 1)]
    elif style == 'shelf':
        parts.append(Part(Box(width - 2 * inset, 0.03, depth - 2 * inset), 'support', (0, rng.uniform(0.15, 0.3), 0)))
    return parts


def lamp(rng):
    base_h = rng.uniform(0.03, 0.07)
    base = cylinder(rng.uniform(0.18, 0.3), base_h) if rng.random() < 0.7 else Box(0.5, base_h, 0.35)
    pole_h, pole_r = rng.uniform(0.8, 1.6), rng.uniform(0.015, 0.03)
    parts = [Part(base, 'base', (0, base_h / 2, 0)),
             Part(cylinder(pole_r, pole_h), 'pole', (0, base_h + pole_h / 2, 0))]
    top = np.array([0, base_h + pole_h, 0])
    shade_rot = np.eye(3)
    if rng.random() < 0.4:
        arm_rot, arm_len = rotation('z', rng.uniform(30, 70)), rng.uniform(0.4, 0.7)
        parts.append(Part(cylinder(pole_r, arm_len), 'pole', top + arm_rot @ [0, arm_len / 2, 0], arm_rot))
        top, shade_rot = top + arm_rot @ [0, arm_len, 0], rotation('z', -rng.uniform(20, 60))
    shade_h = rng.uniform(0.2, 0.35)
    shade = Frustum(rng.uniform(0.2, 0.4), rng.uniform(0.08, 0.2), shade_h, bottom=False, top=False)
    parts += [Part(shade, 'shade', top + shade_rot @ [0, -0.2 * shade_h, 0], shade_rot),
              Part(SphereZone(rng.uniform(0.05, 0.08)), 'bulb', top + shade_rot @ [0, -0.3 * shade_h, 0])]
    return parts


def mug(rng):
    r0, height, wall = rng.uniform(0.3, 0.42), rng.uniform(0.55, 0.95), rng.uniform(0.02, 0.04)
    r1 = r0 * rng.uniform(0.85, 1.05)
    inner_h = height - wall
    handle_r = rng.uniform(0.14, 0.24) * height / 0.75
    return [Part(Frustum(r0, r1, height, top=False), 'body', (0, height / 2, 0)),
            Part(Frustum(r0 - wall, r1 - wall, inner_h, top=False, inward=True), 'body', (0, wall + inner_h / 2, 0)),
            Part(TorusArc(r1 - wall / 2, wall / 2), 'body', (0, height, 0), FLAT_RING),
            Part(TorusArc(handle_r, rng.uniform(0.025, 0.05), rng.uniform(180, 230)), 'handle',
                 ((r0 + r1) / 2, height * rng.uniform(0.45, 0.55), 0))]


def bowl(rng):
    radius, wall = rng.uniform(0.5, 0.8), rng.uniform(0.02, 0.05)
    rim_y = -radius * rng.uniform(0.0, 0.45)
    rim_r = (math.sqrt(radius ** 2 - rim_y ** 2) + math.sqrt((radius - wall) ** 2 - rim_y ** 2)) / 2
    parts = [Part(SphereZone(radius, -radius, rim_y), 'body'),
             Part(SphereZone(radius - wall, -(radius - wall), rim_y, inward=True), 'body'),
             Part(TorusArc(rim_r, wall / 2), 'body', (0, rim_y, 0), FLAT_RING)]
    if rng.random() < 0.6:
        foot_h = rng.uniform(0.04, 0.1)
        parts.append(Part(cylinder(radius * rng.uniform(0.25, 0.45), foot_h, top=False), 'foot',
                          (0, -radius + 0.02 - foot_h / 2, 0)))
    return parts


def bottle(rng):
    body_r, body_h = rng.uniform(0.18, 0.3), rng.uniform(0.5, 1.0)
    neck_r, neck_h, shoulder_h = rng.uniform(0.05, 0.1), rng.uniform(0.12, 0.35), rng.uniform(0.1, 0.3)
    body = Box(2 * body_r, body_h, 2 * body_r) if rng.random() < 0.25 else cylinder(body_r, body_h, top=False)
    cap_h = rng.uniform(0.05, 0.12)
    return [Part(body, 'body', (0, body_h / 2, 0)),
            Part(Frustum(body_r, neck_r, shoulder_h, bottom=False, top=False), 'body', (0, body_h + shoulder_h / 2, 0)),
            Part(cylinder(neck_r, neck_h, bottom=False, top=False), 'neck', (0, body_h + shoulder_h + neck_h / 2, 0)),
            Part(cylinder(neck_r * rng.uniform(1.1, 1.3), cap_h), 'cap',
                 (0, body_h + shoulder_h + neck_h + cap_h / 2, 0))]


def rocket(rng):
    r, body_h, nose_h = rng.uniform(0.1, 0.17), rng.uniform(1.2, 2.0), rng.uniform(0.25, 0.6)
    parts = [Part(cylinder(r, body_h, bottom=False, top=False), 'body', (0, body_h / 2, 0))]
    if rng.random() < 0.5:
        cone = Frustum(r, r * rng.uniform(0, 0.15), nose_h, bottom=False)
        parts.append(Part(cone, 'nose', (0, body_h + nose_h / 2, 0)))
    else:
        mid = r * rng.uniform(0.6, 0.8)
        parts += [Part(Frustum(r, mid, nose_h / 2, bottom=False, top=False), 'nose', (0, body_h + nose_h / 4, 0)),
                  Part(Frustum(mid, 0.0, nose_h / 2, bottom=False, top=False), 'nose', (0, body_h + 3 * nose_h / 4, 0))]
    nozzle_h = rng.uniform(0.08, 0.2)
    nozzle = Frustum(r * rng.uniform(0.5, 0.8), r * rng.uniform(0.3, 0.6), nozzle_h)
    parts.append(Part(nozzle, 'body', (0, -nozzle_h / 2, 0)))
    count, fin_len = int(rng.choice([3, 4])), rng.uniform(0.12, 0.3)
    fin_h, lift = rng.uniform(0.2, 0.45), rng.uniform(0, 0.1)
    spin = rng.uniform(0, 360)
    for k in range(count):
        rot = rotation('y', spin + 360 * k / count)
        parts.append(Part(Box(fin_len, fin_h, 0.02), 'fin', rot @ [r + fin_len / 2, lift + fin_h / 2, 0], rot))
    return parts


def knife(rng):
    blade_w, blade_l, blade_t = rng.uniform(0.1, 0.2), rng.uniform(0.7, 1.2), rng.uniform(0.01, 0.03)
    handle_l = rng.uniform(0.35, 0.55)
    handle = cylinder(rng.uniform(0.035, 0.06), handle_l) if rng.random() < 0.5 else Box(0.1, handle_l, 0.05)
    side = blade_w / math.sqrt(2)
    parts = [Part(handle, 'handle', (0, handle_l / 2, 0)),
             Part(Box(blade_w, blade_l, blade_t), 'blade', (0, handle_l + blade_l / 2, 0)),
             Part(Box(side, side, blade_t), 'blade', (0, handle_l + blade_l, 0), rotation('z', 45))]
    if rng.random() < 0.5:
        guard = Box(blade_w * rng.uniform(1.5, 2.2), 0.03, rng.uniform(0.05, 0.1))
        parts.append(Part(guard, 'handle', (0, handle_l, 0)))
    turn = rotation('z', -90)   # knives lie along x
    return [Part(p.shape, p.name, turn @ np.asarray(p.at), turn @ p.rot) for p in parts]


def guitar(rng):
    thick = rng.uniform(0.08, 0.14)
    if rng.random() < 0.3:
        body_w, body_h = rng.uniform(0.55, 0.7), rng.uniform(0.8, 1.0)
        parts, neck_y = [Part(Box(body_w, body_h, thick), 'body', (0, body_h / 2, 0))], body_h
    else:
        low_r = rng.uniform(0.33, 0.42)
        up_r = low_r * rng.uniform(0.7, 0.85)
        up_y = low_r + (low_r + up_r) * rng.uniform(0.55, 0.75)
        parts = [Part(cylinder(low_r, thick), 'body', (0, low_r, 0), Z_AXIS),
                 Part(cylinder(up_r, thick), 'body', (0, up_y, 0), Z_AXIS)]
        neck_y = up_y + 0.8 * up_r
    neck_l, head_l = rng.uniform(0.8, 1.1), rng.uniform(0.18, 0.28)
    head_rot = rotation('x', -rng.uniform(5, 15))
    parts += [Part(Box(rng.uniform(0.07, 0.1), neck_l, thick * 0.5), 'neck', (0, neck_y + neck_l / 2, thick * 0.25)),
              Part(Box(rng.uniform(0.1, 0.14), head_l, thick * 0.4), 'head',
                   np.array([0, neck_y + neck_l, thick * 0.25]) + head_rot @ [0, head_l / 2, 0], head_rot)]
    return parts


def car(rng):
    length, width = rng.uniform(1.8, 2.6), rng.uniform(0.8, 1.05)
    wheel_r, wheel_w = rng.uniform(0.14, 0.22), rng.uniform(0.08, 0.14)
    body_h = rng.uniform(0.28, 0.45)
    body_top = 0.9 * wheel_r + body_h
    cabin_l, cabin_h = length * rng.uniform(0.38, 0.6), rng.uniform(0.22, 0.38)
    hood_l = length * rng.uniform(0.2, 0.3)
    parts = [Part(Box(length, body_h, width), 'body', (0, body_top - body_h / 2, 0)),
             Part(Box(cabin_l, cabin_h, width * rng.uniform(0.8, 0.95)), 'roof',
                  (length * rng.uniform(-0.15, 0.1), body_top + cabin_h / 2, 0)),
             Part(Box(hood_l, 0.03, width * 0.9), 'hood', (length / 2 - hood_l / 2, body_top + 0.015, 0),
                  rotation('z', -rng.uniform(0, 8)))]
    axle = length * rng.uniform(0.3, 0.38)
    for sx in (-1, 1):
        for sz in (-1, 1):
            at = (sx * axle, wheel_r, sz * (width / 2 - wheel_w / 2 + 0.02))
            parts.append(Part(cylinder(wheel_r, wheel_w), 'wheel', at, Z_AXIS))
    return parts


def laptop(rng):
    width, depth, base_t = rng.uniform(1.0, 1.4), rng.uniform(0.65, 0.9), rng.uniform(0.03, 0.06)
    screen_h, screen_t = depth * rng.uniform(0.85, 1.0), rng.uniform(0.015, 0.035)
    rot = rotation('x', -(rng.uniform(95, 130) - 90))
    hinge = np.array([0, base_t, -depth / 2 + screen_t / 2])
    return [Part(Box(width, base_t, depth), 'keyboard', (0, base_t / 2, 0)),
            Part(Box(width * rng.uniform(0.97, 1.0), screen_h, screen_t), 'screen',
                 hinge + rot @ [0, screen_h / 2, 0], rot)]


@dataclass(frozen=True)
class Category:
    """A demo class: ``name`` (ModelNet-style), ShapeNet ``synset``, ``build(rng) -> [Part]``,
    its part names, and the ShapeNetPart category it maps onto (None if none)."""
    name: str
    synset: str
    build: Callable
    parts: tuple
    partseg: Optional[str] = None


CATEGORIES = (
    Category('airplane', '02691156', airplane, ('body', 'wing', 'tail', 'engine'), 'Airplane'),
    Category('bottle', '02876657', bottle, ('body', 'neck', 'cap')),
    Category('bowl', '02880940', bowl, ('body', 'foot')),
    Category('car', '02958343', car, ('body', 'roof', 'hood', 'wheel'), 'Car'),
    Category('chair', '03001627', chair, ('back', 'seat', 'leg', 'arm'), 'Chair'),
    Category('guitar', '03467517', guitar, ('head', 'neck', 'body'), 'Guitar'),
    Category('knife', '03624134', knife, ('blade', 'handle'), 'Knife'),
    Category('lamp', '03636649', lamp, ('base', 'shade', 'pole', 'bulb'), 'Lamp'),
    Category('laptop', '03642806', laptop, ('keyboard', 'screen'), 'Laptop'),
    Category('mug', '03797390', mug, ('body', 'handle'), 'Mug'),
    Category('rocket', '04099429', rocket, ('body', 'fin', 'nose'), 'Rocket'),
    Category('table', '04379243', table, ('top', 'leg', 'support'), 'Table'),
)
