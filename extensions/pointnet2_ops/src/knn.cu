// k nearest neighbours by brute force: one thread per query keeps a sorted top-k list in
// shared memory (laid out [k][threads] so the threads of a warp hit different banks).
#include "pointnet2_ops.h"

#include <algorithm>

#include "../../src/common.cuh"

namespace maskclu {
namespace {

constexpr size_t kKnnSharedBytes = 48 * 1024;

template <typename T>
__global__ void knn_kernel(const T* __restrict__ query, const T* __restrict__ ref, int64_t G,
                           int64_t N, int k, int64_t total, T* __restrict__ dist,
                           int64_t* __restrict__ idx) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int stride = blockDim.x;
  T* best_d = reinterpret_cast<T*>(smem) + threadIdx.x;
  int32_t* best_i = reinterpret_cast<int32_t*>(smem + sizeof(T) * k * stride) + threadIdx.x;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * stride + threadIdx.x;
  if (q >= total) return;
  const T* pts = ref + (q / G) * N * 3;
  const T qx = query[q * 3], qy = query[q * 3 + 1], qz = query[q * 3 + 2];
  int count = 0;
  for (int64_t j = 0; j < N; ++j) {
    const T d = sqdist3(qx, qy, qz, pts + j * 3);
    if (count == k && !(d < best_d[(k - 1) * stride])) continue;
    int pos = count < k ? count++ : k - 1;
    // Insertion after every equal distance: ties keep index order.
    for (; pos > 0 && best_d[(pos - 1) * stride] > d; --pos) {
      best_d[pos * stride] = best_d[(pos - 1) * stride];
      best_i[pos * stride] = best_i[(pos - 1) * stride];
    }
    best_d[pos * stride] = d;
    best_i[pos * stride] = static_cast<int32_t>(j);
  }
  for (int l = 0; l < k; ++l) {
    dist[q * k + l] = best_d[l * stride];
    idx[q * k + l] = best_i[l * stride];
  }
}

}  // namespace

template <typename T>
cudaError_t knn_launch(const T* query, const T* ref, int64_t B, int64_t G, int64_t N, int k,
                       T* dist, int64_t* idx, cudaStream_t stream) {
  if (k < 1 || k > kKnnMaxK || k > N || N > INT32_MAX) return cudaErrorInvalidValue;
  const int64_t total = B * G;
  if (total == 0) return cudaSuccess;
  const size_t per_thread = static_cast<size_t>(k) * (sizeof(T) + sizeof(int32_t));
  const int threads = static_cast<int>(std::min<size_t>(kThreads, kKnnSharedBytes / per_thread));
  const int64_t blocks = (total + threads - 1) / threads;
  knn_kernel<T><<<static_cast<unsigned int>(blocks), threads, threads * per_thread, stream>>>(
      query, ref, G, N, k, total, dist, idx);
  return cudaGetLastError();
}

template cudaError_t knn_launch<float>(const float*, const float*, int64_t, int64_t, int64_t, int,
                                       float*, int64_t*, cudaStream_t);
template cudaError_t knn_launch<double>(const double*, const double*, int64_t, int64_t, int64_t,
                                        int, double*, int64_t*, cudaStream_t);

}  // namespace maskclu
