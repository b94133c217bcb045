// Furthest point sampling: one block per cloud, a block-wide argmax per pick.
#include "pointnet2_ops.h"

#include "../../src/common.cuh"

namespace maskclu {
namespace {

constexpr int kFpsThreads = 512;

// Take (d, i) when it is farther than (best_d, best_i), or as far with a smaller index, so the
// pick is the first farthest point, as torch.argmax returns it.
template <typename T>
__device__ __forceinline__ void keep_farther(T& best_d, int64_t& best_i, T d, int64_t i) {
  if (d > best_d || (d == best_d && i < best_i)) {
    best_d = d;
    best_i = i;
  }
}

// scratch (B,N) holds each point's squared distance to its nearest pick so far.
template <typename T>
__global__ void fps_kernel(const T* __restrict__ xyz, const int64_t* __restrict__ start,
                           int64_t N, int64_t npoint, T* __restrict__ scratch,
                           int64_t* __restrict__ idx) {
  __shared__ T block_d[kFpsThreads];
  __shared__ int64_t block_i[kFpsThreads];
  const int64_t b = blockIdx.x;
  const int t = threadIdx.x;
  xyz += b * N * 3;
  scratch += b * N;
  idx += b * npoint;
  int64_t cur = index_ok(start[b], N) ? start[b] : 0;
  for (int64_t s = 0; s < npoint; ++s) {
    if (t == 0) idx[s] = cur;
    const T cx = xyz[cur * 3], cy = xyz[cur * 3 + 1], cz = xyz[cur * 3 + 2];
    T best_d = -1;
    int64_t best_i = 0;
    for (int64_t j = t; j < N; j += kFpsThreads) {
      const T d = sqdist3(cx, cy, cz, xyz + j * 3);
      const T nearest = s == 0 ? d : min(d, scratch[j]);
      scratch[j] = nearest;
      keep_farther(best_d, best_i, nearest, j);
    }
    block_d[t] = best_d;
    block_i[t] = best_i;
    __syncthreads();
    for (int half = kFpsThreads / 2; half > 0; half >>= 1) {
      if (t < half) {
        keep_farther(best_d, best_i, block_d[t + half], block_i[t + half]);
        block_d[t] = best_d;
        block_i[t] = best_i;
      }
      __syncthreads();
    }
    cur = block_i[0];
    __syncthreads();
  }
}

}  // namespace

template <typename T>
cudaError_t fps_launch(const T* xyz, const int64_t* start, int64_t B, int64_t N, int64_t npoint,
                       T* scratch, int64_t* idx, cudaStream_t stream) {
  if (B == 0 || npoint == 0) return cudaSuccess;
  fps_kernel<T><<<static_cast<unsigned int>(B), kFpsThreads, 0, stream>>>(xyz, start, N, npoint,
                                                                          scratch, idx);
  return cudaGetLastError();
}

template cudaError_t fps_launch<float>(const float*, const int64_t*, int64_t, int64_t, int64_t,
                                       float*, int64_t*, cudaStream_t);
template cudaError_t fps_launch<double>(const double*, const int64_t*, int64_t, int64_t, int64_t,
                                        double*, int64_t*, cudaStream_t);

}  // namespace maskclu
