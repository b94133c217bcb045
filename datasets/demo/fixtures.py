"""Room fixtures and containers: door, stairs, sink, toilet, bathtub, bin, box, pillow, display,
laptop, lamp.

Several are boxes at heart (box, bin, bathtub, sink cabinet, display, door), which is what
makes them hard to tell apart from far away: the difference is in openings, rims, handles,
stands and faucets.
"""
import numpy as np

from datasets.demo.parts import FLAT_RING, bar_handle, drawer_fronts, loop_handle, moved, open_box, panel, rod
from datasets.demo.primitives import Box, Ellipsoid, Frustum, Part, SphereZone, TorusArc, cylinder, rotation


def door(rng):
    height, width, t = rng.uniform(1.9, 2.2), rng.uniform(0.7, 1.0), rng.uniform(0.035, 0.06)
    parts = [panel(width, height, t, (0, height / 2, 0), 'leaf')]
    style = rng.choice(['flat', 'panels', 'window'], p=[0.35, 0.45, 0.2])
    if style == 'panels':
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        pw, ph = width * 0.8 / cols, height * 0.85 / rows
        for i in range(rows):
            for j in range(cols):
                at = (-width * 0.4 + (j + 0.5) * pw, height * 0.08 + (i + 0.5) * ph)
                parts += [panel(pw * 0.8, ph * 0.85, 0.012, (*at, s * (t / 2 + 0.006)), 'leaf') for s in (-1, 1)]
    elif style == 'window':
        wh = height * rng.uniform(0.25, 0.45)
        parts += [panel(width * 0.6, wh, 0.02, (0, height * 0.7, s * (t / 2 + 0.01)), 'window') for s in (-1, 1)]
    hy, hx = rng.uniform(0.9, 1.05), (width / 2 - rng.uniform(0.1, 0.15)) * rng.choice([-1, 1])
    lever = bar_handle(rng, rng.uniform(0.1, 0.15), (0, 0, 0), 'handle')
    for s in (-1, 1):   # the same handle on both faces
        parts += moved(lever, (hx, hy, s * t / 2), rotation('y', 0 if s > 0 else 180))
    if rng.random() < 0.5:   # frame (jambs and head)
        ft, fd = rng.uniform(0.04, 0.08), t * rng.uniform(1.5, 3)
        parts += [panel(ft, height + ft, fd, (s * (width + ft) / 2, (height + ft) / 2, 0), 'frame') for s in (-1, 1)]
        parts.append(panel(width + 2 * ft, ft, fd, (0, height + ft / 2, 0), 'frame'))
    return moved(parts, rot=rotation('y', rng.uniform(-35, 0)) if rng.random() < 0.3 else None)


def stairs(rng):
    steps = int(rng.integers(3, 12))
    width, rise, run = rng.uniform(0.6, 1.4), rng.uniform(0.15, 0.2), rng.uniform(0.22, 0.32)
    solid = rng.random() < 0.5   # solid blocks, or floating treads on stringers
    parts = []
    for k in range(steps):
        if solid:
            parts.append(panel(width, rise * (k + 1), run, (0, rise * (k + 1) / 2, -k * run), 'step'))
        else:
            parts.append(panel(width, 0.04, run, (0, rise * (k + 1) - 0.02, -k * run), 'step'))
    if not solid:
        bottom, top = np.array([0, 0, run / 2]), np.array([0, rise * steps, -(steps - 0.5) * run])
        parts += [rod(bottom + [s * width / 2, 0, 0], top + [s * width / 2, 0, 0], 0.03, 'step') for s in (-1, 1)]
    for s in ([-1, 1] if rng.random() < 0.3 else [1] if rng.random() < 0.6 else []):   # hand rails
        x, h = s * width / 2, rng.uniform(0.8, 1.0)
        bottom, top = np.array([x, h, run / 2]), np.array([x, rise * steps + h, -(steps - 0.5) * run])
        parts.append(rod(bottom, top, 0.02, 'railing'))
        parts += [rod(np.array([x, rise * (k + 1), -k * run]), np.array([x, rise * (k + 1) + h, -k * run]), 0.012,
                      'railing') for k in range(0, steps, 2)]
    return parts


