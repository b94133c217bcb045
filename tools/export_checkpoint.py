"""Export one of our checkpoints in the naming of Point-MAE / the released MaskClu code.

    python tools/export_checkpoint.py exps/.../ckpt-last.pth pointmae_named.pth

The result holds ``{'base_model', 'epoch', 'metrics', 'best_metrics'}`` with their module
names (``utils.checkpoint.FOREIGN_NAMES`` read right to left) and only tensors and plain data,
so their ``torch.load`` + ``load_state_dict`` read it. Fine-tuning in their code needs no
export (the encoder names are theirs already), but its patch embedding must take the channels
their model has: 3 in Point-MAE (pre-train with ``model.point_channels: 3``), 4 in MaskClu.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from utils.checkpoint_interop import backbone_config, export_checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='our checkpoint (ckpt-*.pth)')
    parser.add_argument('dst', help='the file to write')
    args = parser.parse_args(argv)
    try:
        export_checkpoint(args.src, args.dst)
    except CheckpointError as e:
        parser.exit(2, f'export_checkpoint.py: error: {e}\n')
    state = load_checkpoint(args.dst)['base_model']
    heads = sorted({k.split('.')[0] for k in state if not k.startswith('MAE_encoder.')})
    print(f"wrote {args.dst}: {len(state)} tensors; backbone {backbone_config(state)}; "
          f"other modules: {', '.join(heads) or 'none'}")


if __name__ == '__main__':
    main()
