// Torch bindings of the PointNet++ kernels: check inputs, allocate outputs, launch on the
// current stream. Shapes are those of extensions/ops.py; callers pass contiguous tensors.
#include "../../src/checks.h"
#include "pointnet2_ops.h"

namespace {

using maskclu::check_cloud;
using maskclu::check_data;
using maskclu::check_index;
using maskclu::check_launch;
using maskclu::current_stream;

at::Tensor furthest_point_sample(const at::Tensor& xyz, int64_t npoint, const at::Tensor& start) {
  check_cloud(xyz, "xyz");
  check_index(start, "start_idx", 1, xyz);
  const int64_t B = xyz.size(0), N = xyz.size(1);
  TORCH_CHECK(npoint >= 1 && npoint <= N, "npoint must be in [1, ", N, "], got ", npoint);
  const c10::cuda::CUDAGuard guard(xyz.device());
  auto idx = at::empty({B, npoint}, xyz.options().dtype(at::kLong));
  auto scratch = at::empty({B, N}, xyz.options());
  AT_DISPATCH_FLOATING_TYPES(xyz.scalar_type(), "furthest_point_sample", [&] {
    check_launch(maskclu::fps_launch<scalar_t>(xyz.data_ptr<scalar_t>(), start.data_ptr<int64_t>(),
                                               B, N, npoint, scratch.data_ptr<scalar_t>(),
                                               idx.data_ptr<int64_t>(), current_stream()),
                 "furthest_point_sample");
  });
  return idx;
}

at::Tensor gather_points(const at::Tensor& points, const at::Tensor& idx) {
  check_data(points, "points", 3);
  check_index(idx, "idx", 2, points);
  const int64_t B = points.size(0), N = points.size(1), C = points.size(2), K = idx.size(1);
  const c10::cuda::CUDAGuard guard(points.device());
  auto out = at::empty({B, K, C}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "gather_points", [&] {
    check_launch(maskclu::gather_launch<scalar_t>(points.data_ptr<scalar_t>(),
                                                  idx.data_ptr<int64_t>(), B, N, K, C,
                                                  out.data_ptr<scalar_t>(), current_stream()),
                 "gather_points");
  });
  return out;
}

at::Tensor gather_points_backward(const at::Tensor& grad_out, const at::Tensor& idx, int64_t N) {
  check_data(grad_out, "grad_out", 3);
  check_index(idx, "idx", 2, grad_out);
  TORCH_CHECK(idx.size(1) == grad_out.size(1), "idx and grad_out disagree on K");
  const int64_t B = grad_out.size(0), K = grad_out.size(1), C = grad_out.size(2);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  auto grad_points = at::zeros({B, N, C}, grad_out.options());
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "gather_points_backward", [&] {
    check_launch(maskclu::gather_backward_launch<scalar_t>(
                     grad_out.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), B, N, K, C,
                     grad_points.data_ptr<scalar_t>(), current_stream()),
                 "gather_points_backward");
  });
  return grad_points;
}

std::tuple<at::Tensor, at::Tensor> knn_points(const at::Tensor& query, const at::Tensor& ref,
                                              int64_t k) {
  check_cloud(query, "query");
  check_cloud(ref, "ref", &query);
  const int64_t B = query.size(0), G = query.size(1), N = ref.size(1);
  TORCH_CHECK(k >= 1 && k <= N, "k must be in [1, ", N, "], got ", k);
  TORCH_CHECK(k <= maskclu::kKnnMaxK, "the kNN kernel takes k <= ", maskclu::kKnnMaxK);
  const c10::cuda::CUDAGuard guard(query.device());
  auto dist = at::empty({B, G, k}, query.options());
  auto idx = at::empty({B, G, k}, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_points", [&] {
    check_launch(maskclu::knn_launch<scalar_t>(query.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(),
                                               B, G, N, static_cast<int>(k),
                                               dist.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(),
                                               current_stream()),
                 "knn_points");
  });
  return {dist, idx};
}

