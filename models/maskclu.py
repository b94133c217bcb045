"""MaskClu pre-training model (masked clustering prediction) and the Point-MAE baseline."""
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from utils.transforms import build_transforms, check_transforms_config
from extensions import gather_points
from models.build import MODELS, check_choice
from models.decoder import TransformerDecoder
from models.encoder import PointEncoder
from models.losses import (AssignLoss, CenterLoss, ClusterHead, ConCluGlobalLoss, PaperGlobalLoss,
                           ReconstructionLoss, ReleasedGlobalLoss, soft_centers)
from models.losses.assign import pairwise_sq_dist
from models.masking import make_mask, num_masked
from models.pos_embed import mlp_pos_embed, sincos_pos_embed
from models.sinkhorn import at_least_float32
from models.weight_init import init_vit_weights
from utils.config import ConfigError, check_keys

TRANSFORMER_KEYS = {
    'mask_ratio': 0.6, 'mask_type': 'rand', 'trans_dim': 384, 'encoder_dims': 384, 'depth': 12,
    'drop_path_rate': 0.1, 'num_heads': 6, 'decoder_depth': 4, 'decoder_num_heads': 6,
}

# Defaults: the paper's objective (method 2.2-2.4); the keys of the other variants beside them.
LOSS_KEYS = {
    'assign': {'weight': 1.0, 'head': 'graph', 'P': 24, 'tau': 0.1, 'tau_s': 0.5, 'eps': 0.01, 'iters': 100,
               'tol': None, 'patches': 'all', 'hidden': 128, 'graph_k': 12, 'pairing': 'cross', 'cost': 'sq',
               'normalise': 'rows'},
    'center': {'weight': 1.0, 'type': 'chamfer', 'sigma': 0.1, 'reduction': 'mean'},
    'global': {'type': 'paper', 'weight_contrast': 1.0, 'weight_con': 1.0, 'weight_clu': 1.0, 'weight_orth': 0.01,
               'weight_g1': 1.0, 'weight_g2': 1.0, 'target_norm': True, 'J': 32, 'tau': 0.1, 'eps': 0.05,
               'iters': 3, 'proj_hidden': 1024, 'proj_dim': 256, 'pred_hidden': 512},
    'reconstruction': {'weight': 0.0, 'type': 'cdl2'},
}

GLOBAL_TERMS = {'paper': ('contrast',), 'conclu': ('con', 'clu', 'orth'), 'released': ('g1', 'g2')}
GLOBAL_VIEWS = {'paper': 2, 'conclu': 2, 'released': 1}
DECODER_TERMS = ('assign', 'center', 'reconstruction', 'global_g2')


