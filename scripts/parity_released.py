"""Term-by-term parity of ``cfgs/pretrain_released.yaml`` with the authors' released MaskClu code.

    python scripts/parity_released.py --released /path/to/maskclu [--batch 4] [--seed 0] [--modes eval train] \
        [--opts model.losses.global.target_norm=true ...]

``--released`` is a checkout of github.com/Amazingren/maskclu or its git directory (a bare
mirror: its HEAD is unpacked into a temporary folder). Their ``models/maskclu.py`` is imported
from there at run time; nothing of it is copied into this project. Both models run in float64
on the CPU with the same weights (ours, exported through ``utils.checkpoint_interop``, every
parameter and BatchNorm statistic perturbed away from its initial value first so that
LayerNorm/BatchNorm affine terms matter), the same clouds, the same FPS start points (their
FPS draws its start from torch's global RNG, which is seeded; ours is handed the same starts)
and the same mask (their second numpy draw, the one their masked pass uses; the first, drawn
for the unmasked pass, is discarded there). Their loss functions are wrapped (not changed) to
record each term. Printed: per term ours, theirs and the relative difference, then the
relative difference of the encoder gradients (of the total loss) over all encoder parameters
(norm of the difference / norm of theirs) and for the worst tensor (max abs difference / max
abs of theirs), leaving out tensors whose gradient is zero up to rounding (a bias right before
a BatchNorm in train mode: below 1e-9 of the largest gradient). ``--opts`` overrides keys of our
config (``utils.config`` syntax), e.g. to see what a released option changes.

Their code needs ``timm`` (DropPath, trunc_normal_) and ``fvcore`` (two loader messages); where
those packages are not installed, small stand-ins are registered for them (DropPath: ours, an
identity in eval and with drop_path_rate 0; trunc_normal_: torch's). No CUDA op is involved:
their FPS, kNN and Sinkhorn are plain torch.
"""
import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from models import build_model  # noqa: E402
from models.transformer import DropPath  # noqa: E402
from tools.config_check import validate_config  # noqa: E402
from utils.checkpoint_interop import export_state_dict  # noqa: E402
from utils.config import load_config  # noqa: E402

TERMS = ('assign', 'center', 'global_g1', 'global_g2')


class Attrs(dict):
    """A dict whose keys read as attributes (their configs are EasyDicts)."""
    __getattr__ = dict.__getitem__


def released_source(path):
    """A folder with their sources: ``path`` itself, or its git HEAD unpacked when it is a git
    directory without a work tree."""
    if os.path.exists(os.path.join(path, 'models', 'maskclu.py')):
        return path
    out = tempfile.mkdtemp(prefix='maskclu_released_')
    archive = subprocess.run(['git', f'--git-dir={path}', 'archive', 'HEAD'], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__('io').BytesIO(archive)) as tar:
        tar.extractall(out, filter='data')
    return out


def register_stand_ins():
    """Stand-ins for the packages their code imports but this environment may lack."""
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        layers = types.ModuleType('timm.models.layers')
        layers.DropPath, layers.trunc_normal_ = DropPath, torch.nn.init.trunc_normal_
        for name in ('timm', 'timm.models'):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules['timm.models.layers'] = layers
    try:
        import fvcore.common.checkpoint  # noqa: F401
    except ImportError:
        ckpt = types.ModuleType('fvcore.common.checkpoint')
        ckpt.get_missing_parameters_message = ckpt.get_unexpected_parameters_message = lambda keys: str(keys)
        for name in ('fvcore', 'fvcore.common'):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules['fvcore.common.checkpoint'] = ckpt


def import_released(src):
    """Their ``models/maskclu.py`` as module ``released_maskclu``. Their top-level packages
    ``libs`` and ``modules`` come from ``src``; ``tools`` and ``models`` are names this project
    uses too, so their ``tools.logger`` is loaded from its file under that name explicitly."""
    register_stand_ins()
    sys.path.append(src)

    def load(name, relpath):
        spec = importlib.util.spec_from_file_location(name, os.path.join(src, relpath))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    load('tools.logger', 'tools/logger.py')
    return load('released_maskclu', 'models/maskclu.py')


def their_config(cfg):
    t = cfg.transformer_config
    a = cfg.losses.assign
    return Attrs(group_size=cfg.group_size, num_group=cfg.num_group, n_neighs=a.graph_k, tau=a.tau,
                 transformer_config=Attrs(mask_ratio=t.mask_ratio, mask_type=t.mask_type, trans_dim=t.trans_dim,
                                          encoder_dims=t.encoder_dims, depth=t.depth, drop_path_rate=0.0,
                                          num_heads=t.num_heads, decoder_depth=t.decoder_depth,
                                          decoder_num_heads=t.decoder_num_heads, decoder_num_clusters=a.P,
                                          proj_dim=a.hidden))


