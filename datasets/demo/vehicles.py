"""Vehicles: airplane, rocket, car, motorbike, skateboard.

Wheels are shared by cars, motorbikes and skateboards; wings and fins (tapered slabs) by
airplanes and rockets; elongated bodies by all of them.
"""
import numpy as np

from datasets.demo.parts import X_AXIS, Z_AXIS, cone_tip, moved, panel, renamed, rod, wheel, wing_pair
from datasets.demo.primitives import Box, Ellipsoid, Frustum, Part, cylinder, rotation


def airplane(rng):
    length, r = rng.uniform(1.4, 2.4), rng.uniform(0.06, 0.14)
    body_len, nose_len, tail_len = rng.uniform(0.6, 0.75) * length, rng.uniform(0.08, 0.18) * length, 0.18 * length
    parts = [Part(cylinder(r, body_len, bottom=False, top=False), 'body', rot=X_AXIS),
             Part(Frustum(r, r * rng.uniform(0, 0.3), nose_len, bottom=False), 'body',
                  (body_len / 2 + nose_len / 2, 0, 0), X_AXIS),
             Part(Frustum(r, r * 0.3, tail_len, bottom=False), 'body', (-body_len / 2 - tail_len / 2, 0, 0),
                  rotation('z', 90))]
    span, chord = rng.uniform(0.6, 1.3), rng.uniform(0.18, 0.45)
    sweep, dihedral = rng.uniform(-5, 40), rng.uniform(-3, 8)
    root = np.array([rng.uniform(-0.15, 0.15) * length, rng.uniform(-0.7, 0.7) * r, 0])
    parts += wing_pair(rng, span, chord, rng.uniform(0.02, 0.05), root, sweep, dihedral)
    engines = int(rng.choice([0, 1, 2], p=[0.25, 0.5, 0.25]))
    engine = cylinder(rng.uniform(0.04, 0.08), rng.uniform(0.2, 0.35))
    for f in (0.35, 0.65)[:engines]:
        for side in (-1, 1):
            rot = rotation('y', -side * sweep)
            at = root + rot @ [0, 0, side * f * span / 2] + [0.08, -engine.r0 - 0.03, 0]
            parts.append(Part(engine, 'engine', at, X_AXIS))
    if rng.random() < 0.15:   # a propeller at the nose instead
        parts.append(Part(Box(0.02, rng.uniform(0.3, 0.5), 0.05), 'engine', (body_len / 2 + nose_len, 0, 0)))
    tail_x, fin_h = -body_len / 2 - 0.6 * tail_len, rng.uniform(0.2, 0.45)
    tail_span = span * rng.uniform(0.3, 0.6)
    parts += renamed(wing_pair(rng, tail_span, chord * 0.6, 0.02, np.array([tail_x, r * 0.3, 0]), sweep, 0), 'tail')
    parts.append(Part(Box(chord * 0.7, fin_h, 0.02), 'tail', (tail_x, r + fin_h / 2, 0),
                      rotation('z', rng.uniform(0, 30))))
    return parts


def rocket(rng):
    r, body_h, nose_h = rng.uniform(0.08, 0.2), rng.uniform(1.0, 2.2), rng.uniform(0.2, 0.6)
    parts = [Part(cylinder(r, body_h, bottom=False, top=False), 'body', (0, body_h / 2, 0))]
    if rng.random() < 0.5:
        parts.append(cone_tip(r, nose_h, (0, body_h + nose_h / 2, 0), 'nose'))
    else:
        parts.append(Part(Ellipsoid(r, nose_h, r, 0), 'nose', (0, body_h, 0)))
    if rng.random() < 0.3:   # a wider stage below
        stage_h = rng.uniform(0.2, 0.5) * body_h
        parts.append(Part(cylinder(r * rng.uniform(1.2, 1.6), stage_h, top=False), 'body', (0, -stage_h / 2, 0)))
        base = -stage_h
    else:
        base = 0.0
    nozzle_h = rng.uniform(0.06, 0.2)
    parts.append(Part(Frustum(r * rng.uniform(0.5, 0.9), r * rng.uniform(0.3, 0.6), nozzle_h), 'body',
                      (0, base - nozzle_h / 2, 0)))
    count, fin_len = int(rng.choice([3, 4, 6])), rng.uniform(0.1, 0.35)
    fin_h, lift = rng.uniform(0.15, 0.5), rng.uniform(0, 0.1)
    spin, sweep = rng.uniform(0, 360), rng.uniform(0, 30)
    for k in range(count):
        rot = rotation('y', spin + 360 * k / count)
        lean = rotation('z', sweep)
        parts.append(Part(Box(fin_len, fin_h, 0.02), 'fin', rot @ [r + fin_len / 2, base + lift + fin_h / 2, 0],
                          rot @ lean))
    return parts


