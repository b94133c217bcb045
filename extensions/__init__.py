"""Point-cloud ops: one Python entry per op (temporary: references only, dispatch to come)."""
from extensions.pointnet2_ops.reference import furthest_point_sample, gather_points, knn_points  # noqa: F401
from extensions.chamfer_dist.reference import chamfer_distance  # noqa: F401