def faucet(rng, at, reach):
    """A faucet: a column and a spout (straight or arched), with one or two handles."""
    at = np.asarray(at, dtype=float)
    h, r = rng.uniform(0.1, 0.3), rng.uniform(0.012, 0.025)
    parts = [rod(at, at + [0, h, 0], r, 'faucet')]
    if rng.random() < 0.5:
        up_front = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])   # x -> y, y -> z: an arch over +z
        parts.append(Part(TorusArc(reach / 2, r * 0.8, 180), 'faucet', at + [0, h, reach / 2], up_front))
    else:
        parts.append(rod(at + [0, h * 0.9, 0], at + [0, h * 0.8, reach], r * 0.8, 'faucet'))
    for s in ([-1, 1] if rng.random() < 0.5 else [1]):
        parts.append(Part(cylinder(0.015, 0.05), 'faucet', at + [s * 0.08, 0.025, 0]))
    return parts


def basin(rng, w, d, depth):
    """A sink bowl open at the top, its rim at y=0: rectangular (walls) or rounded (a half ellipsoid)."""
    if rng.random() < 0.5:
        return moved(open_box(w, depth, d, 0.015, 'basin'), (0, -depth, 0))
    shell = [Part(Ellipsoid(w / 2, depth, d / 2, -depth, 0), 'basin'),
             Part(Ellipsoid(w / 2 - 0.015, depth - 0.015, d / 2 - 0.015, -(depth - 0.015), 0, inward=True), 'basin')]
    return shell


def sink(rng):
    w, d = rng.uniform(0.4, 0.9), rng.uniform(0.35, 0.55)
    kind = rng.choice(['vanity', 'pedestal', 'wall', 'kitchen'], p=[0.35, 0.25, 0.2, 0.2])
    top_y = rng.uniform(0.8, 0.9)
    bowl_d = rng.uniform(0.12, 0.22)
    parts = []
    if kind == 'pedestal':
        parts += moved(basin(rng, w, d, bowl_d), (0, top_y, 0))
        parts.append(Part(Frustum(rng.uniform(0.1, 0.16), rng.uniform(0.06, 0.1), top_y - bowl_d), 'cabinet',
                          (0, (top_y - bowl_d) / 2, 0)))
    else:
        counter_t = rng.uniform(0.02, 0.05)
        bowls = 2 if kind == 'kitchen' and rng.random() < 0.6 else 1
        xs = [0.0] if bowls == 1 else [-w * 0.55, w * 0.55]
        bw = w if bowls == 1 else w * 0.9
        cw = w * (rng.uniform(1.15, 1.6) if kind != 'kitchen' else rng.uniform(2.1, 2.8))
        for x in xs:
            parts += moved(basin(rng, bw, d * 0.85, bowl_d), (x, top_y, 0))
        # the counter is a ring of slabs round the bowl openings
        parts += [panel(cw, counter_t, (d * 1.3 - d * 0.85) / 2, (0, top_y, s * (d * 1.3 + d * 0.85) / 4), 'counter')
                  for s in (-1, 1)]
        span = 2 * max(abs(x) for x in xs) + bw
        parts += [panel((cw - span) / 2, counter_t, d * 0.85, (s * (cw + span) / 4, top_y, 0), 'counter')
                  for s in (-1, 1)]
        if bowls == 2:
            parts.append(panel(2 * abs(xs[0]) - bw, counter_t, d * 0.85, (0, top_y, 0), 'counter'))
        if kind in ('vanity', 'kitchen'):
            ch = top_y - counter_t / 2
            parts.append(panel(cw * 0.98, ch, d * 1.2, (0, ch / 2, 0), 'cabinet'))
            doors = int(rng.integers(1, 4))
            parts += drawer_fronts(rng, cw * 0.94, ch * 0.85, 0, ch * 0.5, d * 0.6, 1, doors, 'cabinet', 'cabinet')
    parts += faucet(rng, (0, top_y, -d * 0.55), d * rng.uniform(0.3, 0.5))
    return parts


