"""The point-cloud ViT backbone shared by pre-training (``MAE_encoder``) and every downstream task."""
import torch
from torch import nn
from torch.profiler import record_function

from models.build import check_choice
from models.pos_embed import mlp_pos_embed
from models.tokenizer import PatchEmbedding, PatchGrouper
from models.transformer import TransformerEncoder
from models.weight_init import init_vit_weights
from utils.checkpoint_interop import OPEN, READABLE_KEYS
from utils.config import ConfigError, Typed

# The backbone's top-level module and parameter names: what ``freeze_backbone`` freezes.
BACKBONE = ('group_divider', 'encoder', 'pos_embed', 'blocks', 'norm', 'cls_token', 'cls_pos')


class PointEncoder(nn.Module):
    """Patchify, embed, optional cls token, transformer blocks, final LayerNorm.

    State-dict names follow Point-MAE: ``encoder.first_conv.*``, ``encoder.second_conv.*``
    (patch embedding), ``pos_embed.*`` (MLP on centers, added before every block),
    ``blocks.blocks.{i}.*``, ``norm.*`` and, with ``cls_token=True``, ``cls_token`` and
    ``cls_pos`` (1, 1, C). Inside the pre-training model this module is ``MAE_encoder``;
    ``PointTransformer`` (classification) subclasses it, so the same names appear unprefixed.

    The steps are separate methods so callers can tokenize once and encode several masked
    views: ``patchify`` (B, N, 3) -> neighborhood (B, G, S, 3), center (B, G, 3);
    ``embed`` -> tokens (B, G, C); ``encode`` on any T of the tokens -> cls (B, C) or None,
    patches (B, T, C). ``forward`` returns the global feature concat(cls, max) (B, 2C).

    ``freeze_backbone()`` (the frozen protocols of every downstream task: classification's
    MLP-Linear / MLP-3, part segmentation's ``frozen``) keeps the backbone bit-identical: no
    gradients, eval mode (BatchNorm statistics, drop path) whatever ``train()`` is called with,
    and ``frozen_context()`` to run it under ``no_grad``.
    """

    def __init__(self, trans_dim=384, depth=12, num_heads=6, drop_path_rate=0.1, num_group=64, group_size=32,
                 point_channels=4, fps_random_start=False, cls_token=True):
        super().__init__()
        self.backbone_frozen = False
        self.fps_random_start = fps_random_start
        self.group_divider = PatchGrouper(num_group, group_size)
        self.encoder = PatchEmbedding(trans_dim, point_channels)
        self.pos_embed = mlp_pos_embed(trans_dim)
        self.blocks = TransformerEncoder(trans_dim, depth, num_heads, drop_path_rate)
        self.norm = nn.LayerNorm(trans_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, trans_dim)) if cls_token else None
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, trans_dim)) if cls_token else None
        self.apply(init_vit_weights)
        if cls_token:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.cls_pos, std=0.02)

    # ------------------------------------------------------------------ freezing
    def backbone_modules(self):
        """The backbone's child modules (``BACKBONE`` names)."""
        return [m for name, m in self.named_children() if name in BACKBONE]

    def backbone_parameters(self):
        """The backbone's parameters (``BACKBONE`` names), cls token and position included."""
        return [p for name, p in self.named_parameters() if name.split('.')[0] in BACKBONE]

    def freeze_backbone(self, frozen=True):
        """Freeze (or unfreeze) the backbone: ``requires_grad`` off and eval mode kept by ``train()``."""
        self.backbone_frozen = bool(frozen)
        for param in self.backbone_parameters():
            param.requires_grad_(not self.backbone_frozen)
        return self.train(self.training)

    def train(self, mode=True):
        """As ``nn.Module.train``; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.backbone_frozen:
            for module in self.backbone_modules():
                module.eval()
        return self

    def frozen_context(self):
        """Grad mode for running the backbone: disabled when it is frozen (no graph kept)."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen)

    def patchify(self, points, generator=None):
        """points (B, N, 3) -> neighborhood (B, G, S, 3), center (B, G, 3).

        FPS starts at point 0, or (``fps_random_start`` and training) at a random point per
        sample drawn from ``generator``.
        """
        start = 0
        if self.fps_random_start and self.training:
            B, N, _ = points.shape
            gen_device = generator.device if generator is not None else points.device
            start = torch.randint(N, (B,), generator=generator, device=gen_device).to(points.device)
        return self.group_divider(points, start)

    def embed(self, neighborhood):
        """neighborhood (B, G, S, 3) -> patch tokens (B, G, C)."""
        return self.encoder(neighborhood)

    def _prepend_cls(self, tokens, pos):
        if self.cls_token is None:
            return tokens, pos
        B = tokens.shape[0]
        return (torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1),
                torch.cat([self.cls_pos.expand(B, -1, -1), pos], dim=1))

    def encode(self, tokens, center, norm=True):
        """tokens (B, T, C), their centers (B, T, 3) -> cls (B, C) or None, patches (B, T, C).

        T is whatever subset the caller passes (V visible patches, or all G). ``norm=False``: the
        last block's outputs without the final LayerNorm (the released code's g1 target).
        """
        x = self.blocks(*self._prepend_cls(tokens, self.pos_embed(center)))
        x = self.norm(x) if norm else x
        return (None, x) if self.cls_token is None else (x[:, 0], x[:, 1:])

    def encode_blocks(self, tokens, center, after_blocks=(4, 8, 12)):
        """tokens (B, T, C), center (B, T, 3) -> list of patch features (B, T, C), one per entry
        of ``after_blocks`` (1-based block counts), each through the final LayerNorm."""
        outputs = self.blocks(*self._prepend_cls(tokens, self.pos_embed(center)), after_blocks=after_blocks)
        skip = 0 if self.cls_token is None else 1
        return [self.norm(x)[:, skip:] for x in outputs]

    @staticmethod
    def global_feature(cls, patches):
        """cls (B, C), patches (B, T, C) -> concat(cls, max over the T patches) (B, 2C).

        Without a cls token (``cls`` None, Point-MAE pre-training): concat(mean, max) (B, 2C).
        """
        first = patches.mean(dim=1) if cls is None else cls
        return torch.cat([first, patches.amax(dim=1)], dim=-1)

    def tokenize(self, points, generator=None):
        """points (B, N, 3) -> neighborhood (B, G, S, 3), center (B, G, 3), tokens (B, G, C)."""
        with record_function('phase/patchify'):
            neighborhood, center = self.patchify(points, generator)
        with record_function('phase/embedding'):
            tokens = self.embed(neighborhood)
        return neighborhood, center, tokens

    def forward(self, points, generator=None):
        """points (B, N, 3) -> global feature concat(cls, max over all G patches) (B, 2C).

        No masking; FPS starts at point 0 unless ``fps_random_start`` and training.
        """
        _, center, tokens = self.tokenize(points, generator)
        with record_function('phase/encoder'):
            cls, patches = self.encode(tokens, center)
        return self.global_feature(cls, patches)

    def block_features(self, points, after_blocks=(4, 8, 12), generator=None):
        """points (B, N, 3) -> (list of (B, G, C) per entry of ``after_blocks``, center (B, G, 3)).

        For dense tasks (part segmentation: blocks 4, 8, 12 concatenated to 3C per patch).
        """
        _, center, tokens = self.tokenize(points, generator)
        with record_function('phase/encoder'):
            return self.encode_blocks(tokens, center, after_blocks), center


