"""Pre-norm ViT blocks (timm layout and state-dict names) and the Point-MAE transformer encoder."""
import torch.nn.functional as F
from torch import nn


def drop_path_rates(rate, depth):
    """Stochastic-depth rate per block, rising linearly from 0 to ``rate`` over ``depth`` blocks."""
    return [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p``.

    x (B, T, C) -> (B, T, C); surviving samples are scaled by 1/(1-p). Identity in eval.
    """

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f'p={self.p}'


class Mlp(nn.Module):
    """Token MLP: fc1 (C -> hidden), GELU, fc2 (hidden -> C). x (B, T, C) -> (B, T, C)."""

    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention with fused scaled-dot-product attention.

    x (B, T, C) -> (B, T, C); ``qkv`` is one Linear(C -> 3C) (no bias by default), ``proj``
    Linear(C -> C), as in timm / Point-MAE so their weights load.
    """

    def __init__(self, dim, num_heads, qkv_bias=False, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'width {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(Mlp(LN(x))).

    x (B, T, C) -> (B, T, C). Sub-module names norm1, attn, norm2, mlp (timm / Point-MAE).
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """A stack of ``depth`` blocks; the position embedding is added before every block.

    x, pos (B, T, C) -> (B, T, C) (no final norm), or with ``after_blocks`` (1-based block
    counts, e.g. (4, 8, 12)) the list of outputs after those blocks.
    """

    def __init__(self, dim, depth, num_heads, drop_path_rate=0.0, mlp_ratio=4.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=mlp_ratio, drop_path=p)
                                    for p in drop_path_rates(drop_path_rate, depth))

    def forward(self, x, pos, after_blocks=None):
        outputs = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x + pos)
            if after_blocks is not None and i in after_blocks:
                outputs.append(x)
        return x if after_blocks is None else outputs
