"""Hand-held and table-top objects: bottle, vase, flower pot, bowl, mug, bag, cap, earphone, knife,
guitar, pistol.

Several are turned shapes (bottle, bowl, mug, and the round bin of ``fixtures.py``) that
differ in profile and in a handle; handles (loops and grips) recur on mugs, bags, knives and
pistols.
"""
import math

import numpy as np

from datasets.demo.parts import FLAT_RING, X_AXIS, Z_AXIS, loop_handle, moved, panel, rod
from datasets.demo.primitives import Box, Ellipsoid, Frustum, Part, SphereZone, TorusArc, cylinder, rotation


def bottle(rng):
    body_r, body_h = rng.uniform(0.15, 0.32), rng.uniform(0.4, 1.1)
    neck_r, neck_h, shoulder_h = rng.uniform(0.04, 0.11), rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.35)
    square = rng.random() < 0.25
    body = Box(2 * body_r, body_h, 2 * body_r * rng.uniform(0.6, 1.0)) if square else \
        Frustum(body_r * rng.uniform(0.85, 1.1), body_r, body_h, top=False)
    cap_h = rng.uniform(0.04, 0.14)
    parts = [Part(body, 'body', (0, body_h / 2, 0))]
    if rng.random() < 0.6:
        parts.append(Part(Frustum(body_r, neck_r, shoulder_h, bottom=False, top=False), 'body',
                          (0, body_h + shoulder_h / 2, 0)))
    else:
        shoulder_h = body_r * rng.uniform(0.4, 0.8)
        parts.append(Part(Ellipsoid(body_r, shoulder_h, body_r, 0, shoulder_h), 'body', (0, body_h, 0)))
    parts += [Part(cylinder(neck_r, neck_h, bottom=False, top=False), 'neck', (0, body_h + shoulder_h + neck_h / 2, 0))]
    if rng.random() < 0.8:
        parts.append(Part(cylinder(neck_r * rng.uniform(1.05, 1.4), cap_h), 'cap',
                          (0, body_h + shoulder_h + neck_h + cap_h / 2, 0)))
    if rng.random() < 0.15:   # a jug handle
        parts.append(loop_handle(body_h * 0.2, 0.02, 200, (body_r, body_h * 0.7, 0), np.eye(3)))
    return parts


def turned_profile(radii, heights, name, wall=0.0):
    """A surface of revolution through the (radius, height) knots: frustums between them, open at
    the top; ``wall`` > 0 adds the inner surface of a vessel of that thickness."""
    parts = []
    for k in range(len(radii) - 1):
        h = heights[k + 1] - heights[k]
        mid = (heights[k] + heights[k + 1]) / 2
        parts.append(Part(Frustum(radii[k], radii[k + 1], h, bottom=k == 0, top=False), name, (0, mid, 0)))
        if wall:
            parts.append(Part(Frustum(radii[k] - wall, radii[k + 1] - wall, h, bottom=k == 0, top=False, inward=True),
                              name, (0, mid + (wall if k == 0 else 0), 0)))
    return parts


def vase(rng):
    height = rng.uniform(0.5, 1.2)
    foot, belly = rng.uniform(0.08, 0.2), rng.uniform(0.14, 0.32)
    neck = max(rng.uniform(0.2, 0.6) * belly, 0.05)
    lip = neck * rng.uniform(1.0, 1.7)
    belly_y, neck_y = rng.uniform(0.2, 0.6), rng.uniform(0.65, 0.92)
    parts = turned_profile([foot, belly, neck, lip], np.array([0, belly_y, neck_y, 1]) * height, 'body',
                           wall=0.015)
    parts.append(Part(TorusArc(lip - 0.0075, 0.0075), 'body', (0, height, 0), FLAT_RING))
    if rng.random() < 0.2:   # two small handles between belly and neck
        y = (belly_y + neck_y) / 2 * height
        parts += [loop_handle(height * 0.1, 0.012, 200, (s * (belly + neck) / 2, y, 0),
                              rotation('y', 0 if s > 0 else 180)) for s in (-1, 1)]
    return parts


