// Launchers of the PointNet++ kernels: raw pointers to contiguous channel-last arrays and a
// stream; CUDA runtime only. Each returns the launch status. Indices are int64.
// Instantiated for T = float and double.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace maskclu {

// Largest k the kNN kernel accepts (its per-thread top-k list lives in shared memory).
constexpr int kKnnMaxK = 1024;

// FPS: xyz (B,N,3), start (B,), scratch (B,N) -> idx (B,npoint).
template <typename T>
cudaError_t fps_launch(const T* xyz, const int64_t* start, int64_t B, int64_t N, int64_t npoint,
                       T* scratch, int64_t* idx, cudaStream_t stream);

// Gather: points (B,N,C), idx (B,K) -> out (B,K,C).
template <typename T>
cudaError_t gather_launch(const T* points, const int64_t* idx, int64_t B, int64_t N, int64_t K,
                          int64_t C, T* out, cudaStream_t stream);

// Gather backward: grad_out (B,K,C), idx (B,K) -> grad_points (B,N,C), accumulated (zero it).
template <typename T>
cudaError_t gather_backward_launch(const T* grad_out, const int64_t* idx, int64_t B, int64_t N,
                                   int64_t K, int64_t C, T* grad_points, cudaStream_t stream);

// kNN: query (B,G,3), ref (B,N,3) -> dist (B,G,k) ascending squared distances, idx (B,G,k).
template <typename T>
cudaError_t knn_launch(const T* query, const T* ref, int64_t B, int64_t G, int64_t N, int k,
                       T* dist, int64_t* idx, cudaStream_t stream);

// Ball query: centers (B,G,3), xyz (B,N,3) -> idx (B,G,S): the first S points (index order)
// with squared distance < radius2, padded with the first one; all 0 when none is inside.
template <typename T>
cudaError_t ball_query_launch(const T* centers, const T* xyz, int64_t B, int64_t G, int64_t N,
                              T radius2, int64_t nsample, int64_t* idx, cudaStream_t stream);

// Three-point interpolation: features (B,m,C), idx (B,n,3), weight (B,n,3) -> out (B,n,C).
template <typename T>
cudaError_t three_interpolate_launch(const T* features, const int64_t* idx, const T* weight,
                                     int64_t B, int64_t m, int64_t n, int64_t C, T* out,
                                     cudaStream_t stream);

// Its backward: grad_features (B,m,C) accumulated (zero it) and/or grad_weight (B,n,3);
// either output pointer may be null to skip it.
template <typename T>
cudaError_t three_interpolate_backward_launch(const T* grad_out, const T* features,
                                              const int64_t* idx, const T* weight, int64_t B,
                                              int64_t m, int64_t n, int64_t C, T* grad_features,
                                              T* grad_weight, cudaStream_t stream);

}  // namespace maskclu
