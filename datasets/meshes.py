"""Point clouds and meshes from common 3-D files, for the tools that read a researcher's own shapes.

Clouds: ``.npy`` (n, >= 3), ``.txt`` / ``.xyz`` / ``.pts`` (rows, comma- or whitespace-separated;
the first three columns are xyz, e.g. ModelNet's ``x,y,z,nx,ny,nz``), and ``.ply`` / ``.obj``
files without faces. Meshes: ``.obj``, ``.off``, ``.ply``, ``.stl`` read with trimesh and
sampled on the surface: area-weighted, seeded, with the face normals. Every problem raises
``DatasetError`` naming the file. trimesh is imported on first use.
"""
import os
import zlib

import numpy as np

from datasets.files import DatasetError, check_finite, read_npy, read_text_array, require_file
from datasets.points import fps_indices, pc_normalize

CLOUD_EXTS = ('.npy', '.txt', '.xyz', '.pts')
MESH_EXTS = ('.obj', '.off', '.ply', '.stl')
SHAPE_EXTS = CLOUD_EXTS + MESH_EXTS


def list_shapes(folder, exts=SHAPE_EXTS):
    """Relative paths of the files under ``folder`` (recursive, sorted, hidden ones skipped)
    whose extension is in ``exts`` (every file when ``exts`` is None)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        found += [os.path.relpath(os.path.join(root, f), folder) for f in files
                  if not f.startswith('.') and (exts is None or os.path.splitext(f)[1].lower() in exts)]
    return sorted(found)


def shape_rng(seed, name):
    """A numpy Generator for one shape that depends only on ``seed`` and its (relative) ``name``,
    so a shape samples the same points whatever the order or the process it is read in."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def load_geometry(path):
    """A ``trimesh.Trimesh`` (meshes with faces) or an (n, 3) float32 array (faceless files).

    Scenes (several meshes in one file) are merged into one mesh.
    """
    import trimesh
    require_file(path, f"a mesh or point cloud ({', '.join(SHAPE_EXTS)})")
    try:
        geometry = trimesh.load(path)
        if isinstance(geometry, trimesh.Scene):
            parts = [g for g in geometry.dump() if isinstance(g, (trimesh.Trimesh, trimesh.PointCloud))]
            meshes = [g for g in parts if isinstance(g, trimesh.Trimesh)]
            geometry = trimesh.util.concatenate(meshes) if meshes else parts[0] if parts else None
    except Exception as e:  # trimesh raises many kinds on a bad file
        raise DatasetError(f"{path}: cannot read the file as a mesh ({type(e).__name__}: {e})") from None
    if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
        return geometry
    vertices = np.asarray(getattr(geometry, 'vertices', np.zeros((0, 3))), dtype=np.float32)
    if not len(vertices):
        raise DatasetError(f"{path}: the file holds no faces and no vertices (empty mesh)")
    return vertices


def sample_surface(mesh, n, rng, path='mesh'):
    """``n`` points on ``mesh``'s surface, uniform over the area, drawn from ``rng`` (a numpy
    Generator) -> points (n, 3), normals (n, 3) float32 (the unit normals of the faces hit)."""
    import trimesh
    if not len(mesh.faces):
        raise DatasetError(f"{path}: the mesh has no faces (a point cloud?), so no surface to sample")
    check_finite(mesh.vertices, path, 'vertices')
    if not mesh.area > 0:
        raise DatasetError(f"{path}: the mesh has zero surface area ({len(mesh.faces)} degenerate faces)")
    points, faces = trimesh.sample.sample_surface(mesh, n, seed=rng)
    return points.astype(np.float32), mesh.face_normals[faces].astype(np.float32)


def read_cloud(path):
    """xyz (n, 3) float32 of a point-cloud file (``CLOUD_EXTS``)."""
    if path.lower().endswith('.npy'):
        array = read_npy(path)
    else:
        array = read_text_array(path, delimiter=',' if ',' in first_line(path) else None,
                                what='rows of x y z (more columns allowed)')
    if array.ndim != 2 or array.shape[1] < 3:
        raise DatasetError(f"{path}: a point cloud has shape {tuple(array.shape)}, expected (n, 3) or more columns")
    check_finite(array[:, :3], path)
    return np.ascontiguousarray(array[:, :3], dtype=np.float32)


def first_line(path):
    """The first line that is neither empty nor a comment ('' when there is none)."""
    with open(path, errors='replace') as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith('#'):
                return line
    return ''


def read_points(path, surface_points=8192, rng=None):
    """xyz (n, 3) float32 of any supported file: a cloud's own points, or ``surface_points``
    sampled on a mesh's surface with ``rng`` (default: ``shape_rng(0, basename)``)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in SHAPE_EXTS:
        raise DatasetError(f"{path}: unsupported file type {ext!r}; accepted: {', '.join(SHAPE_EXTS)}")
    if ext in CLOUD_EXTS:
        return read_cloud(path)
    geometry = load_geometry(path)
    if isinstance(geometry, np.ndarray):
        check_finite(geometry, path)
        return geometry
    rng = shape_rng(0, os.path.basename(path)) if rng is None else rng
    return sample_surface(geometry, surface_points, rng, path)[0]


def model_input(path, npoints, surface_points=8192, rng=None):
    """The cloud a model reads, from any supported file: ``read_points`` (meshes sampled with
    at least ``npoints`` points), ``pc_normalize``, then farthest point sampling to ``npoints``
    -> (npoints, 3) float32. A cloud with fewer points is a DatasetError naming the file."""
    points = read_points(path, max(surface_points, npoints), rng)
    if len(points) < npoints:
        raise DatasetError(f"{path}: {len(points)} points, fewer than the {npoints} requested (--npoints)")
    return pc_normalize(points[fps_indices(points, npoints)], path)