def flower_pot(rng):
    height, r0 = rng.uniform(0.25, 0.5), rng.uniform(0.12, 0.22)
    r1 = r0 * rng.uniform(1.1, 1.5)
    parts = turned_profile([r0, r1], [0.0, height], 'pot', wall=0.015)
    soil_y = height * rng.uniform(0.8, 0.95)
    parts.append(Part(cylinder(r0 + (r1 - r0) * soil_y / height - 0.015, 0.0, bottom=False), 'pot', (0, soil_y, 0)))
    if rng.random() < 0.3:   # a saucer
        parts.append(Part(cylinder(r0 * 1.3, 0.02), 'pot', (0, -0.01, 0)))
    stems = int(rng.integers(1, 6))
    for _ in range(stems):   # stems with a leaf (a flat ellipsoid) or a bloom at the end
        lean = rotation('y', rng.uniform(0, 360)) @ rotation('z', rng.uniform(0, 35))
        length = rng.uniform(0.3, 1.0) * height * 2
        base = np.array([rng.uniform(-0.5, 0.5) * r0, soil_y, rng.uniform(-0.5, 0.5) * r0])
        tip = base + lean @ [0, length, 0]
        parts.append(rod(base, tip, rng.uniform(0.005, 0.012), 'plant'))
        leaf = Ellipsoid(rng.uniform(0.04, 0.12), rng.uniform(0.005, 0.01), rng.uniform(0.02, 0.05))
        parts.append(Part(leaf, 'plant', tip, lean @ rotation('x', rng.uniform(-40, 40))))
    return parts


def bowl(rng):
    radius, wall = rng.uniform(0.4, 0.8), rng.uniform(0.015, 0.05)
    depth = radius * rng.uniform(0.3, 1.0)   # shallow dish to deep bowl
    parts = [Part(Ellipsoid(radius, depth, radius, -depth, 0), 'body'),
             Part(Ellipsoid(radius - wall, depth - wall, radius - wall, -(depth - wall), 0, inward=True), 'body'),
             Part(TorusArc(radius - wall / 2, wall / 2), 'body', (0, 0, 0), FLAT_RING)]
    if rng.random() < 0.6:
        foot_h = rng.uniform(0.03, 0.1)
        parts.append(Part(cylinder(radius * rng.uniform(0.25, 0.5), foot_h, top=False), 'foot',
                          (0, -depth + 0.01 - foot_h / 2, 0)))
    if rng.random() < 0.15:   # two small side handles
        parts += [loop_handle(radius * 0.12, wall, 180, (s * radius, -wall, 0),
                              FLAT_RING @ rotation('z', 0 if s > 0 else 180)) for s in (-1, 1)]
    return parts


def mug(rng):
    r0, height, wall = rng.uniform(0.25, 0.42), rng.uniform(0.45, 1.0), rng.uniform(0.02, 0.045)
    r1 = r0 * rng.uniform(0.85, 1.25)
    inner_h = height - wall
    handle_r = rng.uniform(0.12, 0.26) * height / 0.75
    parts = [Part(Frustum(r0, r1, height, top=False), 'body', (0, height / 2, 0)),
             Part(Frustum(r0 - wall, r1 - wall, inner_h, top=False, bottom=False, inward=True), 'body',
                  (0, wall + inner_h / 2, 0)),
             Part(TorusArc(r1 - wall / 2, wall / 2), 'body', (0, height, 0), FLAT_RING)]
    handle = TorusArc(handle_r, rng.uniform(0.02, 0.05), rng.uniform(170, 240))
    if rng.random() < 0.3:   # a squared handle: three straight bars
        t = handle.r
        x0, y0 = (r0 + r1) / 2, height * rng.uniform(0.45, 0.55)
        parts += [rod((x0, y0 - handle_r, 0), (x0 + handle_r, y0 - handle_r, 0), t, 'handle'),
                  rod((x0 + handle_r, y0 - handle_r, 0), (x0 + handle_r, y0 + handle_r, 0), t, 'handle'),
                  rod((x0 + handle_r, y0 + handle_r, 0), (x0, y0 + handle_r, 0), t, 'handle')]
    else:
        parts.append(Part(handle, 'handle', ((r0 + r1) / 2, height * rng.uniform(0.45, 0.55), 0)))
    return parts


