// Input checks and launch helpers shared by the torch bindings (host code, includes torch).
#pragma once

#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

namespace maskclu {

// A contiguous CUDA tensor with `dim` dimensions.
inline void check_cuda(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.sizes());
}

// Floating data (float32 or float64) with `dim` dimensions on the device of `like` (when given).
inline void check_data(const at::Tensor& t, const char* name, int64_t dim,
                       const at::Tensor* like = nullptr) {
  check_cuda(t, name, dim);
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
              " must be float32 or float64, got ", t.scalar_type());
  if (like != nullptr) {
    TORCH_CHECK(t.device() == like->device(), name, " must be on ", like->device());
    TORCH_CHECK(t.scalar_type() == like->scalar_type(), name, " must have dtype ",
                like->scalar_type());
  }
}

// A point cloud (B,N,3).
inline void check_cloud(const at::Tensor& t, const char* name, const at::Tensor* like = nullptr) {
  check_data(t, name, 3, like);
  TORCH_CHECK(t.size(2) == 3, name, " must be (B,N,3), got ", t.sizes());
  if (like != nullptr) {
    TORCH_CHECK(t.size(0) == like->size(0), name, " must have batch size ", like->size(0));
  }
}

// An int64 index tensor with `dim` dimensions on the device of `like`, batch size first.
inline void check_index(const at::Tensor& t, const char* name, int64_t dim,
                        const at::Tensor& like) {
  check_cuda(t, name, dim);
  TORCH_CHECK(t.scalar_type() == at::kLong, name, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.device() == like.device(), name, " must be on ", like.device());
  TORCH_CHECK(t.size(0) == like.size(0), name, " must have batch size ", like.size(0));
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline void check_launch(cudaError_t status, const char* op) {
  TORCH_CHECK(status == cudaSuccess, op, " kernel failed: ", cudaGetErrorString(status));
}

}  // namespace maskclu
