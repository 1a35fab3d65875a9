"""Optional blocks between backbone and decoder (the ``attention=`` group): the original report's
future work asked for attention layers "to retain important relationships"."""

from __future__ import annotations

from keras import layers


def identity(x):
    return x


def self_attention(x, heads: int = 4, key_dim: int = 64, dropout: float = 0.0):
    """Pre-norm multi-head self-attention over every position of the 2-D feature map, residual."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    tokens = layers.Reshape((h * w, c))(x)
    normed = layers.LayerNormalization()(tokens)
    attended = layers.MultiHeadAttention(heads, key_dim, dropout=dropout)(normed, normed)
    return layers.Reshape((h, w, c))(layers.Add()([tokens, attended]))