def bag(rng):
    w, h, d = rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.5), rng.uniform(0.1, 0.25)
    if rng.random() < 0.3:   # a duffel: a lying ellipsoid
        parts = [Part(Ellipsoid(w / 2, h / 2, d), 'body', (0, h / 2, 0))]
        top = h
    else:
        parts = [panel(w, h, d, (0, h / 2, 0), 'body')]
        top = h
        if rng.random() < 0.5:
            parts.append(Part(Ellipsoid(w / 2, rng.uniform(0.02, 0.06), d / 2), 'body', (0, h, 0)))
    count = int(rng.choice([1, 2]))
    R = min(rng.uniform(0.08, 0.22), 0.45 * w) if rng.random() < 0.8 else 0.48 * w   # handles or a strap
    for k in range(count):
        z = 0 if count == 1 else (k - 0.5) * d * 0.8
        parts.append(loop_handle(R, rng.uniform(0.008, 0.02), 180, (0, top, z), rotation('z', 90)))
    if rng.random() < 0.4:   # a front pocket
        parts.append(panel(w * rng.uniform(0.4, 0.8), h * rng.uniform(0.3, 0.5), 0.04, (0, h * 0.35, d / 2 + 0.02),
                           'body'))
    return parts


def cap(rng):
    r = rng.uniform(0.09, 0.12)
    crown_h = r * rng.uniform(0.6, 1.1)
    parts = [Part(Ellipsoid(r, crown_h, r * rng.uniform(1.0, 1.15), 0), 'panels')]
    if rng.random() < 0.6:
        parts.append(Part(SphereZone(r * 0.1), 'panels', (0, crown_h, 0)))
    if rng.random() < 0.3:   # a band round the crown
        parts.append(Part(cylinder(r * 1.01, crown_h * 0.2, bottom=False, top=False), 'panels', (0, crown_h * 0.1, 0)))
    peak_l, peak_w = r * rng.uniform(0.6, 1.1), r * rng.uniform(1.4, 2.0)
    tilt = rotation('x', rng.uniform(0, 25))
    parts.append(Part(Box(peak_w, 0.006, peak_l), 'peak', np.array([0, 0.01, r * 0.9]) + tilt @ [0, 0, peak_l / 2],
                      tilt))
    return parts


def earphone(rng):
    if rng.random() < 0.25:   # earbuds on a Y cable
        parts = []
        for s in (-1, 1):
            bud = np.array([s * rng.uniform(0.08, 0.15), 0.0, 0.0])
            parts += [Part(SphereZone(rng.uniform(0.015, 0.025)), 'earphone', bud),
                      rod(bud, bud + [0, -0.05, 0], 0.006, 'earphone'),
                      rod(bud + [0, -0.05, 0], (0, -0.25, 0), 0.003, 'cord')]
        return parts + [rod((0, -0.25, 0), (rng.uniform(-0.05, 0.05), -0.6, 0), 0.003, 'cord')]
    R = rng.uniform(0.08, 0.11)
    band = TorusArc(R, rng.uniform(0.008, 0.016), rng.uniform(170, 210))
    parts = [Part(band, 'headband', (0, 0, 0), rotation('z', 90))]
    cup_r, cup_t = rng.uniform(0.035, 0.055), rng.uniform(0.02, 0.045)
    for s in (-1, 1):
        at = np.array([s * R, -rng.uniform(0.0, 0.02), 0])
        if rng.random() < 0.6:   # a round cup facing the other one
            parts.append(Part(cylinder(cup_r, cup_t), 'earphone', at, X_AXIS))
        else:
            parts.append(Part(Ellipsoid(cup_t / 2 + 0.005, cup_r * 1.2, cup_r), 'earphone', at))
    if rng.random() < 0.4:
        parts.append(rod((R, -0.02, 0), (R * rng.uniform(1.0, 1.5), -rng.uniform(0.15, 0.3), 0.02), 0.004, 'cord'))
    return parts


def knife(rng):
    blade_w, blade_l, blade_t = rng.uniform(0.06, 0.2), rng.uniform(0.5, 1.2), rng.uniform(0.01, 0.03)
    handle_l = rng.uniform(0.3, 0.55)
    handle = cylinder(rng.uniform(0.03, 0.06), handle_l) if rng.random() < 0.5 else \
        Box(rng.uniform(0.06, 0.12), handle_l, rng.uniform(0.03, 0.06))
    tip = blade_w / math.sqrt(2)
    parts = [Part(handle, 'handle', (0, handle_l / 2, 0)),
             Part(Box(blade_w, blade_l, blade_t), 'blade', (0, handle_l + blade_l / 2, 0)),
             Part(Box(tip, tip, blade_t), 'blade', (0, handle_l + blade_l, 0), rotation('z', 45))]
    if rng.random() < 0.5:
        guard = Box(blade_w * rng.uniform(1.3, 2.2), 0.03, rng.uniform(0.04, 0.1))
        parts.append(Part(guard, 'handle', (0, handle_l, 0)))
    return moved(parts, rot=rotation('z', -90))   # knives lie along x


