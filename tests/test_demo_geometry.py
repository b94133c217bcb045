"""The demo generator's geometry: exact primitives, exact stretched sampling, the sensor model,
the scans, and the categories (every builder, part names, layout membership)."""
import math

import numpy as np
import pytest

from datasets.demo.categories import CATEGORIES, MODELNET, PARTSEG, SCAN, SCAN_CLASSES, SHAPENET
from datasets.demo.primitives import Box, Ellipsoid, Frustum, Part, SphereZone, TorusArc
from datasets.demo.sampling import instance_rng, sample_object, sample_stretched
from datasets.demo.scans import SCAN_POINTS, scan_variants
from datasets.demo.sensor import first_surface, weighted_subset
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES, PART_COUNTS


def spheroid_area(a, c):
    """Closed form of the area of the spheroid with equatorial radius a and polar semi-axis c."""
    if c < a:
        e = math.sqrt(1 - c ** 2 / a ** 2)
        return 2 * math.pi * a ** 2 * (1 + (1 - e ** 2) / e * math.atanh(e))
    e = math.sqrt(1 - a ** 2 / c ** 2)
    return 2 * math.pi * a ** 2 * (1 + c / (a * e) * math.asin(e))


@pytest.mark.parametrize('shape, area', [
    (Box(1, 2, 3), 22.0),
    (Frustum(1.0, 0.5, 2.0), math.pi * 1.5 * math.hypot(2, 0.5) + math.pi * 1.25),
    (SphereZone(2.0, -1.0, 2.0), 2 * math.pi * 2 * 3),
    (TorusArc(1.0, 0.2, 180), math.pi * 1.0 * 2 * math.pi * 0.2),
    (Ellipsoid(2.0, 0.3, 2.0), spheroid_area(2.0, 0.3)),      # oblate (polar axis y)
    (Ellipsoid(0.5, 3.0, 0.5), spheroid_area(0.5, 3.0)),      # prolate
    (Ellipsoid(1.5, 0.7, 1.5, 0.0), spheroid_area(1.5, 0.7) / 2),
    (Ellipsoid(1.0, 1.0, 1.0, -0.5, 0.25), 2 * math.pi * 0.75),
])
def test_primitive_areas_and_unit_normals(shape, area):
    points, normals = shape.sample(2000, np.random.default_rng(0))
    assert shape.area() == pytest.approx(area, rel=1e-9) and points.shape == normals.shape == (2000, 3)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)


@pytest.mark.parametrize('make, message', [(lambda: Box(1, -0.1, 1), 'Box: negative size'),
                                           (lambda: Frustum(0.5, -0.2, 1), 'Frustum: negative size'),
                                           (lambda: Ellipsoid(1, 1, 1, 0.5, 0.2), 'Ellipsoid: negative size')])