def perturb(model, seed):
    """Move every parameter and BatchNorm statistic off its initial value (seeded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1 * (p.std() if p.numel() > 1 else 1) + (
                torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1 if p.dim() == 1 else 0))
        for name, b in model.named_buffers():
            if name.endswith('running_mean'):
                b.add_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.1)
            elif name.endswith('running_var'):
                b.mul_(torch.rand(b.shape, generator=g, dtype=b.dtype) + 0.5)


def clouds(batch, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 3, generator=g, dtype=torch.float64)
    x = x * (0.4 + torch.rand(batch, 1, 3, generator=g, dtype=torch.float64))
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=-1).amax(1)[:, None, None]


@contextlib.contextmanager
def recording(module, names, log):
    """Wrap ``module.<name>`` for each name so every call's result is appended to ``log[name]``."""
    saved = {name: getattr(module, name) for name in names}

    def wrap(name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            log.setdefault(name, []).append(out)
            return out
        return wrapped
    try:
        for name, fn in saved.items():
            setattr(module, name, wrap(name, fn))
        yield log
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def run_theirs(released, theirs, points, seed):
    """Their forward and backward: ({term: value}, used mask (B, G) bool, centers (B, G, 3))."""
    log = {}
    masks = []
    draw = theirs.MAE_encoder._mask_center_rand
    theirs.MAE_encoder._mask_center_rand = lambda *a, **k: masks.append(draw(*a, **k)) or masks[-1]
    centers = []
    hook = theirs.group_divider.register_forward_hook(lambda m, a, out: centers.append(out[1]))
    torch.manual_seed(seed)  # their FPS start: torch.randint(0, N, (B,)) from the global RNG
    np.random.seed(seed)  # their masks
    try:
        with recording(released, ('loss_fn', 'spatial_loss', 'welsch_loss'), log):
            total, assign = theirs(points)
        (total + assign).backward()
    finally:
        hook.remove()
        del theirs.MAE_encoder._mask_center_rand
    g1, g2 = log['loss_fn']
    terms = {'assign': log['spatial_loss'][0], 'center': log['welsch_loss'][0], 'global_g1': g1, 'global_g2': g2}
    return {k: v.detach() for k, v in terms.items()}, masks[-1], centers[0]


def run_ours(model, points, starts, mask):
    """Our forward and backward with their FPS starts and mask: {term: value}, centers."""
    encoder = model.MAE_encoder
    encoder.patchify = lambda pts, generator=None: encoder.group_divider(pts, starts)
    order = torch.argsort(mask.long(), dim=1, stable=True)  # visible indices (ascending), then masked
    V = int((~mask[0]).sum())
    model.view_masks = lambda center, generator=None: (order[:, :V], order[:, V:])
    centers = []
    hook = encoder.group_divider.register_forward_hook(lambda m, a, out: centers.append(out[1]))
    try:
        out = model(points)
        out['loss'].backward()
    finally:
        hook.remove()
        del encoder.patchify, model.view_masks
    return {k: v.detach() for k, v in out['terms'].items()}, centers[0]


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def compare(mode, config, released, args):
    torch.manual_seed(args.seed)
    cfg = config.model
    ours = build_model(cfg).double()
    perturb(ours, args.seed)
    theirs = released.MaskClu(their_config(cfg), device='cpu').double()
    incompatible = theirs.load_state_dict(export_state_dict(ours.state_dict()), strict=False)
    ours.train(mode == 'train')
    theirs.train(mode == 'train')
    points = clouds(args.batch, config.npoints, args.seed)
    starts = torch.randint(0, points.shape[1], (args.batch,), generator=torch.Generator().manual_seed(args.seed))
    their_terms, mask, their_centers = run_theirs(released, theirs, points, args.seed)
    our_terms, our_centers = run_ours(ours, points, starts, mask)
    print(f'\n== {mode} mode (float64, B={args.batch}, G={cfg.num_group}, K={cfg.losses.assign.P}) ==')
    print(f'weights: missing in theirs {incompatible.missing_keys}, unused {incompatible.unexpected_keys}')
    print(f'same FPS centers: {torch.equal(our_centers, their_centers)}; masked per cloud: {int(mask[0].sum())}')
    print(f"{'term':<10} {'ours':>22} {'theirs':>22} {'rel. diff':>10}")
    worst = 0.0
    for name in TERMS:
        diff = relative(our_terms[name], their_terms[name])
        worst = max(worst, diff)
        print(f'{name:<10} {our_terms[name].item():22.15g} {their_terms[name].item():22.15g} {diff:10.2e}')
    their_params = dict(theirs.named_parameters())
    grads = {name: (p.grad, their_params[name].grad) for name, p in ours.named_parameters()
             if name.startswith('MAE_encoder.') and p.grad is not None}
    largest = max(float(q.abs().max()) for _, q in grads.values())
    num = sum(float((g - q).square().sum()) for g, q in grads.values())
    den = sum(float(q.square().sum()) for _, q in grads.values())
    per_tensor = [(relative(g, q), name) for name, (g, q) in grads.items() if q.abs().max() > 1e-9 * largest]
    top = max(per_tensor)
    print(f'encoder gradients: overall {num ** 0.5 / den ** 0.5:.2e} relative; worst tensor {top[0]:.2e} ({top[1]}); '
          f'{len(per_tensor)} of {len(grads)} tensors compared')
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--released', required=True, help='checkout or git directory of Amazingren/maskclu')
    parser.add_argument('--config', default='cfgs/pretrain_released.yaml')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--modes', nargs='+', default=['eval', 'train'], choices=['eval', 'train'])
    parser.add_argument('--opts', nargs='*', default=[], help='overrides of our config, key.sub=value')
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    path = os.path.join(ROOT, args.config)
    config = validate_config(load_config(path, args.opts), args.config)
    config.model.transformer_config.drop_path_rate = 0.0  # stochastic depth is not reproducible across codes
    released = import_released(released_source(args.released))
    worst = max(compare(mode, config, released, args) for mode in args.modes)
    print(f'\nworst term relative difference: {worst:.2e}')


if __name__ == '__main__':
    main()