def toilet(rng):
    seat_y = rng.uniform(0.38, 0.45)
    a, c = rng.uniform(0.16, 0.21), rng.uniform(0.22, 0.3)
    bowl_h = rng.uniform(0.15, 0.25)
    inner = Ellipsoid(a - 0.02, bowl_h - 0.02, c - 0.02, -(bowl_h - 0.02), 0, inward=True)
    foot_h = seat_y - bowl_h * 0.7
    parts = [Part(Ellipsoid(a, bowl_h, c, -bowl_h, 0), 'bowl', (0, seat_y, 0)), Part(inner, 'bowl', (0, seat_y, 0)),
             Part(Frustum(a * 0.7, a * 0.55, foot_h), 'bowl', (0, foot_h / 2, -c * 0.2))]
    ring_r = (a + c) / 2 - 0.03
    parts.append(Part(TorusArc(ring_r, rng.uniform(0.015, 0.025)), 'seat', (0, seat_y + 0.02, 0), FLAT_RING))
    lid = rng.choice(['up', 'down', 'none'], p=[0.4, 0.4, 0.2])
    if lid == 'down':
        parts.append(Part(Ellipsoid(a, 0.015, c, 0, 0.015), 'seat', (0, seat_y + 0.04, 0)))
    elif lid == 'up':
        parts.append(Part(Ellipsoid(a, c, 0.015, 0, c), 'seat', (0, seat_y + 0.04, -c - 0.02), rotation('x', -10)))
    if rng.random() < 0.8:
        tw, th, td = rng.uniform(0.3, 0.45), rng.uniform(0.3, 0.45), rng.uniform(0.14, 0.22)
        tank_y = seat_y + rng.uniform(-0.05, 0.1)
        parts += [panel(tw, th, td, (0, tank_y + th / 2, -c - td / 2), 'tank'),
                  panel(tw + 0.02, 0.025, td + 0.02, (0, tank_y + th + 0.012, -c - td / 2), 'tank')]
        if rng.random() < 0.5:
            parts.append(Part(cylinder(0.015, 0.02), 'tank', (0, tank_y + th + 0.035, -c - td / 2)))
    else:
        parts.append(panel(0.12, seat_y * 0.8, 0.08, (0, seat_y * 0.6, -c - 0.04), 'tank'))
    return parts


def bathtub(rng):
    length, width, height = rng.uniform(1.4, 1.9), rng.uniform(0.65, 0.9), rng.uniform(0.45, 0.62)
    wall = rng.uniform(0.04, 0.1)
    lift = rng.uniform(0.1, 0.2) if rng.random() < 0.3 else 0.0
    parts = moved(open_box(length, height, width, wall, 'tub', top_rim=rng.uniform(0.0, 0.06)), (0, lift, 0))
    if lift:
        parts += [Part(SphereZone(0.05), 'foot', (sx * (length / 2 - 0.15), lift / 2, sz * (width / 2 - 0.1)))
                  for sx in (-1, 1) for sz in (-1, 1)]
    if rng.random() < 0.6:
        parts += faucet(rng, (length / 2 - wall, lift + height, 0), 0.15)
    if rng.random() < 0.25:   # a shower screen
        sh = rng.uniform(0.9, 1.4)
        parts.append(panel(rng.uniform(0.6, 0.9), sh, 0.012, (length * 0.2, lift + height + sh / 2, width / 2),
                           'screen'))
    return parts


def bin_(rng):
    height = rng.uniform(0.35, 0.85)
    if rng.random() < 0.5:
        r0 = rng.uniform(0.14, 0.25)
        r1 = r0 * rng.uniform(1.0, 1.3)
        wall = 0.012
        parts = [Part(Frustum(r0, r1, height, top=False), 'body', (0, height / 2, 0)),
                 Part(Frustum(r0 - wall, r1 - wall, height - wall, top=False, bottom=False, inward=True), 'body',
                      (0, wall + (height - wall) / 2, 0)),
                 Part(TorusArc(r1 - wall / 2, 0.01), 'body', (0, height, 0), FLAT_RING)]
        top_r, top_w = r1, 2 * r1
    else:
        w, d = rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.45)
        parts = open_box(w, height, d, 0.012, 'body', top_rim=rng.uniform(0, 0.02))
        top_r, top_w = None, w
    lid = rng.choice(['none', 'flat', 'dome', 'swing'], p=[0.35, 0.3, 0.15, 0.2])
    if lid == 'flat' or lid == 'swing':
        shape = cylinder(top_r + 0.01, 0.02) if top_r else Box(top_w + 0.02, 0.02, d + 0.02)
        rot = rotation('x', -rng.uniform(30, 80)) if lid == 'swing' else np.eye(3)
        hinge = np.array([0, height, -(top_r or d / 2)])
        parts.append(Part(shape, 'lid', hinge + rot @ [0, 0.01, top_r or d / 2], rot))
    elif lid == 'dome':
        rr = top_r or top_w / 2
        parts.append(Part(Ellipsoid(rr, rr * rng.uniform(0.3, 0.6), rr if top_r else d / 2, 0), 'lid', (0, height, 0)))
    if rng.random() < 0.3:
        parts.append(panel(0.12, 0.02, 0.08, (0, 0.02, (top_r or d / 2) + 0.05), 'pedal'))
    if rng.random() < 0.3:
        side = top_r or top_w / 2
        parts += [loop_handle(0.05, 0.01, 180, (s * side, height * 0.8, 0), rotation('y', 0 if s > 0 else 180))
                  for s in (-1, 1)]
    return parts


