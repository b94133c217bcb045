"""Squared distances for the references, summed in one fixed order, with bounded memory.

Every squared distance in the references (and the CUDA kernels) is ``(dx*dx + dy*dy) + dz*dz``
with each operation rounded on its own, so reference and kernel agree bit for bit.
"""
# Largest pairwise-distance block a reference materialises at once (elements; 64 MiB float32).
MAX_BLOCK_ELEMENTS = 1 << 24


def coords_first(points):
    """points (B,N,3) -> contiguous coordinate planes (3,B,N), for square_distance."""
    return points.permute(2, 0, 1).contiguous()


def square_distance(a, b):
    """Squared distances of coordinate-first points: a, b (3,...) broadcastable -> (...).

    Differentiable (in-place ops only on fresh temporaries).
    """
    out = (a[0] - b[0]).square_()
    out += (a[1] - b[1]).square_()
    out += (a[2] - b[2]).square_()
    return out


def row_chunks(rows, elements_per_row, chunk=None):
    """Slices over `rows` of at most `chunk` rows each (default: as many as keep a block of
    rows * elements_per_row under MAX_BLOCK_ELEMENTS, at least one)."""
    if chunk is None:
        chunk = max(1, MAX_BLOCK_ELEMENTS // max(1, elements_per_row))
    return [slice(start, min(start + chunk, rows)) for start in range(0, rows, chunk)]
