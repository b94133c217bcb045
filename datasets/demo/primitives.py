"""Surface primitives with exact areas and exact uniform surface sampling with normals.

Each primitive lives in its own frame (axis along y) and samples ``n`` points uniformly
by area: ``sample(n, rng) -> (points (n,3), normals (n,3))``, normals of unit length
pointing out (in, for ``inward`` surfaces such as the inside of a mug). ``Part`` places a
primitive with a rotation and a translation and carries its part name.
"""
import math
from dataclasses import dataclass, field

import numpy as np


def rotation(axis, degrees):
    """3x3 rotation matrix about 'x', 'y' or 'z'."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    i, j = {'x': (1, 2), 'y': (2, 0), 'z': (0, 1)}[axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _ring(theta, radius, y):
    """Points (n,3) on circles of ``radius`` at heights ``y`` (arrays or scalars) about the y axis."""
    theta = np.asarray(theta)
    return np.stack([radius * np.cos(theta), np.broadcast_to(y, theta.shape), radius * np.sin(theta)], axis=1)


def check_sizes(shape, **sizes):
    """Sizes of a primitive must be >= 0: a builder's mistake stops here, not as a NaN later."""
    bad = {k: v for k, v in sizes.items() if not v >= 0}
    if bad:
        raise ValueError(f"{type(shape).__name__}: negative size {bad}")


@dataclass
class Box:
    """Axis-aligned box centred at the origin with full side lengths (sx, sy, sz)."""
    sx: float
    sy: float
    sz: float

    def __post_init__(self):
        check_sizes(self, sx=self.sx, sy=self.sy, sz=self.sz)

    def area(self):
        return 2 * (self.sx * self.sy + self.sy * self.sz + self.sx * self.sz)

    def sample(self, n, rng):
        size = np.array([self.sx, self.sy, self.sz])
        face_areas = np.array([self.sy * self.sz, self.sx * self.sz, self.sx * self.sy]).repeat(2)
        face = np.repeat(np.arange(6), rng.multinomial(n, face_areas / face_areas.sum()))
        axis, sign = face // 2, np.where(face % 2, 1.0, -1.0)
        points = (rng.random((n, 3)) - 0.5) * size
        rows = np.arange(n)
        points[rows, axis] = sign * size[axis] / 2
        normals = np.zeros((n, 3))
        normals[rows, axis] = sign
        return points, normals


@dataclass
class Frustum:
    """Truncated cone along y from radius r0 at y=-h/2 to r1 at y=+h/2 (r0 == r1: a cylinder;
    a radius 0: a cone), with optional bottom / top discs."""
    r0: float
    r1: float
    h: float
    bottom: bool = True
    top: bool = True
    inward: bool = False

    def __post_init__(self):
        check_sizes(self, r0=self.r0, r1=self.r1, h=self.h)

    def _areas(self):
        side = math.pi * (self.r0 + self.r1) * math.hypot(self.h, self.r0 - self.r1)
        return np.array([side, math.pi * self.r0 ** 2 * self.bottom, math.pi * self.r1 ** 2 * self.top])

    def area(self):
        return float(self._areas().sum())

    def sample(self, n, rng):
        areas = self._areas()
        counts = rng.multinomial(n, areas / areas.sum())
        side = self._side(counts[0], rng)
        discs = [self._disc(c, r, y, s, rng) for c, r, y, s in
                 ((counts[1], self.r0, -self.h / 2, -1.0), (counts[2], self.r1, self.h / 2, 1.0))]
        points, normals = (np.concatenate(x) for x in zip(side, *discs))
        return points, (-normals if self.inward else normals)

    def _side(self, n, rng):
        # the density along the height is proportional to the radius: invert its CDF
        u, dr = rng.random(n), self.r1 - self.r0
        t = u if abs(dr) < 1e-12 else (np.sqrt(self.r0 ** 2 + u * dr * (self.r0 + self.r1)) - self.r0) / dr
        theta = rng.random(n) * 2 * math.pi
        points = _ring(theta, self.r0 + dr * t, (t - 0.5) * self.h)
        normals = _ring(theta, self.h, -dr)
        return points, normals / np.linalg.norm(normals, axis=1, keepdims=True)

    @staticmethod
    def _disc(n, radius, y, sign, rng):
        points = _ring(rng.random(n) * 2 * math.pi, radius * np.sqrt(rng.random(n)), y)
        return points, np.tile([0.0, sign, 0.0], (n, 1))


def cylinder(r, h, **caps):
    return Frustum(r, r, h, **caps)


@dataclass
class SphereZone:
    """The part of a sphere of radius r between heights y0 < y1 (a full sphere: -r, r).
    Archimedes: area is uniform in height, so y is drawn uniformly."""
    r: float
    y0: float = None
    y1: float = None
    inward: bool = False

    def __post_init__(self):
        self.y0 = -self.r if self.y0 is None else self.y0
        self.y1 = self.r if self.y1 is None else self.y1
        check_sizes(self, r=self.r, zone=self.y1 - self.y0)

    def area(self):
        return 2 * math.pi * self.r * (self.y1 - self.y0)

    def sample(self, n, rng):
        y = self.y0 + (self.y1 - self.y0) * rng.random(n)
        points = _ring(rng.random(n) * 2 * math.pi, np.sqrt(np.maximum(self.r ** 2 - y ** 2, 0)), y)
        normals = points / self.r
        return points, (-normals if self.inward else normals)