def test_a_negative_size_stops_the_builder_at_once(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_ellipsoid_points_lie_on_it_with_outward_normals_and_area_uniform():
    shape = Ellipsoid(2.0, 0.5, 1.0)
    points, normals = shape.sample(40000, np.random.default_rng(0))
    axes = np.array([2.0, 0.5, 1.0])
    assert np.allclose(((points / axes) ** 2).sum(axis=1), 1)
    gradient = points / axes ** 2
    assert np.allclose(normals, gradient / np.linalg.norm(gradient, axis=1, keepdims=True))
    cap = Ellipsoid(2.0, 0.5, 1.0, 0.25)   # the share of the points above y = 0.25 is the cap's share of the area
    assert np.mean(points[:, 1] > 0.25) == pytest.approx(cap.area() / shape.area(), abs=0.01)


def test_cone_side_is_sampled_uniformly_by_area():
    cone = Frustum(1.0, 0.0, 1.0, bottom=False, top=False)
    points, normals = cone.sample(40000, np.random.default_rng(0))
    lower_half_share = 1 - 0.25   # the upper half (radius <= 1/2) holds a quarter of the area
    assert np.mean(points[:, 1] < 0) == pytest.approx(lower_half_share, abs=0.01)
    radial = points[:, [0, 2]] / np.linalg.norm(points[:, [0, 2]], axis=1, keepdims=True)
    assert np.allclose((normals[:, [0, 2]] * radial).sum(1), 1 / math.sqrt(2), atol=1e-6)


def test_torus_tube_angle_follows_the_area_density():
    points, normals = TorusArc(1.0, 0.5).sample(40000, np.random.default_rng(0))
    outer = np.linalg.norm(points[:, :2], axis=1) > 1.0
    assert outer.mean() == pytest.approx(0.5 + 0.5 / math.pi, abs=0.01)


def test_stretched_sampling_stays_uniform_by_area():
    stretch = np.array([1.5, 0.7, 1.1])
    points, normals, _, area = sample_stretched([Part(Box(1, 1, 1), 'box')], 100000, stretch, np.random.default_rng(0))
    faces = np.array([stretch[1] * stretch[2], stretch[0] * stretch[2], stretch[0] * stretch[1]])
    assert area == pytest.approx(2 * faces.sum(), rel=1e-3)
    assert np.bincount(np.abs(normals).argmax(axis=1)) / len(normals) == pytest.approx(faces / faces.sum(), abs=0.01)
    assert np.abs(points).max(axis=0) == pytest.approx(stretch / 2)
    _, _, _, sphere = sample_stretched([Part(SphereZone(1.0), 'ball')], 100000, stretch, np.random.default_rng(1))
    assert sphere == pytest.approx(Ellipsoid(*stretch).area(), rel=1e-3)


def test_weighted_subset_follows_the_weights_without_repeats():
    rng = np.random.default_rng(0)
    log_w = np.log(np.r_[np.full(5000, 1.0), np.full(5000, 4.0)])
    picks = weighted_subset(log_w, 200, rng)
    assert len(set(picks.tolist())) == 200 and np.mean(picks >= 5000) == pytest.approx(0.8, abs=0.06)
    assert sorted(weighted_subset(log_w[:10], 50, rng).tolist()) == list(range(10))


def test_first_surface_keeps_the_nearer_of_two_walls():
    rng = np.random.default_rng(0)
    wall = rng.uniform(-1, 1, (4000, 3)) * [1, 1, 0]
    points = np.concatenate([wall + [0, 0, 0.5], wall - [0, 0, 0.5]])
    seen = first_surface(points, np.array([0.0, 0.0, 1.0]), pixel=0.05, tolerance=0.03)
    assert seen[:4000].all() and not seen[4000:].any()
    seen_from_behind = first_surface(points, np.array([0.0, 0.0, -1.0]), pixel=0.05, tolerance=0.03)
    assert not seen_from_behind[:4000].any() and seen_from_behind[4000:].all()


@pytest.mark.parametrize('category', CATEGORIES, ids=[c.name for c in CATEGORIES])
def test_every_category_builds_varied_instances_with_its_part_names(category):
    index = CATEGORIES.index(category)
    clouds = []
    for i in range(6):
        points, normals, labels = sample_object(category, instance_rng(0, 9, index, i), 1024)
        assert points.shape == normals.shape == (1024, 3) and points.dtype == np.float32
        assert np.sqrt((points ** 2).sum(axis=1)).max() == pytest.approx(1, abs=1e-5)
        assert 0 <= labels.min() and labels.max() < len(category.parts)
        clouds.append(points)
    extents = np.array([c.max(axis=0) - c.min(axis=0) for c in clouds])
    assert extents.std(axis=0).max() > 0.02   # proportions vary from instance to instance


def test_layouts_hold_the_real_category_sets():
    assert [c.partseg for c in PARTSEG] == list(PART_CATEGORIES)
    assert all(len(c.parts) == PART_COUNTS[PART_CATEGORIES.index(c.partseg)] for c in PARTSEG)
    assert tuple(c.scan for c in SCAN) == SCAN_CLASSES
    assert len(MODELNET) >= 10 and len({c.modelnet for c in MODELNET}) == len(MODELNET)   # 10-way few-shot
    assert all(len(c.synset) == 8 and c.synset.isdigit() for c in SHAPENET)
    assert {c.name for c in SCAN} - {c.name for c in SHAPENET} == {'box', 'door', 'sink', 'toilet'}


def test_parts_are_shared_across_categories():
    users = {}
    for category in CATEGORIES:
        for name in category.parts:
            users.setdefault(name, set()).add(category.name)
    assert len(users['leg']) >= 7 and len(users['handle']) >= 6 and len(users['wheel']) >= 3


def test_scan_variants_are_partial_clouds_with_background():
    chair = CATEGORIES[[c.name for c in CATEGORIES].index('chair')]
    variants = scan_variants(chair, CATEGORIES, instance_rng(0, 4, 13, 0))
    assert set(variants) == {'obj_only', 'obj_bg', 'hardest'}
    for points, mask in variants.values():
        assert points.shape == (SCAN_POINTS, 3) and points.dtype == np.float32 and mask.shape == (SCAN_POINTS,)
        assert np.sqrt((points ** 2).sum(axis=1)).max() <= 1 + 1e-5
    assert variants['obj_only'][1].all() and not variants['obj_bg'][1].all()
