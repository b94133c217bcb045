"""Patchify a cloud (FPS centers + kNN groups) and embed each patch with a mini-PointNet."""
import torch
import torch.nn.functional as F
from torch import nn

from extensions import furthest_point_sample, gather_points, knn_points


class PatchGrouper(nn.Module):
    """FPS picks G centers, each takes its S nearest points (itself included), relative to it.

    points (B, N, 3), start_idx (int or (B,) long: the first FPS point) ->
    neighborhood (B, G, S, 3) relative to the centers, center (B, G, 3). No parameters.
    """

    def __init__(self, num_group, group_size):
        super().__init__()
        self.num_group = num_group
        self.group_size = group_size

    def forward(self, points, start_idx=0):
        if points.shape[1] < max(self.num_group, self.group_size):
            raise ValueError(f'a cloud of {points.shape[1]} points cannot make {self.num_group} patches '
                             f'of {self.group_size} points')
        center = gather_points(points, furthest_point_sample(points, self.num_group, start_idx))
        _, idx = knn_points(center, points, self.group_size)
        neighborhood = gather_points(points, idx) - center.unsqueeze(2)
        return neighborhood, center

    def extra_repr(self):
        return f'G={self.num_group}, S={self.group_size}'


class PatchEmbedding(nn.Module):
    """Mini-PointNet patch embedding (Point-MAE's ``Encoder``; state-dict names kept).

    neighborhood (B, G, S, 3) -> tokens (B, G, C). Per point input channels: xyz (3) or xyz
    and its length (4). first_conv: Conv1d(in->128)-BN-ReLU-Conv1d(128->256); max over the S
    points, concatenated to every point (512); second_conv: Conv1d(512->512)-BN-ReLU-
    Conv1d(512->C); max over the S points.
    """

    def __init__(self, out_channels, in_channels=3):
        super().__init__()
        if in_channels not in (3, 4):
            raise ValueError(f'point_channels must be 3 (xyz) or 4 (xyz + length), got {in_channels}')
        self.in_channels = in_channels
        self.first_conv = nn.Sequential(nn.Conv1d(in_channels, 128, 1), nn.BatchNorm1d(128),
                                        nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512),
                                         nn.ReLU(inplace=True), nn.Conv1d(512, out_channels, 1))

    def forward(self, neighborhood):
        """Same function as applying ``first_conv`` / ``second_conv`` to (B*G, channels, S), computed
        channels-last (one GEMM per layer over all B*G*S points, BatchNorm over the same points)
        and with ``second_conv.0`` split as ``W [g; f] + b = (W_g g + b) + W_f f``: the half that
        sees the patch's global vector g runs once per patch instead of once per point."""
        B, G, S, _ = neighborhood.shape
        x = neighborhood.reshape(B * G * S, 3)
        if self.in_channels == 4:
            x = torch.cat([x, x.norm(dim=-1, keepdim=True)], dim=-1)
        conv_a, bn_a, relu_a, conv_b = self.first_conv
        local = pointwise(conv_b, relu_a(bn_a(pointwise(conv_a, x)))).view(B * G, S, -1)
        conv_c, bn_c, relu_c, conv_d = self.second_conv
        weight = conv_c.weight.squeeze(-1)
        width = local.shape[-1]
        per_patch = F.linear(local.amax(dim=1), weight[:, :width], conv_c.bias)
        h = F.linear(local, weight[:, width:]) + per_patch.unsqueeze(1)
        h = relu_c(bn_c(h.view(B * G * S, -1)))
        return pointwise(conv_d, h).view(B * G, S, -1).amax(dim=1).view(B, G, -1)


def pointwise(conv, x):
    """A kernel-1 ``nn.Conv1d`` applied to channels-last points: x (..., C_in) -> (..., C_out)."""
    return F.linear(x, conv.weight.squeeze(-1), conv.bias)
