// Launchers of the Chamfer kernels: raw pointers to contiguous (B,n,3) arrays and a stream;
// CUDA runtime only. Each returns the launch status. Instantiated for float and double.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace maskclu {

// One Chamfer direction: x (B,n,3), y (B,m,3) -> dist (B,n) squared distance from each x to
// its nearest y, idx (B,n) that y (the first one on ties). Requires m >= 1.
template <typename T>
cudaError_t nearest_launch(const T* x, const T* y, int64_t B, int64_t n, int64_t m, T* dist,
                           int64_t* idx, cudaStream_t stream);

// Backward of that direction for grad_dist (B,n): adds g_i = 2 grad_dist_i (x_i - y_idx_i) to
// grad_x[i] and subtracts it from grad_y[idx_i]. Both are accumulated (zero them first).
template <typename T>
cudaError_t nearest_backward_launch(const T* x, const T* y, const int64_t* idx,
                                    const T* grad_dist, int64_t B, int64_t n, int64_t m,
                                    T* grad_x, T* grad_y, cudaStream_t stream);

}  // namespace maskclu