def box(rng):
    w, h, d = rng.uniform(0.2, 0.8, 3)
    kind = rng.choice(['closed', 'open', 'flaps', 'lid'], p=[0.35, 0.2, 0.25, 0.2])
    if kind == 'closed':
        parts = [panel(w, h, d, (0, h / 2, 0), 'box')]
    else:
        parts = open_box(w, h, d, 0.008, 'box')
    if kind == 'flaps':
        for s in (-1, 1):
            rot = rotation('x', s * rng.uniform(20, 80))
            parts.append(Part(Box(w, 0.006, d / 2), 'flap', np.array([0, h, s * d / 2]) + rot @ [0, 0, s * d / 4], rot))
            rot = rotation('z', -s * rng.uniform(20, 80))
            parts.append(Part(Box(w / 2, 0.006, d), 'flap', np.array([s * w / 2, h, 0]) + rot @ [s * w / 4, 0, 0], rot))
    elif kind == 'lid':
        shift = rng.uniform(-0.1, 0.1, 2) * [w, d]
        parts.append(panel(w + 0.02, rng.uniform(0.03, 0.1), d + 0.02, (shift[0], h + 0.03, shift[1]), 'flap',
                           rotation('y', rng.uniform(-15, 15))))
    if rng.random() < 0.2:   # a second box stacked on top
        w2, h2, d2 = rng.uniform(0.15, 1.0, 3) * [w, h, d]
        parts.append(panel(w2, h2, d2, (rng.uniform(-0.2, 0.2) * w, h + 0.04 + h2 / 2, 0), 'box',
                           rotation('y', rng.uniform(-30, 30))))
    return parts


def pillow(rng):
    a, c, b = rng.uniform(0.22, 0.38), rng.uniform(0.15, 0.3), rng.uniform(0.05, 0.11)
    pose = rotation('x', -rng.uniform(0, 75)) if rng.random() < 0.5 else np.eye(3)
    parts = [Part(Ellipsoid(a, b, c), 'pillow', pose @ [0, b, 0], pose)]
    if rng.random() < 0.3:   # a piped seam round the edge
        ring = TorusArc((a + c) / 2 * 0.97, rng.uniform(0.008, 0.015))
        parts.append(Part(ring, 'pillow', pose @ [0, b, 0], pose @ FLAT_RING))
    if rng.random() < 0.2:   # another pillow on top
        parts.append(Part(Ellipsoid(a * 0.9, b, c * 0.9), 'pillow', (rng.uniform(-0.05, 0.05), 2.8 * b, 0),
                          rotation('y', rng.uniform(-30, 30))))
    return parts


def display(rng):
    width = rng.uniform(0.4, 0.9)
    height = width * rng.uniform(0.5, 0.8)
    t = rng.uniform(0.015, 0.05)
    stand = rng.choice(['neck', 'feet', 'wall', 'arm'], p=[0.55, 0.2, 0.15, 0.1])
    lift = {'neck': rng.uniform(0.08, 0.25), 'feet': rng.uniform(0.02, 0.06), 'wall': 0.0,
            'arm': rng.uniform(0.05, 0.2)}[stand]
    tilt = rotation('x', -rng.uniform(0, 12))
    screen = [panel(width, height, t, (0, height / 2, 0), 'screen')]
    if rng.random() < 0.5:   # a deeper housing at the back
        screen.append(panel(width * 0.6, height * 0.6, rng.uniform(0.03, 0.08), (0, height * 0.45, -t), 'screen'))
    parts = moved(screen, (0, lift, 0), tilt)
    if stand == 'neck':
        parts += [panel(rng.uniform(0.04, 0.1), lift + height * 0.4, 0.03, (0, (lift + height * 0.4) / 2, -t - 0.03),
                        'stand')]
        base = cylinder(rng.uniform(0.08, 0.14), 0.02) if rng.random() < 0.5 else Box(rng.uniform(0.15, 0.3), 0.02,
                                                                                    rng.uniform(0.12, 0.2))
        parts.append(Part(base, 'stand', (0, 0.01, -t)))
    elif stand == 'feet':
        parts += [panel(0.04, lift + 0.05, rng.uniform(0.1, 0.18), (s * width * 0.4, (lift + 0.05) / 2, 0), 'stand')
                  for s in (-1, 1)]
    elif stand == 'arm':
        parts += [rod((0, lift + height * 0.4, -t - 0.02), (0, lift + height * 0.4, -t - 0.25), 0.02, 'stand'),
                  rod((0, lift + height * 0.4, -t - 0.25), (0, 0, -t - 0.25), 0.02, 'stand'),
                  Part(cylinder(0.06, 0.02), 'stand', (0, 0.01, -t - 0.25))]
    return parts


