// Chamfer distance, one direction at a time: brute-force nearest neighbour with the target
// cloud staged through shared memory in tiles, and the matching backward.
#include "chamfer.h"

#include <algorithm>

#include "../../src/common.cuh"

namespace maskclu {
namespace {

constexpr int kTile = 512;

// Block = up to kThreads points of one cloud of x; blocks_per_cloud blocks per batch item.
template <typename T>
__global__ void nearest_kernel(const T* __restrict__ x, const T* __restrict__ y, int64_t n,
                               int64_t m, int64_t blocks_per_cloud, T* __restrict__ dist,
                               int64_t* __restrict__ idx) {
  __shared__ T tile[kTile * 3];
  const int64_t b = blockIdx.x / blocks_per_cloud;
  const int64_t i = (blockIdx.x % blocks_per_cloud) * blockDim.x + threadIdx.x;
  const bool active = i < n;
  const T* p = x + (b * n + (active ? i : 0)) * 3;
  const T px = p[0], py = p[1], pz = p[2];
  const T* cloud = y + b * m * 3;
  T best = infinity<T>();
  int64_t best_j = 0;
  for (int64_t first = 0; first < m; first += kTile) {
    const int count = static_cast<int>(m - first < kTile ? m - first : kTile);
    for (int t = threadIdx.x; t < count * 3; t += blockDim.x) tile[t] = cloud[first * 3 + t];
    __syncthreads();
    for (int j = 0; j < count; ++j) {
      const T d = sqdist3(px, py, pz, tile + j * 3);
      if (d < best) {
        best = d;
        best_j = first + j;
      }
    }
    __syncthreads();
  }
  if (active) {
    dist[b * n + i] = best;
    idx[b * n + i] = best_j;
  }
}

template <typename T>
__global__ void nearest_backward_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                        const int64_t* __restrict__ idx,
                                        const T* __restrict__ grad_dist, int64_t n, int64_t m,
                                        int64_t total, T* __restrict__ grad_x,
                                        T* __restrict__ grad_y) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t j = idx[i];
    if (!index_ok(j, m)) continue;
    const T* q = y + ((i / n) * m + j) * 3;
    T* gq = grad_y + ((i / n) * m + j) * 3;
    const T scale = 2 * grad_dist[i];
    for (int c = 0; c < 3; ++c) {
      const T g = scale * (x[i * 3 + c] - q[c]);
      grad_x[i * 3 + c] += g;
      atomicAdd(gq + c, -g);
    }
  }
}

}  // namespace

template <typename T>
cudaError_t nearest_launch(const T* x, const T* y, int64_t B, int64_t n, int64_t m, T* dist,
                           int64_t* idx, cudaStream_t stream) {
  if (m < 1) return cudaErrorInvalidValue;
  if (B * n == 0) return cudaSuccess;
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (n + 31) / 32 * 32));
  const int64_t blocks_per_cloud = (n + threads - 1) / threads;
  nearest_kernel<T><<<static_cast<unsigned int>(B * blocks_per_cloud), threads, 0, stream>>>(
      x, y, n, m, blocks_per_cloud, dist, idx);
  return cudaGetLastError();
}

template <typename T>
cudaError_t nearest_backward_launch(const T* x, const T* y, const int64_t* idx,
                                    const T* grad_dist, int64_t B, int64_t n, int64_t m,
                                    T* grad_x, T* grad_y, cudaStream_t stream) {
  const int64_t total = B * n;
  if (total == 0) return cudaSuccess;
  nearest_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(x, y, idx, grad_dist, n, m,
                                                                       total, grad_x, grad_y);
  return cudaGetLastError();
}

#define MASKCLU_INSTANTIATE(T)                                                                 \
  template cudaError_t nearest_launch<T>(const T*, const T*, int64_t, int64_t, int64_t, T*,    \
                                         int64_t*, cudaStream_t);                              \
  template cudaError_t nearest_backward_launch<T>(const T*, const T*, const int64_t*, const T*, \
                                                  int64_t, int64_t, int64_t, T*, T*,           \
                                                  cudaStream_t);
MASKCLU_INSTANTIATE(float)
MASKCLU_INSTANTIATE(double)
#undef MASKCLU_INSTANTIATE

}  // namespace maskclu
