// Device helpers shared by every kernel. CUDA runtime only (no torch headers).
#pragma once

#include <cassert>
#include <cstdint>

#include <cuda_runtime.h>

namespace maskclu {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

// Blocks for a grid-stride loop over `total` items.
inline unsigned int grid_for(int64_t total, int threads = kThreads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<unsigned int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// Explicitly rounded arithmetic, so no fused multiply-add changes the result: the squared
// distance is ((dx*dx + dy*dy) + dz*dz), bit for bit what the PyTorch reference computes.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename T>
__device__ __forceinline__ T sqdist3(T ax, T ay, T az, const T* b) {
  const T dx = ax - b[0];
  const T dy = ay - b[1];
  const T dz = az - b[2];
  return add_rn(add_rn(mul_rn(dx, dx), mul_rn(dy, dy)), mul_rn(dz, dz));
}

// True when 0 <= j < n; a debug build asserts, a release build lets the caller skip the item.
__device__ __forceinline__ bool index_ok(int64_t j, int64_t n) {
  const bool ok = j >= 0 && j < n;
  assert(ok && "point index out of range");
  return ok;
}

// Grid-stride loop bounds: for (i = grid_start(); i < total; i += grid_stride()).
__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

template <typename T>
__device__ __forceinline__ T infinity() {
  return static_cast<T>(INFINITY);
}

}  // namespace maskclu
