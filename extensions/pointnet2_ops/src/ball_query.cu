// Ball query (PointNet++ semantics): one thread per center scans the points in index order.
#include "pointnet2_ops.h"

#include "../../src/common.cuh"

namespace maskclu {
namespace {

template <typename T>
__global__ void ball_query_kernel(const T* __restrict__ centers, const T* __restrict__ xyz,
                                  int64_t G, int64_t N, T radius2, int64_t nsample,
                                  int64_t total, int64_t* __restrict__ idx) {
  for (int64_t q = grid_start(); q < total; q += grid_stride()) {
    const T* pts = xyz + (q / G) * N * 3;
    const T cx = centers[q * 3], cy = centers[q * 3 + 1], cz = centers[q * 3 + 2];
    int64_t* out = idx + q * nsample;
    int64_t count = 0;
    for (int64_t j = 0; j < N && count < nsample; ++j) {
      if (!(sqdist3(cx, cy, cz, pts + j * 3) < radius2)) continue;
      if (count == 0) {
        for (int64_t l = 1; l < nsample; ++l) out[l] = j;
      }
      out[count++] = j;
    }
    if (count == 0) {
      for (int64_t l = 0; l < nsample; ++l) out[l] = 0;
    }
  }
}

}  // namespace

template <typename T>
cudaError_t ball_query_launch(const T* centers, const T* xyz, int64_t B, int64_t G, int64_t N,
                              T radius2, int64_t nsample, int64_t* idx, cudaStream_t stream) {
  const int64_t total = B * G;
  if (total == 0 || nsample == 0) return cudaSuccess;
  ball_query_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(centers, xyz, G, N, radius2,
                                                                 nsample, total, idx);
  return cudaGetLastError();
}

template cudaError_t ball_query_launch<float>(const float*, const float*, int64_t, int64_t,
                                              int64_t, float, int64_t, int64_t*, cudaStream_t);
template cudaError_t ball_query_launch<double>(const double*, const double*, int64_t, int64_t,
                                               int64_t, double, int64_t, int64_t*, cudaStream_t);

}  // namespace maskclu
