// The one compiled module: registers the bindings of every op package.
#include <torch/extension.h>

#ifndef MASKCLU_OPS_SOURCE_HASH
#define MASKCLU_OPS_SOURCE_HASH 0
#endif

void register_pointnet2_ops(pybind11::module_& m);
void register_chamfer(pybind11::module_& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CUDA kernels of the MaskClu point-cloud ops (see extensions/ops.py)";
  // Hash of the sources this module was built from; the loader rejects a stale build.
  m.attr("source_hash") = static_cast<int64_t>(MASKCLU_OPS_SOURCE_HASH);
  register_pointnet2_ops(m);
  register_chamfer(m);
}