@MODELS.register('MaskClu')
class MaskClu(nn.Module):
    """Masked clustering prediction pre-training (method section 2).

    ``out = model(points (B, N, 3), generator=None)`` -> ``{'loss': weighted total (scalar),
    'terms': {name: unweighted scalar}}`` with the active terms among ``assign``, ``center``,
    ``global_contrast`` (global ``paper``), ``global_con``, ``global_clu``, ``global_orth``
    (global ``conclu``), ``global_g1``,
    ``global_g2`` (global ``released``) and ``reconstruction``. ``generator`` (a
    torch.Generator, any device) draws the FPS start points and the masks, so a seed
    reproduces them (and the ``view_transforms`` draws). A term whose weight is 0 is neither
    built nor computed.

    Config (``CONFIG_KEYS``; unknown keys are errors, missing ones take these defaults):
    ``group_size`` S, ``num_group`` G; ``point_channels`` 3 (xyz) | 4 (xyz + length, released);
    ``fps_random_start`` (random first FPS point in training); ``decoder_pos_embed`` sincos
    (released) | mlp (Point-MAE); ``dense_tokens`` decoder (the paper: the dense set H is the
    decoder output at all G positions) | mixed (released: encoder output at the visible patches,
    decoder output at the masked ones); ``decoder_extra_norm`` (released: a second LayerNorm
    ``norm`` after the decoder's own, on the decoder outputs the losses use); ``views`` 2 (two
    masked views, for global ``paper`` and ``conclu``) | 1 (global ``released`` or none);
    ``view_transforms`` (list of ``{NAME: <utils.transforms NAME>, <kwargs>}``; empty, the
    default: every view is the same tokenized cloud, only the masks differ; else each view is
    an independently augmented copy of the cloud, and the stacked views are tokenized at once);
    ``transformer_config`` Point-MAE's keys (mask_ratio, mask_type rand | block, trans_dim,
    encoder_dims (= trans_dim), depth, drop_path_rate, num_heads, decoder_depth,
    decoder_num_heads; mask_ratio 0 = no masking, all G patches visible, allowed only when no
    active term needs the decoder and, with 2 views, when ``view_transforms`` makes them differ);
    ``losses``:

    * ``assign``: weight, head mlp | graph, P clusters, tau (tau_a), tau_s, eps, iters (Sinkhorn
      iterations; the maximum with tol), tol (released stopping rule, no host sync) or null,
      patches all | masked, hidden (head width), graph_k (neighbours of the graph head), pairing
      cross (other view's centroids) | self, cost sq | dist, normalise rows | columns (released
      reduction); see ``AssignLoss``;
    * ``center``: weight, type chamfer | welsch, sigma and reduction mean | released (welsch);
      uses the assign head's centers; see ``CenterLoss``;
    * ``global``: type paper | conclu | released, weight_contrast (paper), weight_con,
      weight_clu, weight_orth (conclu), weight_g1, weight_g2, target_norm (released: the g1 target
      after the encoder's final LayerNorm or, as released, before it), J prototypes, tau
      (tau_g), eps, iters (batch Sinkhorn), proj_hidden, proj_dim, pred_hidden;
    * ``reconstruction``: weight, type cdl2 | cdl1.

    Modules (state-dict prefixes): ``MAE_encoder`` (``PointEncoder`` with cls token; extract
    it with ``encoder_state_dict()``), ``mask_token``, ``decoder_pos_embed``, ``MAE_decoder``,
    ``norm`` (with ``decoder_extra_norm``), ``cluster_head`` (assign/center), ``global_loss``
    (conclu projector/predictor/prototypes),
    ``reconstruction_loss.head`` (Point-MAE's ``increase_dim.0``).

    Profiler ranges: ``phase/augment`` (with ``view_transforms``), ``phase/patchify``,
    ``phase/embedding``, ``phase/encoder``, ``phase/decoder``, ``phase/heads`` (with
    ``phase/sinkhorn`` nested).
    """

    CONFIG_KEYS = {
        'NAME': 'MaskClu', 'group_size': 32, 'num_group': 64, 'point_channels': 4, 'fps_random_start': True,
        'decoder_pos_embed': 'sincos', 'dense_tokens': 'decoder', 'decoder_extra_norm': False, 'views': 2,
        'view_transforms': [], 'transformer_config': TRANSFORMER_KEYS,
        'losses': LOSS_KEYS,
    }
    WITH_CLS = True

    def __init__(self, config):
        super().__init__()
        self.config = self.check_config(config)
        cfg = self.maskclu_form(self.config)
        t, losses = cfg['transformer_config'], cfg['losses']
        self.views, self.mask_ratio, self.mask_type = cfg['views'], t['mask_ratio'], t['mask_type']
        self.dense_tokens, self.target_norm = cfg['dense_tokens'], losses['global']['target_norm']
        self.view_transforms = build_transforms(cfg['view_transforms']) if cfg['view_transforms'] else None
        self.term_weights = active_term_weights(losses)
        self.MAE_encoder = PointEncoder(t['trans_dim'], t['depth'], t['num_heads'], t['drop_path_rate'],
                                        cfg['num_group'], cfg['group_size'], cfg['point_channels'],
                                        cfg['fps_random_start'], cls_token=self.WITH_CLS)
        if self.needs_decoder:
            self.build_decoder(t, cfg['decoder_pos_embed'], cfg['decoder_extra_norm'])
        self.build_loss_terms(losses, t['trans_dim'], cfg['group_size'])

    # ------------------------------------------------------------------ construction
    @classmethod
    def check_config(cls, config, where='model'):
        """Keys checked against ``CONFIG_KEYS`` (defaults filled) and choices validated."""
        cfg = check_keys(dict(config), MaskClu.CONFIG_KEYS, where)
        cfg['view_transforms'] = check_transforms_config(cfg['view_transforms'], f'{where}.view_transforms')
        validate_config(cfg, where)
        return cfg

    @staticmethod
    def maskclu_form(cfg):
        """The checked config in MaskClu's schema (the identity here)."""
        return cfg

    @property
    def needs_decoder(self):
        return bool(decoder_terms(self.term_weights))

    def build_decoder(self, t, pos_embed, extra_norm=False):
        dim = t['trans_dim']
        self.norm = nn.LayerNorm(dim) if extra_norm else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos_embed = sincos_pos_embed(dim) if pos_embed == 'sincos' else mlp_pos_embed(dim)
        self.MAE_decoder = TransformerDecoder(dim, t['decoder_depth'], t['decoder_num_heads'], t['drop_path_rate'])

    def build_loss_terms(self, losses, dim, group_size):
        w, a, g = self.term_weights, losses['assign'], losses['global']
        self.cluster_head = self.assign_loss = self.center_loss = None
        self.global_loss = self.reconstruction_loss = None
        if 'assign' in w or 'center' in w:
            self.cluster_head = ClusterHead(dim, a['P'], a['tau'], a['head'], a['hidden'], a['graph_k'])
        if 'assign' in w:
            self.assign_loss = AssignLoss(a['tau_s'], a['eps'], a['iters'], a.get('tol'), a['patches'], a['pairing'],
                                          a['cost'], a['normalise'])
        if 'center' in w:
            c = losses['center']
            self.center_loss = CenterLoss(c['sigma'], c['reduction'], c['type'])
        terms = [t for t in GLOBAL_TERMS[g['type']] if f'global_{t}' in w]
        if terms and g['type'] == 'paper':
            self.global_loss = PaperGlobalLoss()
        elif terms and g['type'] == 'conclu':
            self.global_loss = ConCluGlobalLoss(2 * dim, terms, g['J'], g['tau'], g['eps'], g['iters'],
                                                g['proj_hidden'], g['proj_dim'], g['pred_hidden'])
        elif terms:
            self.global_loss = ReleasedGlobalLoss(terms)
        if 'reconstruction' in w:
            self.reconstruction_loss = ReconstructionLoss(dim, group_size, losses['reconstruction']['type'])
        for head in (self.cluster_head, self.global_loss, self.reconstruction_loss):
            if head is not None:
                head.apply(init_vit_weights)

    def global_features(self, points, generator=None):
        """points (B, N, 3) -> the encoder's global feature of the unmasked cloud (B, 2C)."""
        return self.MAE_encoder(points, generator)

    def encoder_state_dict(self):
        """The backbone's weights without the ``MAE_encoder.`` prefix (load into PointTransformer)."""
        return self.MAE_encoder.state_dict()

    # ------------------------------------------------------------------ forward
    def forward(self, points, generator=None):
        neighborhood, center_v, tokens_v = self.view_tokens(points, generator)
        vis_idx, mask_idx = self.view_masks(center_v, generator)
        center_vis, center_mask = select(center_v, vis_idx), select(center_v, mask_idx)
        with record_function('phase/encoder'):
            cls, x_vis = self.MAE_encoder.encode(select(tokens_v, vis_idx), center_vis)
            target = self.target_features(tokens_v, center_v) if 'global_g1' in self.term_weights else None
        dense = x_mask = None
        if self.needs_decoder:
            with record_function('phase/decoder'):
                decoded = self.decode(x_vis, center_vis, center_mask)
            x_mask = decoded[:, decoded.shape[1] - center_mask.shape[1]:]
            dense = decoded if self.dense_tokens == 'decoder' else torch.cat([x_vis, x_mask], dim=1)
        with record_function('phase/heads'):
            terms = self.dense_terms(dense, center_vis, center_mask)
            terms.update(self.global_terms(cls, x_vis, x_mask, target))
            if self.reconstruction_loss is not None:
                target_points = masked_neighborhoods(neighborhood, mask_idx)
                terms['reconstruction'] = self.reconstruction_loss(x_mask, target_points)
        loss = sum(self.term_weights[name] * value for name, value in terms.items())
        return {'loss': loss, 'terms': terms}

    def view_tokens(self, points, generator=None):
        """points (B, N, 3) -> neighborhood (R, G, S, 3), center (views*B, G, 3), tokens (views*B, G, C).

        View v of sample b is row v*B + b. Without ``view_transforms`` the cloud is tokenized
        once and its center and tokens are repeated per view (R = B); with them, ``views``
        independently augmented copies (views*B, N', 3) are tokenized at once (R = views*B).
        """
        if self.view_transforms is None:
            neighborhood, center, tokens = self.MAE_encoder.tokenize(points, generator)
            return (neighborhood, *stack_views(self.views, center, tokens))
        with record_function('phase/augment'):
            augmented = self.view_transforms(points.repeat(self.views, 1, 1), generator)
        return self.MAE_encoder.tokenize(augmented, generator)

    def view_masks(self, center, generator=None):
        """center (views*B, G, 3) -> vis_idx (views*B, V), mask_idx (views*B, M); (None, None)
        when ``mask_ratio`` is 0 (no masking: every patch is visible)."""
        if self.mask_ratio == 0:
            return None, None
        return make_mask(center, self.mask_ratio, self.mask_type, generator)

    @torch.no_grad()
    def target_features(self, tokens, center):
        """Unmasked pass of the encoder on the masked pass's tokens, without autograd graph.

        tokens (B, G, C), center (B, G, 3) -> max over the G patch outputs (B, C), after the
        encoder's final LayerNorm (``global.target_norm: true``) or, as the released code takes
        it, the last block's outputs before that norm (``false``). Profiled as ``phase/target``
        (inside ``phase/encoder``).
        """
        with record_function('phase/target'):
            _, patches = self.MAE_encoder.encode(tokens, center, norm=self.target_norm)
            return patches.amax(dim=1)

    def decode(self, x_vis, center_vis, center_mask):
        """x_vis (R, V, C), center_vis (R, V, 3), center_mask (R, M, 3) -> decoder outputs in the order
        [visible, masked]: all G (R, G, C) with ``dense_tokens: decoder``, else the M masked (R, M, C);
        through the extra LayerNorm ``norm`` when the config has it."""
        R, V, _ = center_vis.shape
        M = center_mask.shape[1]
        pos = self.decoder_pos_embed(torch.cat([center_vis, center_mask], dim=1))
        x = torch.cat([x_vis, self.mask_token.expand(R, M, -1)], dim=1)
        out = self.MAE_decoder(x, pos, V + M if self.dense_tokens == 'decoder' else M)
        return out if self.norm is None else self.norm(out)

    def dense_terms(self, dense, center_vis, center_mask):
        """``assign`` and ``center`` on the dense set H (R, G, C) (``dense_tokens``: the decoder at
        all G, or [encoder at visible, decoder at masked]), aligned with X = [visible centers,
        masked centers] (R, G, 3); R = views * B."""
        if self.cluster_head is None:
            return {}
        x = torch.cat([center_vis, center_mask], dim=1)
        logits = self.cluster_head(dense, x)
        centers = soft_centers(F.softmax(at_least_float32(logits), dim=-1), x)
        sq_dist = pairwise_sq_dist(at_least_float32(x), centers)  # (R, G, P), shared by both terms
        terms = {}
        if self.assign_loss is not None:
            terms['assign'] = self.assign_loss(logits, x, centers, num_visible=center_vis.shape[1],
                                               sq_dist=sq_dist.detach(), views=self.views)
        if self.center_loss is not None:
            terms['center'] = self.center_loss(x, centers, num_views=self.views, sq_dist=sq_dist)
        return terms

    def global_terms(self, cls, x_vis, x_mask, target):
        """``global_*`` terms: the paper's on the two views' cls (2B, C) and visible outputs
        (2B, V, C), conclu on the two views' concat(cls, max) (B, 2C) each, or the released pair on
        cls (B, C), the target (B, C) and the masked outputs (B, M, C)."""
        if self.global_loss is None:
            return {}
        if isinstance(self.global_loss, PaperGlobalLoss):
            return self.global_loss(cls, x_vis)
        if isinstance(self.global_loss, ConCluGlobalLoss):
            return self.global_loss(*PointEncoder.global_feature(cls, x_vis).chunk(2))
        return self.global_loss(cls, target, x_mask)