@dataclass
class Ellipsoid:
    """The zone y0 <= y <= y1 of the ellipsoid with semi-axes (a, b, c) along x, y, z (default:
    all of it). Exact: sphere points drawn uniformly over the matching zone (Archimedes) are
    mapped onto the ellipsoid and kept with probability proportional to the area stretch
    ``abc * |(ux/a, uy/b, uz/c)|``; the area is that stretch integrated over the zone."""
    a: float
    b: float
    c: float
    y0: float = None
    y1: float = None
    inward: bool = False

    def __post_init__(self):
        self.y0 = -self.b if self.y0 is None else self.y0
        self.y1 = self.b if self.y1 is None else self.y1
        self.axes = np.array([self.a, self.b, self.c])
        check_sizes(self, a=self.a, b=self.b, c=self.c, zone=self.y1 - self.y0)

    def _stretch(self, u):
        return np.linalg.norm(u / self.axes, axis=-1)

    def _zone(self, v, theta):
        """Unit-sphere points at heights ``v`` and angles ``theta``."""
        return _ring(theta, np.sqrt(np.maximum(1 - v ** 2, 0)), v)

    def area(self):
        # On the sphere point at height v and azimuth theta the squared stretch is alpha + beta v^2
        # (alpha = cos^2/a^2 + sin^2/c^2, beta = 1/b^2 - alpha), whose square root integrates over
        # v in closed form; the remaining periodic integral over theta uses the midpoint rule,
        # which converges spectrally; the node count grows with the a:c ratio (round-off error).
        nodes = int(64 * max(self.a / self.c, self.c / self.a))
        theta = 2 * math.pi * (np.arange(nodes) + 0.5) / nodes
        alpha = np.cos(theta) ** 2 / self.a ** 2 + np.sin(theta) ** 2 / self.c ** 2
        beta = 1 / self.b ** 2 - alpha

        def antiderivative(v):
            root = np.sqrt(alpha + beta * v ** 2)
            k = np.sqrt(np.abs(beta) / alpha) * v
            tail = np.where(beta > 0, np.arcsinh(k), np.arcsin(np.clip(k, -1, 1)))
            scale = np.divide(alpha, 2 * np.sqrt(np.abs(beta)), out=np.zeros_like(alpha), where=beta != 0)
            return np.where(beta != 0, v * root / 2 + scale * tail, np.sqrt(alpha) * v)

        per_theta = antiderivative(self.y1 / self.b) - antiderivative(self.y0 / self.b)
        return float(self.a * self.b * self.c * per_theta.mean() * 2 * math.pi)

    def sample(self, n, rng):
        v0, v1 = self.y0 / self.b, self.y1 / self.b
        u = np.empty((0, 3))
        while len(u) < n:
            cand = self._zone(v0 + (v1 - v0) * rng.random(2 * n + 16), rng.random(2 * n + 16) * 2 * math.pi)
            keep = rng.random(len(cand)) < self._stretch(cand) * self.axes.min()
            u = np.concatenate([u, cand[keep]])
        u = u[:n]
        normals = u / self.axes
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        return u * self.axes, (-normals if self.inward else normals)


@dataclass
class TorusArc:
    """Tube of radius r around a circle of radius R in the xy plane, for angles in
    [-arc/2, arc/2] degrees from +x (arc=360: a ring). Exact: the tube angle is drawn
    by rejection with density proportional to R + r cos(v)."""
    R: float
    r: float
    arc: float = 360.0

    def __post_init__(self):
        check_sizes(self, R=self.R, r=self.r, arc=self.arc)

    def area(self):
        return math.radians(self.arc) * self.R * 2 * math.pi * self.r

    def sample(self, n, rng):
        v = np.empty(0)
        while len(v) < n:
            cand = rng.random(2 * n + 16) * 2 * math.pi
            keep = rng.random(len(cand)) * (self.R + self.r) < self.R + self.r * np.cos(cand)
            v = np.concatenate([v, cand[keep]])
        v = v[:n]
        u = (rng.random(n) - 0.5) * math.radians(self.arc)
        normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=1)
        centers = np.stack([self.R * np.cos(u), self.R * np.sin(u), np.zeros(n)], axis=1)
        return centers + self.r * normals, normals


@dataclass
class Part:
    """A primitive placed by rotation ``rot`` (3x3) then translation ``at``; ``name`` is its part."""
    shape: object
    name: str
    at: tuple = (0.0, 0.0, 0.0)
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))

    def area(self):
        return self.shape.area()

    def sample(self, n, rng):
        points, normals = self.shape.sample(n, rng)
        return points @ self.rot.T + np.asarray(self.at), normals @ self.rot.T


def sample_parts(parts, n, rng):
    """Sample ``n`` points over ``parts`` by area: points (n,3), normals (n,3), part index (n,)."""
    areas = np.array([p.area() for p in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    samples = [p.sample(c, rng) for p, c in zip(parts, counts)]
    points = np.concatenate([s[0] for s in samples])
    normals = np.concatenate([s[1] for s in samples])
    return points, normals, np.repeat(np.arange(len(parts)), counts)
