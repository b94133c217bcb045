"""Point-cloud ops (FPS, gather/group, kNN, ball query, three-NN interpolation, Chamfer) with
CUDA kernels and PyTorch references; see extensions/ops.py and extensions/README.md.

Importing this package never compiles anything; CPU tensors always use the reference.
"""
from extensions.backend import backend_info
from extensions.ops import (ball_query, chamfer_distance, furthest_point_sample, gather_points,
                            group_points, interpolate_idw, knn_points, three_interpolate,
                            three_nn)

__all__ = ['backend_info', 'ball_query', 'chamfer_distance', 'furthest_point_sample',
           'gather_points', 'group_points', 'interpolate_idw', 'knn_points',
           'three_interpolate', 'three_nn']
