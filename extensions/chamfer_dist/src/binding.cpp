// Torch bindings of the Chamfer kernels: check inputs, allocate outputs, launch on the
// current stream. Callers pass contiguous tensors.
#include "../../src/checks.h"
#include "chamfer.h"

namespace {

using maskclu::check_cloud;
using maskclu::check_data;
using maskclu::check_index;
using maskclu::check_launch;
using maskclu::current_stream;

// x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m), idx1 (B,n), idx2 (B,m).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> chamfer_forward(const at::Tensor& x,
                                                                           const at::Tensor& y) {
  check_cloud(x, "x");
  check_cloud(y, "y", &x);
  const int64_t B = x.size(0), n = x.size(1), m = y.size(1);
  TORCH_CHECK(n >= 1 && m >= 1, "x and y need at least one point each");
  const c10::cuda::CUDAGuard guard(x.device());
  auto dist1 = at::empty({B, n}, x.options());
  auto dist2 = at::empty({B, m}, x.options());
  auto idx1 = at::empty({B, n}, x.options().dtype(at::kLong));
  auto idx2 = at::empty({B, m}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "chamfer_forward", [&] {
    const auto* px = x.data_ptr<scalar_t>();
    const auto* py = y.data_ptr<scalar_t>();
    check_launch(maskclu::nearest_launch<scalar_t>(px, py, B, n, m, dist1.data_ptr<scalar_t>(),
                                                   idx1.data_ptr<int64_t>(), current_stream()),
                 "chamfer_forward");
    check_launch(maskclu::nearest_launch<scalar_t>(py, px, B, m, n, dist2.data_ptr<scalar_t>(),
                                                   idx2.data_ptr<int64_t>(), current_stream()),
                 "chamfer_forward");
  });
  return {dist1, dist2, idx1, idx2};
}

// Gradients w.r.t. x and y of sum(grad_dist1 * dist1) + sum(grad_dist2 * dist2).
std::tuple<at::Tensor, at::Tensor> chamfer_backward(const at::Tensor& x, const at::Tensor& y,
                                                    const at::Tensor& idx1,
                                                    const at::Tensor& idx2,
                                                    const at::Tensor& grad_dist1,
                                                    const at::Tensor& grad_dist2) {
  check_cloud(x, "x");
  check_cloud(y, "y", &x);
  check_index(idx1, "idx1", 2, x);
  check_index(idx2, "idx2", 2, x);
  check_data(grad_dist1, "grad_dist1", 2, &x);
  check_data(grad_dist2, "grad_dist2", 2, &x);
  const int64_t B = x.size(0), n = x.size(1), m = y.size(1);
  TORCH_CHECK(idx1.size(1) == n && grad_dist1.size(1) == n, "idx1 and grad_dist1 must be (B,n)");
  TORCH_CHECK(idx2.size(1) == m && grad_dist2.size(1) == m, "idx2 and grad_dist2 must be (B,m)");
  const c10::cuda::CUDAGuard guard(x.device());
  auto grad_x = at::zeros_like(x);
  auto grad_y = at::zeros_like(y);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "chamfer_backward", [&] {
    const auto* px = x.data_ptr<scalar_t>();
    const auto* py = y.data_ptr<scalar_t>();
    auto* gx = grad_x.data_ptr<scalar_t>();
    auto* gy = grad_y.data_ptr<scalar_t>();
    check_launch(maskclu::nearest_backward_launch<scalar_t>(
                     px, py, idx1.data_ptr<int64_t>(), grad_dist1.data_ptr<scalar_t>(), B, n, m,
                     gx, gy, current_stream()),
                 "chamfer_backward");
    check_launch(maskclu::nearest_backward_launch<scalar_t>(
                     py, px, idx2.data_ptr<int64_t>(), grad_dist2.data_ptr<scalar_t>(), B, m, n,
                     gy, gx, current_stream()),
                 "chamfer_backward");
  });
  return {grad_x, grad_y};
}

}  // namespace

void register_chamfer(pybind11::module_& m) {
  m.def("chamfer_forward", &chamfer_forward,
        "x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m), idx1 (B,n), idx2 (B,m)");
  m.def("chamfer_backward", &chamfer_backward,
        "x, y, idx1, idx2, grad_dist1 (B,n), grad_dist2 (B,m) -> grad_x (B,n,3), grad_y (B,m,3)");
}
