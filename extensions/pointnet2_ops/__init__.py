"""PointNet++ ops: PyTorch reference (reference.py), CUDA kernels (src/, kernels.py)."""