# PointEncoder arguments that downstream configs (Point-MAE's flat finetune schema) carry as keys.
BACKBONE_ARGS = ('trans_dim', 'depth', 'num_heads', 'drop_path_rate', 'num_group', 'group_size', 'point_channels',
                 'fps_random_start', 'cls_token')


def readable_keys(**defaults):
    """``CONFIG_KEYS`` entries of a downstream model for the backbone keys a checkpoint shows
    (``READABLE_KEYS``): each an int (default from ``defaults``) or ``auto``, read from the
    checkpoint by the runner (``utils.checkpoint_interop.fill_open_keys``) before the model is built."""
    return {k: Typed(defaults[k], int, str) for k in READABLE_KEYS}


def open_keys(cfg):
    """The backbone keys of ``cfg`` left ``auto`` (to be read from a checkpoint)."""
    return [k for k in READABLE_KEYS if cfg.get(k) == OPEN]


def default_open_keys(cfg):
    """``(cfg, filled)``: keys left ``auto`` set to the model class's ``CONFIG_KEYS`` defaults (no
    checkpoint to read them from: from scratch, benchmarks) and the ``{key: value}`` filled."""
    from models.build import model_class
    config_keys = model_class(cfg).CONFIG_KEYS
    filled = {k: config_keys[k].default for k in open_keys(cfg)}
    return {**cfg, **filled}, filled


def require_filled(cfg, hint):
    """A ConfigError naming the first key still ``auto`` when a model is built (``hint``: how to
    fill it, e.g. the flag that gives the checkpoint)."""
    if open_keys(cfg):
        raise ConfigError(f"model.{open_keys(cfg)[0]}: {OPEN} is read from a checkpoint ({hint}); "
                          f"with none given set it explicitly")


def check_backbone_config(cfg, where='model'):
    """Validate the backbone keys of a downstream model's checked config: each ``READABLE_KEYS``
    key an integer or ``auto`` (the rest is checked once no key is left ``auto``),
    ``point_channels`` 3 | 4 and ``encoder_dims`` equal to ``trans_dim``; ConfigErrors name
    ``where`` and the key."""
    for key in READABLE_KEYS:
        if isinstance(cfg[key], str) and cfg[key] != OPEN:
            raise ConfigError(f"{where}.{key}: expected an integer or {OPEN} (read from the checkpoint), "
                              f"found {cfg[key]!r}")
    if open_keys(cfg):
        return cfg
    check_choice(cfg['point_channels'], (3, 4), f'{where}.point_channels')
    if cfg['encoder_dims'] != cfg['trans_dim']:
        raise ConfigError(f"{where}: encoder_dims ({cfg['encoder_dims']}) must equal "
                          f"trans_dim ({cfg['trans_dim']})")
    return cfg


def backbone_kwargs(cfg):
    """``PointEncoder`` keyword arguments from a downstream config's backbone keys (those it has)."""
    return {k: cfg[k] for k in BACKBONE_ARGS if k in cfg}