def guitar(rng):
    thick = rng.uniform(0.06, 0.14)
    if rng.random() < 0.3:   # a solid body
        body_w, body_h = rng.uniform(0.45, 0.7), rng.uniform(0.6, 1.0)
        parts, neck_y = [panel(body_w, body_h, thick, (0, body_h / 2, 0), 'body')], body_h
        if rng.random() < 0.5:
            parts.append(panel(body_w * 0.3, body_h * 0.4, thick, (body_w * 0.4, body_h * 0.9, 0), 'body'))
    else:
        low_r = rng.uniform(0.28, 0.42)
        up_r = low_r * rng.uniform(0.65, 0.88)
        up_y = low_r + (low_r + up_r) * rng.uniform(0.5, 0.75)
        parts = [Part(cylinder(low_r, thick), 'body', (0, low_r, 0), Z_AXIS),
                 Part(cylinder(up_r, thick), 'body', (0, up_y, 0), Z_AXIS)]
        neck_y = up_y + 0.8 * up_r
        if rng.random() < 0.5:   # sound hole ring
            parts.append(Part(TorusArc(up_r * 0.3, 0.008), 'body', (0, up_y - up_r * 0.2, thick / 2)))
    neck_l, head_l = rng.uniform(0.7, 1.1), rng.uniform(0.15, 0.28)
    head_rot = rotation('x', -rng.uniform(0, 15))
    parts += [panel(rng.uniform(0.06, 0.1), neck_l, thick * 0.5, (0, neck_y + neck_l / 2, thick * 0.25), 'neck'),
              Part(Box(rng.uniform(0.08, 0.15), head_l, thick * 0.4), 'head',
                   np.array([0, neck_y + neck_l, thick * 0.25]) + head_rot @ [0, head_l / 2, 0], head_rot)]
    return parts


def pistol(rng):
    slide_l, slide_h, slide_w = rng.uniform(0.15, 0.3), rng.uniform(0.03, 0.05), rng.uniform(0.025, 0.04)
    parts = [panel(slide_l, slide_h, slide_w, (0, 0, 0), 'barrel')]
    if rng.random() < 0.5:   # a barrel sticking out, or a revolver drum
        length = rng.uniform(0.03, 0.12)
        parts.append(Part(cylinder(slide_h * 0.3, length), 'barrel', (slide_l / 2 + length / 2, slide_h * 0.1, 0),
                          X_AXIS))
    if rng.random() < 0.25:
        parts.append(Part(cylinder(slide_h * 0.7, slide_l * 0.25), 'barrel', (-slide_l * 0.1, -slide_h * 0.3, 0),
                          X_AXIS))
    grip_l, grip_w = rng.uniform(0.08, 0.15), rng.uniform(0.03, 0.05)
    rake = rotation('z', rng.uniform(8, 25))
    grip_top = np.array([-slide_l / 2 + grip_w * 0.8, -slide_h / 2, 0])
    parts.append(Part(Box(grip_w, grip_l, slide_w * 1.1), 'handle', grip_top + rake @ [0, -grip_l / 2, 0], rake))
    if rng.random() < 0.3:   # an extended magazine
        parts.append(Part(Box(grip_w * 0.8, grip_l * 0.3, slide_w * 0.9), 'handle',
                          grip_top + rake @ [0, -grip_l * 1.1, 0], rake))
    guard_r = rng.uniform(0.018, 0.03)
    guard_at = grip_top + [grip_w / 2 + guard_r, -0.002, 0]
    parts += [Part(TorusArc(guard_r, 0.004, 200), 'trigger', guard_at, rotation('z', -90)),
              Part(Box(0.006, guard_r * 1.2, 0.006), 'trigger', guard_at + [0, -guard_r * 0.3, 0], rotation('z', 15))]
    return parts