def select(x, idx):
    """x (B, G, D), idx (B, K) -> the indexed rows (B, K, D); x itself when idx is None (all G)."""
    return x if idx is None else gather_points(x, idx)


def stack_views(views, center, tokens):
    """Repeat center (B, G, 3) and tokens (B, G, C) for ``views`` masked views: view v of sample
    b is row v*B + b of the returned (views*B, G, 3) and (views*B, G, C)."""
    if views == 1:
        return center, tokens
    return center.repeat(views, 1, 1), tokens.repeat(views, 1, 1)


def masked_neighborhoods(neighborhood, mask_idx):
    """neighborhood (R, G, S, 3) with R = B (shared by the views) or views*B, mask_idx
    (views*B, M) -> the masked patches (views*B, M, S, 3)."""
    R, G, S, _ = neighborhood.shape
    flat = neighborhood.reshape(R, G, S * 3).repeat(mask_idx.shape[0] // R, 1, 1)
    return gather_points(flat, mask_idx).reshape(mask_idx.shape[0], mask_idx.shape[1], S, 3)


def active_term_weights(losses):
    """{term name: weight} for every term with a non-zero weight, in logging order."""
    g = losses['global']
    weights = {'assign': losses['assign']['weight'], 'center': losses['center']['weight']}
    weights.update({f'global_{t}': g[f'weight_{t}'] for t in GLOBAL_TERMS[g['type']]})
    weights['reconstruction'] = losses['reconstruction']['weight']
    return {name: float(w) for name, w in weights.items() if w}


def decoder_terms(term_weights):
    """The names among ``term_weights`` that need the decoder (hence masked patches)."""
    return [name for name in DECODER_TERMS if name in term_weights]


def validate_config(cfg, where='model'):
    """Check the choices and their combinations; errors name ``where`` and the key."""
    t, losses = cfg['transformer_config'], cfg['losses']
    choices = (('point_channels', cfg, (3, 4)), ('decoder_pos_embed', cfg, ('sincos', 'mlp')),
               ('dense_tokens', cfg, ('decoder', 'mixed')), ('decoder_extra_norm', cfg, (False, True)),
               ('views', cfg, (1, 2)), ('transformer_config.mask_type', t, ('rand', 'block')),
               ('losses.assign.head', losses['assign'], ('mlp', 'graph')),
               ('losses.assign.patches', losses['assign'], ('all', 'masked')),
               ('losses.assign.pairing', losses['assign'], ('cross', 'self')),
               ('losses.assign.cost', losses['assign'], ('sq', 'dist')),
               ('losses.assign.normalise', losses['assign'], ('rows', 'columns')),
               ('losses.center.type', losses['center'], ('chamfer', 'welsch')),
               ('losses.center.reduction', losses['center'], ('mean', 'released')),
               ('losses.global.target_norm', losses['global'], (True, False)),
               ('losses.global.type', losses['global'], tuple(GLOBAL_TERMS)),
               ('losses.reconstruction.type', losses['reconstruction'], ('cdl2', 'cdl1')))
    for path, node, allowed in choices:
        check_choice(node[path.rsplit('.', 1)[-1]], allowed, f'{where}.{path}')
    if t['encoder_dims'] != t['trans_dim']:
        raise ConfigError(f"{where}.transformer_config: encoder_dims ({t['encoder_dims']}) must equal "
                          f"trans_dim ({t['trans_dim']})")
    validate_masking(cfg, where)
    if min(losses['assign']['iters'], losses['global']['iters']) < 1:
        raise ConfigError(f'{where}.losses: Sinkhorn iters must be >= 1')
    validate_terms(cfg, where)


def validate_masking(cfg, where):
    """mask_ratio 0 (no masking) needs no decoder term and, with 2 views, view transforms that
    make the views differ; any other ratio must mask at least one and leave at least one patch."""
    ratio, G = cfg['transformer_config']['mask_ratio'], cfg['num_group']
    if ratio == 0:
        needing = decoder_terms(active_term_weights(cfg['losses']))
        if needing:
            raise ConfigError(f"{where}.transformer_config.mask_ratio: 0 (no masking) leaves no masked patch for "
                              f"the decoder, which the active terms {', '.join(needing)} need; set their weights "
                              f"to 0 or mask patches")
        if cfg['views'] > 1 and not cfg['view_transforms']:
            raise ConfigError(f"{where}.view_transforms: with mask_ratio 0 and no view transforms the "
                              f"{cfg['views']} views are identical; list the augmentations that make them differ")
    elif not 0 < num_masked(ratio, G) < G:
        raise ConfigError(f"{where}.transformer_config.mask_ratio: {ratio} must be 0 (no masking) or mask at "
                          f"least one and leave at least one of the {G} patches")


def validate_terms(cfg, where):
    """At least one active term, and the number of views the global term needs."""
    losses = cfg['losses']
    terms = active_term_weights(losses)
    if not terms:
        raise ConfigError(f'{where}.losses: every term has weight 0; nothing to train')
    needed_views = GLOBAL_VIEWS[losses['global']['type']]
    if any(name.startswith('global_') for name in terms) and cfg['views'] != needed_views:
        raise ConfigError(f"{where}.views: global type {losses['global']['type']} needs views: {needed_views}, "
                          f"got {cfg['views']}")
    if 'assign' in terms and losses['assign']['pairing'] == 'cross' and cfg['views'] != 2:
        raise ConfigError(f"{where}.losses.assign.pairing: cross pairs two views' centroids and needs views: 2, "
                          f"got {cfg['views']} (use pairing: self)")
    if 'assign' in terms and losses['assign'].get('tol') is not None and not losses['assign']['tol'] > 0:
        raise ConfigError(f"{where}.losses.assign.tol: must be a positive number or null, got "
                          f"{losses['assign']['tol']}")


@MODELS.register('Point_MAE')
class Point_MAE(MaskClu):
    """Point-MAE baseline: one masked view, Chamfer reconstruction only, no cls token.

    Accepts Point-MAE's own config (``group_size``, ``num_group``, ``loss`` cdl2 | cdl1,
    ``transformer_config``) plus ``point_channels`` (default 3), ``fps_random_start`` (default
    off) and ``decoder_pos_embed`` (default mlp); its state dict matches Point-MAE's
    (``MAE_encoder.*`` without cls token, ``mask_token``, ``decoder_pos_embed.*``,
    ``MAE_decoder.*``), except the reconstruction head, ``reconstruction_loss.head.*`` here
    and ``increase_dim.0.*`` there. Terms: ``reconstruction``.
    """

    CONFIG_KEYS = {
        'NAME': 'Point_MAE', 'group_size': 32, 'num_group': 64, 'loss': 'cdl2', 'point_channels': 3,
        'fps_random_start': False, 'decoder_pos_embed': 'mlp', 'transformer_config': TRANSFORMER_KEYS,
    }
    WITH_CLS = False

    @classmethod
    def check_config(cls, config, where='model'):
        """Point-MAE's schema checked (defaults filled); the model it implies is validated too."""
        cfg = check_keys(dict(config), Point_MAE.CONFIG_KEYS, where)
        check_choice(cfg['loss'], ('cdl2', 'cdl1'), f'{where}.loss')
        MaskClu.check_config(cls.maskclu_form(cfg), where)
        return cfg

    @staticmethod
    def maskclu_form(cfg):
        """Point-MAE's config as MaskClu's: one view, only ``reconstruction`` (weight 1, ``loss``),
        the decoder returning the masked outputs only (``dense_tokens: mixed``)."""
        out = {k: copy.deepcopy(v) for k, v in cfg.items() if k != 'loss'}
        out.update(NAME='MaskClu', views=1, dense_tokens='mixed', losses={
            'assign': {'weight': 0.0}, 'center': {'weight': 0.0},
            'global': {'weight_contrast': 0.0, 'weight_con': 0.0, 'weight_clu': 0.0, 'weight_orth': 0.0},
            'reconstruction': {'weight': 1.0, 'type': cfg['loss']}})
        return check_keys(out, MaskClu.CONFIG_KEYS, 'model')
