// Three-point weighted interpolation of features and its backward (features and weights).
#include "pointnet2_ops.h"

#include "../../src/common.cuh"

namespace maskclu {
namespace {

// out[b,i,c] = ((w0 f[j0,c] + w1 f[j1,c]) + w2 f[j2,c]), summed in the reference's order.
template <typename T>
__global__ void three_interpolate_kernel(const T* __restrict__ features,
                                         const int64_t* __restrict__ idx,
                                         const T* __restrict__ weight, int64_t m, int64_t n,
                                         int64_t C, int64_t total, T* __restrict__ out) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t bn = i / C;
    const T* f = features + (bn / n) * m * C + (i - bn * C);
    T acc = 0;
    for (int l = 0; l < 3; ++l) {
      const int64_t j = idx[bn * 3 + l];
      if (index_ok(j, m)) acc = add_rn(acc, mul_rn(weight[bn * 3 + l], f[j * C]));
    }
    out[i] = acc;
  }
}

template <typename T>
__global__ void three_interpolate_grad_features_kernel(const T* __restrict__ grad_out,
                                                       const int64_t* __restrict__ idx,
                                                       const T* __restrict__ weight, int64_t m,
                                                       int64_t n, int64_t C, int64_t total,
                                                       T* __restrict__ grad_features) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t bn = i / C;
    T* g = grad_features + (bn / n) * m * C + (i - bn * C);
    for (int l = 0; l < 3; ++l) {
      const int64_t j = idx[bn * 3 + l];
      if (index_ok(j, m)) atomicAdd(g + j * C, weight[bn * 3 + l] * grad_out[i]);
    }
  }
}

// grad_weight[b,i,l] = sum_c grad_out[b,i,c] * features[b,j_l,c]: one thread per weight,
// accumulated in double so that long channel sums (C = 384 ... 1152) stay accurate.
template <typename T>
__global__ void three_interpolate_grad_weight_kernel(const T* __restrict__ grad_out,
                                                     const T* __restrict__ features,
                                                     const int64_t* __restrict__ idx, int64_t m,
                                                     int64_t n, int64_t C, int64_t total,
                                                     T* __restrict__ grad_weight) {
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t bn = i / 3;
    const int64_t j = idx[i];
    double acc = 0;
    if (index_ok(j, m)) {
      const T* f = features + ((bn / n) * m + j) * C;
      const T* g = grad_out + bn * C;
      for (int64_t c = 0; c < C; ++c) acc += static_cast<double>(g[c]) * f[c];
    }
    grad_weight[i] = static_cast<T>(acc);
  }
}

}  // namespace

template <typename T>
cudaError_t three_interpolate_launch(const T* features, const int64_t* idx, const T* weight,
                                     int64_t B, int64_t m, int64_t n, int64_t C, T* out,
                                     cudaStream_t stream) {
  const int64_t total = B * n * C;
  if (total == 0) return cudaSuccess;
  three_interpolate_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(features, idx, weight, m,
                                                                        n, C, total, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t three_interpolate_backward_launch(const T* grad_out, const T* features,
                                              const int64_t* idx, const T* weight, int64_t B,
                                              int64_t m, int64_t n, int64_t C, T* grad_features,
                                              T* grad_weight, cudaStream_t stream) {
  if (grad_features != nullptr && B * n * C > 0) {
    const int64_t total = B * n * C;
    three_interpolate_grad_features_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        grad_out, idx, weight, m, n, C, total, grad_features);
  }
  if (grad_weight != nullptr && B * n > 0) {
    const int64_t total = B * n * 3;
    three_interpolate_grad_weight_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
        grad_out, features, idx, m, n, C, total, grad_weight);
  }
  return cudaGetLastError();
}

#define MASKCLU_INSTANTIATE(T)                                                                  \
  template cudaError_t three_interpolate_launch<T>(const T*, const int64_t*, const T*, int64_t, \
                                                   int64_t, int64_t, int64_t, T*, cudaStream_t); \
  template cudaError_t three_interpolate_backward_launch<T>(                                    \
      const T*, const T*, const int64_t*, const T*, int64_t, int64_t, int64_t, int64_t, T*, T*, \
      cudaStream_t);
MASKCLU_INSTANTIATE(float)
MASKCLU_INSTANTIATE(double)
#undef MASKCLU_INSTANTIATE

}  // namespace maskclu
