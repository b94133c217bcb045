"""Write the pre-training model of a config at random initialisation as a checkpoint (epoch 0).

    python tools/init_checkpoint.py --config cfgs/demo/pretrain.yaml --seed 0 --out random-s0.pth

The file is a pre-training checkpoint like ``ckpt-last.pth`` (encoder under ``MAE_encoder.``), so
every downstream command takes it through ``--ckpts``: the *random-init encoder* baseline of
``tools/evaluate.py --ckpts random`` runs exactly the code path of a pre-trained checkpoint
(same loader, same heads, same frozen protocols, and ``--svm``, which has no scratch mode). The
weights depend only on the config's model section and ``--seed``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import build_model  # noqa: E402
from tools.config_check import validate_config  # noqa: E402
from utils.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402
from utils.misc import seed_everything  # noqa: E402


def write_random_init(config_path, seed, out):
    """Build ``config_path``'s model with torch seeded by ``seed``; save it to ``out`` (atomic)."""
    config = validate_config(load_config(config_path), config_path)
    seed_everything(seed)
    model = build_model(config.model)
    save_checkpoint(make_checkpoint(model, epoch=0, metrics={'random_init_seed': seed}, config=config), out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='pre-training config whose model is initialised')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True, help='checkpoint file to write')
    args = p.parse_args(argv)
    try:
        write_random_init(args.config, args.seed, args.out)
    except (ConfigError, FileNotFoundError) as e:
        p.exit(2, f'init_checkpoint.py: error: {e}\n')
    print(f'wrote {args.out}: {args.config} model at random initialisation (seed {args.seed})')


if __name__ == '__main__':
    main()