def laptop(rng):
    width, depth, base_t = rng.uniform(0.9, 1.4), rng.uniform(0.6, 0.9), rng.uniform(0.025, 0.06)
    screen_h, screen_t = depth * rng.uniform(0.85, 1.0), rng.uniform(0.012, 0.035)
    rot = rotation('x', -(rng.uniform(75, 140) - 90))
    hinge = np.array([0, base_t, -depth / 2 + screen_t / 2])
    parts = [panel(width, base_t, depth, (0, base_t / 2, 0), 'keyboard'),
             Part(Box(width * rng.uniform(0.97, 1.0), screen_h, screen_t), 'screen', hinge + rot @ [0, screen_h / 2, 0],
                  rot)]
    if rng.random() < 0.5:   # raised keys block and touchpad
        parts += [panel(width * 0.85, 0.008, depth * 0.4, (0, base_t + 0.004, -depth * 0.15), 'keyboard'),
                  panel(width * 0.25, 0.004, depth * 0.2, (0, base_t + 0.002, depth * 0.28), 'keyboard')]
    return parts


def lamp(rng):
    kind = rng.choice(['desk', 'floor', 'arm'], p=[0.4, 0.3, 0.3])
    base_h = rng.uniform(0.02, 0.07)
    base_r = rng.uniform(0.1, 0.3)
    base = cylinder(base_r, base_h) if rng.random() < 0.7 else Box(2 * base_r, base_h, 1.4 * base_r)
    pole_h = rng.uniform(0.3, 0.6) if kind == 'desk' else rng.uniform(1.0, 1.6)
    pole_r = rng.uniform(0.01, 0.03)
    parts = [Part(base, 'base', (0, base_h / 2, 0))]
    if kind == 'desk' and rng.random() < 0.4:   # a vase-like body instead of a pole
        body = Frustum(rng.uniform(0.06, 0.15), rng.uniform(0.03, 0.12), pole_h * 0.7)
        parts += [Part(body, 'tube', (0, base_h + pole_h * 0.35, 0)),
                  Part(cylinder(pole_r, pole_h * 0.3), 'tube', (0, base_h + pole_h * 0.85, 0))]
    else:
        parts.append(Part(cylinder(pole_r, pole_h), 'tube', (0, base_h + pole_h / 2, 0)))
    top = np.array([0, base_h + pole_h, 0])
    shade_rot = np.eye(3)
    if kind == 'arm':
        for _ in range(int(rng.integers(1, 3))):
            arm_rot, arm_len = rotation('z', rng.uniform(20, 80)), rng.uniform(0.3, 0.6)
            parts.append(Part(cylinder(pole_r, arm_len), 'tube', top + arm_rot @ [0, arm_len / 2, 0], arm_rot))
            top = top + arm_rot @ [0, arm_len, 0]
        shade_rot = rotation('z', -rng.uniform(20, 120))
        parts.append(Part(SphereZone(pole_r * 2), 'canopy', top))
    shade_h = rng.uniform(0.12, 0.35)
    if rng.random() < 0.7:
        shade = Frustum(rng.uniform(0.12, 0.35), rng.uniform(0.05, 0.2), shade_h, bottom=False, top=False)
    else:
        r = rng.uniform(0.1, 0.2)
        shade, shade_h = SphereZone(r, -r, r * rng.uniform(0.0, 0.6)), 0.0
    parts += [Part(shade, 'shade', top + shade_rot @ [0, -0.2 * shade_h, 0], shade_rot),
              Part(SphereZone(rng.uniform(0.03, 0.06)), 'canopy', top + shade_rot @ [0, -0.3 * shade_h, 0])]
    return parts

