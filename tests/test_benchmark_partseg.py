"""scripts/benchmark_partseg.py runs end to end (tiny config: a smoke test, no timing checks)."""
import math
import os

import pytest
import torch
import yaml

from scripts.benchmark_partseg import bench_partseg, synthetic_parts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_synthetic_parts_are_valid_for_their_category():
    from datasets.shapenetpart_labels import CATEGORY_OF_PART
    points = torch.rand(8, 64, 3)
    category, parts = synthetic_parts(8, 64, points)
    assert parts.shape == (8, 64)
    assert torch.equal(torch.from_numpy(CATEGORY_OF_PART)[parts], category[:, None].expand(8, 64))


@pytest.mark.slow   # spawns a child process per type for the peak memory (~15 s on a busy 2-core box)
def test_bench_partseg_reports_every_type(tmp_path):
    cfg = tmp_path / 'seg.yaml'
    cfg.write_text(yaml.safe_dump({
        '_base_': os.path.join(ROOT, 'cfgs', 'partseg.yaml'), 'npoint': 128,
        'model': {'trans_dim': 32, 'encoder_dims': 32, 'depth': 2, 'num_heads': 2, 'num_group': 16,
                  'group_size': 8, 'feature_blocks': [1, 2], 'propagation_dims': [32], 'head_dims': [16, 16]}}))
    threads = torch.get_num_threads()
    try:
        rows = bench_partseg(['full', 'frozen'], batch=2, repeats=1, warmup=0, config=str(cfg))
    finally:
        torch.set_num_threads(threads)
    assert [r['type'] for r in rows] == ['full', 'frozen'] and rows[0]['ratio_to_first'] == 1.0
    for r in rows:
        assert r['step_ms'] > 0 and r['peak_mem_mb'] > 0 and not math.isnan(r['peak_mem_mb'])
        assert {'encoder', 'propagation', 'heads', 'backward', 'optimizer'} <= set(r['phases_ms'])
