// Gathering points/features by index (used for both gather_points and group_points), and the
// scatter-add of its backward. Channel-last: one thread per output element, coalesced over C.
#include "pointnet2_ops.h"

#include "../../src/common.cuh"

namespace maskclu {
namespace {

template <typename T>
__global__ void gather_kernel(const T* __restrict__ points, const int64_t* __restrict__ idx,
                              int64_t N, int64_t K, int64_t C, int64_t total,
                              T* __restrict__ out) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t bk = i / C;
    const int64_t j = idx[bk];
    out[i] = index_ok(j, N) ? points[((bk / K) * N + j) * C + (i - bk * C)] : T(0);
  }
}

template <typename T>
__global__ void gather_backward_kernel(const T* __restrict__ grad_out,
                                       const int64_t* __restrict__ idx, int64_t N, int64_t K,
                                       int64_t C, int64_t total, T* __restrict__ grad_points) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t bk = i / C;
    const int64_t j = idx[bk];
    if (index_ok(j, N)) atomicAdd(grad_points + ((bk / K) * N + j) * C + (i - bk * C), grad_out[i]);
  }
}

}  // namespace

template <typename T>
cudaError_t gather_launch(const T* points, const int64_t* idx, int64_t B, int64_t N, int64_t K,
                          int64_t C, T* out, cudaStream_t stream) {
  const int64_t total = B * K * C;
  if (total == 0) return cudaSuccess;
  gather_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(points, idx, N, K, C, total, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t gather_backward_launch(const T* grad_out, const int64_t* idx, int64_t B, int64_t N,
                                   int64_t K, int64_t C, T* grad_points, cudaStream_t stream) {
  const int64_t total = B * K * C;
  if (total == 0) return cudaSuccess;
  gather_backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(grad_out, idx, N, K, C,
                                                                      total, grad_points);
  return cudaGetLastError();
}

#define MASKCLU_INSTANTIATE(T)                                                                   \
  template cudaError_t gather_launch<T>(const T*, const int64_t*, int64_t, int64_t, int64_t,     \
                                        int64_t, T*, cudaStream_t);                              \
  template cudaError_t gather_backward_launch<T>(const T*, const int64_t*, int64_t, int64_t,     \
                                                 int64_t, int64_t, T*, cudaStream_t);
MASKCLU_INSTANTIATE(float)
MASKCLU_INSTANTIATE(double)
#undef MASKCLU_INSTANTIATE

}  // namespace maskclu
