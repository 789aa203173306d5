"""Cross-view fusion: a transformer over the token grids of all views.

Blocks alternate between attention within each view (frame attention) and attention over
the tokens of every view of a sample (global, cross-view attention), as in VGGT / Depth
Anything 3: with `cross_view_every = 2` blocks 1, 3, 5, ... are global. The token grid is
the image downsampled by `token_stride` (16: 32 x 32 tokens per 512 x 512 view), so global
attention over 6 views is 6144 tokens and `scaled_dot_product_attention` keeps memory
bounded (flash / memory-efficient kernels on CUDA). Missing views (view_mask False) are
removed from the keys of global attention, which makes masking equivalent to removing the
view. With `fusion=False` every block attends within its view only (the ablation); the
parameters are the same, so the two variants share checkpoints' layout.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Attend over the L tokens of each of N sequences.

        Args:
            x: (N, L, C) tokens.
            key_mask: (N, L) bool, False = the token is not attended to (needs at least
                one True per row).
        """
        N, L, C = x.shape
        qkv = self.qkv(x).view(N, L, 3, self.heads, C // self.heads)  # (N, L, 3, h, c)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (N, h, L, c)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (N, 1, 1, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, h, L, c)
        return self.proj(out.transpose(1, 2).reshape(N, L, C))  # (N, L, C)


class Block(nn.Module):
    """Pre-norm transformer block: attention then MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """(N, L, C) -> (N, L, C)."""
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class FusionTransformer(nn.Module):
    """Alternating within-view / cross-view transformer over (B, V, T, C) tokens."""

    def __init__(self, dim: int, layers: int, heads: int, *, mlp_ratio: float = 4.0,
                 fusion: bool = True, cross_view_every: int = 2) -> None:
        """Args: dim channels; layers blocks; heads per block; fusion False = no cross-view
        attention; cross_view_every: block i is global when (i + 1) % it == 0."""
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.global_blocks = tuple(fusion and (i + 1) % cross_view_every == 0
                                   for i in range(layers))

    def forward(self, tokens: Tensor, view_mask: Tensor | None = None) -> Tensor:
        """Fuse tokens across views.

        Args:
            tokens: (B, V, T, C) tokens of every view.
            view_mask: (B, V) bool, False = missing view: never attended to. A sample with
                no valid view attends to all of them (its output is meaningless but finite).

        Returns:
            (B, V, T, C) fused tokens.
        """
        B, V, T, C = tokens.shape
        key_mask = None
        if view_mask is not None and any(self.global_blocks):
            vm = view_mask | ~view_mask.any(1, keepdim=True)  # (B, V)
            key_mask = vm[:, :, None].expand(B, V, T).reshape(B, V * T)  # (B, V*T)
        x = tokens
        for block, is_global in zip(self.blocks, self.global_blocks):
            if is_global:
                x = block(x.reshape(B, V * T, C), key_mask).view(B, V, T, C)
            else:
                x = block(x.reshape(B * V, T, C)).view(B, V, T, C)
        return self.norm(x)