def car(rng):
    length, width = rng.uniform(1.6, 2.8), rng.uniform(0.75, 1.05)
    wheel_r, wheel_w = rng.uniform(0.13, 0.24), rng.uniform(0.07, 0.14)
    body_h = rng.uniform(0.22, 0.45)
    body_top = 0.9 * wheel_r + body_h
    kind = rng.choice(['sedan', 'hatch', 'suv', 'pickup'], p=[0.35, 0.2, 0.25, 0.2])
    cabin_l = length * {'sedan': rng.uniform(0.4, 0.5), 'hatch': rng.uniform(0.45, 0.55),
                        'suv': rng.uniform(0.6, 0.7), 'pickup': rng.uniform(0.3, 0.38)}[kind]
    cabin_h = rng.uniform(0.2, 0.4) * (1.25 if kind == 'suv' else 1.0)
    cabin_x = {'sedan': 0.0, 'hatch': -0.12, 'suv': -0.1, 'pickup': 0.12}[kind] * length
    hood_l = length * rng.uniform(0.18, 0.3)
    parts = [panel(length, body_h, width, (0, body_top - body_h / 2, 0), 'body'),
             Part(Box(cabin_l, cabin_h, width * rng.uniform(0.8, 0.95)), 'roof', (cabin_x, body_top + cabin_h / 2, 0)),
             Part(Box(hood_l, 0.03, width * 0.9), 'hood', (length / 2 - hood_l / 2, body_top + 0.015, 0),
                  rotation('z', -rng.uniform(0, 8)))]
    if kind == 'pickup':   # the open bed behind the cabin
        bed_l = length * 0.35
        parts += [panel(bed_l, 0.15, 0.03, (-length / 2 + bed_l / 2, body_top + 0.075, s * width * 0.47), 'body')
                  for s in (-1, 1)]
    if rng.random() < 0.3:   # a spoiler or roof rack
        parts.append(panel(width * 0.15, 0.02, width * 0.9, (-length / 2 + 0.05, body_top + 0.08, 0), 'body'))
    axle = length * rng.uniform(0.28, 0.38)
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts += wheel(rng, wheel_r, wheel_w, (sx * axle, wheel_r, sz * (width / 2 - wheel_w / 2 + 0.02)))
    return parts


def motorbike(rng):
    wheel_r, wheelbase = rng.uniform(0.28, 0.38), rng.uniform(1.2, 1.6)
    tyre_w = rng.uniform(0.08, 0.16)
    front, rear = np.array([wheelbase / 2, wheel_r, 0]), np.array([-wheelbase / 2, wheel_r, 0])
    parts = wheel(rng, wheel_r, tyre_w, front, tyre=True) + wheel(rng, wheel_r, tyre_w, rear, tyre=True)
    frame_y = wheel_r + rng.uniform(0.15, 0.3)
    r = rng.uniform(0.02, 0.04)
    head = front + [-rng.uniform(0.15, 0.3), rng.uniform(0.45, 0.65), 0]
    parts += [rod(rear, (0, frame_y, 0), r, 'frame'), rod((0, frame_y, 0), head, r, 'frame'),
              rod((0, wheel_r * 0.8, 0), (0, frame_y, 0), r, 'frame'), rod(rear, (0, wheel_r * 0.8, 0), r, 'frame')]
    for s in (-1, 1):   # the fork
        parts.append(rod(front + [0, 0, s * tyre_w * 0.7], head + [0, 0, s * tyre_w * 0.7], r * 0.8, 'frame'))
    if rng.random() < 0.6:   # an engine block
        parts.append(panel(rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.3), rng.uniform(0.2, 0.3), (0, wheel_r * 0.95, 0),
                           'frame'))
    tank = Ellipsoid(rng.uniform(0.15, 0.25), rng.uniform(0.07, 0.12), rng.uniform(0.1, 0.16))
    parts.append(Part(tank, 'gas_tank', (0.1, frame_y + tank.b * 0.8, 0), rotation('z', -8)))
    seat_l = rng.uniform(0.3, 0.55)
    parts.append(panel(seat_l, rng.uniform(0.05, 0.1), rng.uniform(0.18, 0.26), (-seat_l / 2, frame_y + 0.05, 0),
                       'seat'))
    bar = rng.uniform(0.5, 0.8)
    parts += [rod(head + [0, 0.05, -bar / 2], head + [0, 0.05, bar / 2], 0.015, 'handle')]
    parts += [Part(cylinder(0.02, 0.1), 'handle', head + [0, 0.05, s * (bar / 2 + 0.05)], Z_AXIS) for s in (-1, 1)]
    parts.append(Part(cylinder(rng.uniform(0.06, 0.1), 0.08), 'light', head + [0.1, -0.05, 0], X_AXIS))
    if rng.random() < 0.4:   # a fairing in front of the handlebar
        parts.append(Part(Ellipsoid(0.06, rng.uniform(0.15, 0.25), 0.22, 0), 'light', head + [0.12, -0.05, 0],
                          rotation('z', 20)))
    return parts


def skateboard(rng):
    length, width, t = rng.uniform(0.7, 1.0), rng.uniform(0.19, 0.26), rng.uniform(0.012, 0.025)
    core = length * rng.uniform(0.7, 0.85)
    parts = [panel(core, t, width, (0, 0, 0), 'deck')]
    kick = rng.uniform(5, 25)
    tail_l = (length - core) / 2
    for s in (-1, 1):   # kicked-up nose and tail with round ends
        rot = rotation('z', s * kick)
        end = np.array([s * core / 2, 0, 0])
        parts += [Part(Box(tail_l, t, width), 'deck', end + rot @ [s * tail_l / 2, 0, 0], rot),
                  Part(cylinder(width / 2, t), 'deck', end + rot @ [s * tail_l, 0, 0], rot)]
    truck_h, wheel_r = rng.uniform(0.03, 0.05), rng.uniform(0.025, 0.04)
    for s in (-1, 1):
        x = s * core * rng.uniform(0.32, 0.42)
        parts += [panel(0.05, truck_h, width * 0.4, (x, -t / 2 - truck_h / 2, 0), 'truck'),
                  rod((x, -t / 2 - truck_h, -width * 0.45), (x, -t / 2 - truck_h, width * 0.45), 0.008, 'truck')]
        parts += [Part(cylinder(wheel_r, rng.uniform(0.03, 0.05)), 'wheel', (x, -t / 2 - truck_h, z * width * 0.45),
                       Z_AXIS) for z in (-1, 1)]
    return moved(parts, (0, t / 2 + truck_h + wheel_r, 0))