at::Tensor ball_query(const at::Tensor& centers, const at::Tensor& xyz, double radius,
                      int64_t nsample) {
  check_cloud(centers, "new_xyz");
  check_cloud(xyz, "xyz", &centers);
  TORCH_CHECK(nsample >= 1, "nsample must be >= 1, got ", nsample);
  const int64_t B = centers.size(0), G = centers.size(1), N = xyz.size(1);
  const c10::cuda::CUDAGuard guard(centers.device());
  auto idx = at::empty({B, G, nsample}, centers.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(centers.scalar_type(), "ball_query", [&] {
    check_launch(maskclu::ball_query_launch<scalar_t>(
                     centers.data_ptr<scalar_t>(), xyz.data_ptr<scalar_t>(), B, G, N,
                     static_cast<scalar_t>(radius * radius), nsample, idx.data_ptr<int64_t>(),
                     current_stream()),
                 "ball_query");
  });
  return idx;
}

void check_interpolation(const at::Tensor& features, const at::Tensor& idx,
                         const at::Tensor& weight) {
  check_data(features, "features", 3);
  check_index(idx, "idx", 3, features);
  check_data(weight, "weight", 3, &features);
  TORCH_CHECK(idx.size(2) == 3 && weight.sizes() == idx.sizes(),
              "idx and weight must both be (B,n,3), got ", idx.sizes(), " and ", weight.sizes());
}

at::Tensor three_interpolate(const at::Tensor& features, const at::Tensor& idx,
                             const at::Tensor& weight) {
  check_interpolation(features, idx, weight);
  const int64_t B = features.size(0), m = features.size(1), C = features.size(2);
  const int64_t n = idx.size(1);
  const c10::cuda::CUDAGuard guard(features.device());
  auto out = at::empty({B, n, C}, features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "three_interpolate", [&] {
    check_launch(maskclu::three_interpolate_launch<scalar_t>(
                     features.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(),
                     weight.data_ptr<scalar_t>(), B, m, n, C, out.data_ptr<scalar_t>(),
                     current_stream()),
                 "three_interpolate");
  });
  return out;
}

// Returns (grad_features, grad_weight); an output not asked for is None.
std::tuple<at::Tensor, at::Tensor> three_interpolate_backward(const at::Tensor& grad_out,
                                                              const at::Tensor& features,
                                                              const at::Tensor& idx,
                                                              const at::Tensor& weight,
                                                              bool need_features,
                                                              bool need_weight) {
  check_interpolation(features, idx, weight);
  check_data(grad_out, "grad_out", 3, &features);
  const int64_t B = features.size(0), m = features.size(1), C = features.size(2);
  const int64_t n = idx.size(1);
  TORCH_CHECK(grad_out.size(1) == n && grad_out.size(2) == C, "grad_out must be (B,n,C)");
  const c10::cuda::CUDAGuard guard(features.device());
  at::Tensor grad_features, grad_weight;
  if (need_features) grad_features = at::zeros_like(features);
  if (need_weight) grad_weight = at::empty_like(weight);
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "three_interpolate_backward", [&] {
    check_launch(maskclu::three_interpolate_backward_launch<scalar_t>(
                     grad_out.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(),
                     idx.data_ptr<int64_t>(), weight.data_ptr<scalar_t>(), B, m, n, C,
                     need_features ? grad_features.data_ptr<scalar_t>() : nullptr,
                     need_weight ? grad_weight.data_ptr<scalar_t>() : nullptr, current_stream()),
                 "three_interpolate_backward");
  });
  return {grad_features, grad_weight};
}

}  // namespace

void register_pointnet2_ops(pybind11::module_& m) {
  m.def("furthest_point_sample", &furthest_point_sample,
        "xyz (B,N,3), npoint, start (B,) int64 -> idx (B,npoint) int64");
  m.def("gather_points", &gather_points, "points (B,N,C), idx (B,K) -> (B,K,C)");
  m.def("gather_points_backward", &gather_points_backward,
        "grad_out (B,K,C), idx (B,K), N -> grad_points (B,N,C)");
  m.def("knn_points", &knn_points, "query (B,G,3), ref (B,N,3), k -> dist2 (B,G,k), idx (B,G,k)");
  m.def("ball_query", &ball_query, "new_xyz (B,G,3), xyz (B,N,3), radius, nsample -> idx (B,G,S)");
  m.def("three_interpolate", &three_interpolate,
        "features (B,m,C), idx (B,n,3), weight (B,n,3) -> (B,n,C)");
  m.def("three_interpolate_backward", &three_interpolate_backward,
        "grad_out (B,n,C), features, idx, weight, need_features, need_weight -> "
        "(grad_features (B,m,C) or None, grad_weight (B,n,3) or None)");
}
