"""Point-MAE's light decoder: blocks over visible + mask tokens, LayerNorm on the masked outputs."""
from torch import nn

from models.transformer import Block, drop_path_rates
from models.weight_init import init_xavier_weights


class TransformerDecoder(nn.Module):
    """``depth`` pre-norm blocks (position added before each) and a final LayerNorm.

    x, pos (B, G, C) with the M mask tokens last -> (B, M, C): the normalised outputs of the
    last ``num_masked`` tokens. State-dict names ``blocks.{i}.*`` and ``norm.*`` (Point-MAE's
    ``MAE_decoder``); Linear weights xavier-uniform as in Point-MAE.
    """

    def __init__(self, dim, depth, num_heads, drop_path_rate=0.0, mlp_ratio=4.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=mlp_ratio, drop_path=p)
                                    for p in drop_path_rates(drop_path_rate, depth))
        self.norm = nn.LayerNorm(dim)
        self.apply(init_xavier_weights)

    def forward(self, x, pos, num_masked):
        for block in self.blocks:
            x = block(x + pos)
        return self.norm(x[:, x.shape[1] - num_masked:])

