"""Causal transformer language model for StackOverflow (reference §8.1; ``bp_transformer.py``).

Token embedding (V+1)x96 plus learned positional embedding 128x96 (both N(0, 1)), summed ->
LayerNorm -> dropout 0.1; post-LN encoder layers (4-head causal self-attention with separate q, k,
v, o 96x96 linears, residual, LayerNorm; FFN 96->384 GELU 384->96 with N(0, 0.02) weights, dropout
0.1, residual, LayerNorm); decoder Linear 96->96 -> GELU -> LayerNorm -> Linear 96->V.

The model takes the already-shifted input tokens ``[B, L]`` (L <= seq_len) and returns logits
``[B, L, V]``; cutting the last token and shifting the targets is the caller's job (the released
model does it inside ``forward``).

HeteroFL width scaler (reference §7.3): when ``model.scaler`` is set, training-mode outputs of both
embeddings, q, k, v, o, both FFN linears and ``decoder.linear1`` are divided by it, as released.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedgmr.models.widths import check_channels, scale_width

FULL_CHANNELS = (96, 384)  # model dimension, FFN hidden
NUM_HEADS = 4
DROPOUT = 0.1


def _scale(x: torch.Tensor, scaler: float | None) -> torch.Tensor:
    return x if scaler is None else x / scaler


class EncoderLayer(nn.Module):
    """Post-LN encoder layer with causal multi-head attention."""

    def __init__(self, d_model: int, d_ffn: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        # Separate projections (not one packed in_proj) so each is its own prunable layer.
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn1 = nn.Linear(d_model, d_ffn)
        self.ffn2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(DROPOUT)
        nn.init.normal_(self.ffn1.weight, std=0.02)
        nn.init.normal_(self.ffn2.weight, std=0.02)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        return x.view(b, length, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, scaler: float | None) -> torch.Tensor:
        q, k, v = (self._heads(_scale(lin(x), scaler)) for lin in (self.q, self.k, self.v))
        # Released attention: softmax(q k^T / sqrt(d_head)) with a causal mask, no attention dropout.
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn = attn.transpose(1, 2).reshape(x.shape)
        x = self.norm1(x + self.dropout(_scale(self.o(attn), scaler)))
        h = self.dropout(F.gelu(_scale(self.ffn1(x), scaler)))
        return self.norm2(x + self.dropout(_scale(self.ffn2(h), scaler)))


class Decoder(nn.Module):
    """Linear -> GELU -> LayerNorm -> Linear to the vocabulary (the last one is never pruned)."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.linear2 = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor, scaler: float | None) -> torch.Tensor:
        return self.linear2(self.norm(F.gelu(_scale(self.linear1(x), scaler))))


class TransformerLM(nn.Module):
    """The StackOverflow next-token model.

    Attributes:
        prunable: positional embedding, token embedding, per layer q, k, v, o, ffn1, ffn2, then
            ``decoder.linear1`` (15 layers with 2 encoder layers; reference §4.1).
        channels: ``(d_model, d_ffn)``.
        scaler: HeteroFL activation divisor used in training mode, or None.
        task: ``"lm"``.
    """

    name = "transformer_lm"
    task = "lm"

    def __init__(
        self,
        vocab_size: int = 10_000,
        width: float = 1.0,
        seq_len: int = 128,
        num_layers: int = 2,
        num_heads: int = NUM_HEADS,
        channels: Sequence[int] | None = None,
    ):
        super().__init__()
        self.channels = (
            self.default_channels(width, num_heads)
            if channels is None
            else check_channels(channels, 2, self.name)
        )
        d_model, d_ffn = self.channels
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads")
        self.vocab_size, self.seq_len, self.num_heads = vocab_size, seq_len, num_heads
        self.scaler: float | None = None
        # Registered positional-first, matching the released module order and §4.1's layer order.
        self.pos_embedding = nn.Embedding(seq_len, d_model)  # N(0, 1): nn.Embedding's default
        self.tok_embedding = nn.Embedding(vocab_size + 1, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(DROPOUT)
        self.layers = nn.ModuleList(EncoderLayer(d_model, d_ffn, num_heads) for _ in range(num_layers))
        self.decoder = Decoder(d_model, vocab_size)
        self.prunable = ["pos_embedding.weight", "tok_embedding.weight"]
        for i in range(num_layers):
            self.prunable += [f"layers.{i}.{n}.weight" for n in ("q", "k", "v", "o", "ffn1", "ffn2")]
        self.prunable.append("decoder.linear1.weight")

    @staticmethod
    def default_channels(width: float = 1.0, num_heads: int = NUM_HEADS) -> tuple[int, ...]:
        """``(d_model, d_ffn)`` at a width multiplier; d_model stays a multiple of the head count."""
        return (
            scale_width(FULL_CHANNELS[0], width, multiple=num_heads),
            scale_width(FULL_CHANNELS[1], width),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map token ids ``[B, L]`` to next-token logits ``[B, L, vocab_size]``."""
        length = tokens.shape[1]
        if length > self.seq_len:
            raise ValueError(f"sequence length {length} exceeds the positional table ({self.seq_len})")
        scaler = self.scaler if self.training else None
        positions = torch.arange(length, device=tokens.device)
        x = _scale(self.tok_embedding(tokens), scaler) + _scale(self.pos_embedding(positions), scaler)
        x = self.dropout(self.embed_norm(x))
        for layer in self.layers:
            x = layer(x, scaler)
        return self.decoder(x, scaler)
