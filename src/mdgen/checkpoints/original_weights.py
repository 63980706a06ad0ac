"""The original network's state dict -> this project's `MDGenNetwork` state dict.

The networks are the same up to names and three layouts:
  * every sink (`bias_k`, `bias_v`) is stored (1, 1, D) in the original, (D,) here;
  * IPA point projections: the original lays the 3*H*P output rows out coordinate-major (all x, then all
    y, then all z; inside a block row h*P + p), this project interleaves them as (h, p, xyz); the same
    permutation applies to the value-point columns of the IPA output projection;
  * fixed buffers (the residue table `pos_embed`, rotary `inv_freq`) are recomputed here, not stored: they
    are checked against the original's values instead of copied.
Every key must be accounted for: an unknown original key, a network key without a source, or a shape
mismatch is an error naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from mdgen.checkpoints.original_recipe import IPASizes
from mdgen.errors import UserError

_BUFFER_TOLERANCE = 1e-5  # the original's float64-rounded tables vs ours computed in float32


class WeightMappingError(UserError):
    """The original state dict does not fit the network its own arguments describe."""


# (original key pattern, our key template, transform name). Patterns are full matches.
_RULES: tuple[tuple[str, str, str], ...] = (
    (r"latent_to_emb\.(weight|bias)", r"token_embed.\1", "copy"),
    (r"cond_to_emb\.(weight|bias)", r"cond_embed.\1", "copy"),
    (r"mask_to_emb\.weight", r"cond_mask_embed.weight", "copy"),
    (r"t_embedder\.mlp\.([02])\.(weight|bias)", r"time_embed.mlp.\1.\2", "copy"),
    (r"aatype_to_emb\.weight", r"trunk.aatype_embed.weight", "copy"),
    (r"x_d_to_emb\.(weight|bias)", r"trunk.simplex_embed.\1", "copy"),
    (r"latent_to_emb_f\.(weight|bias)", r"trunk.forward_offset_embed.\1", "copy"),
    (r"latent_to_emb_r\.(weight|bias)", r"trunk.reverse_offset_embed.\1", "copy"),
    (r"ipa_layers\.(\d+)\.adaLN_modulation\.1\.(weight|bias)", r"trunk.layers.\1.adaln.proj.1.\2", "copy"),
    (r"ipa_layers\.(\d+)\.ipa_norm\.(weight|bias)", r"trunk.layers.\1.ipa_norm.\2", "copy"),
    (r"ipa_layers\.(\d+)\.ipa\.head_weights", r"trunk.layers.\1.ipa.head_weights", "copy"),
    (r"ipa_layers\.(\d+)\.ipa\.linear_q\.(weight|bias)", r"trunk.layers.\1.ipa.q_proj.\2", "copy"),
    (r"ipa_layers\.(\d+)\.ipa\.linear_kv\.(weight|bias)", r"trunk.layers.\1.ipa.kv_proj.\2", "copy"),
    (
        r"ipa_layers\.(\d+)\.ipa\.linear_q_points\.(weight|bias)",
        r"trunk.layers.\1.ipa.q_points_proj.\2",
        "q_points",
    ),
    (
        r"ipa_layers\.(\d+)\.ipa\.linear_kv_points\.(weight|bias)",
        r"trunk.layers.\1.ipa.kv_points_proj.\2",
        "kv_points",
    ),
    (r"ipa_layers\.(\d+)\.ipa\.linear_out\.weight", r"trunk.layers.\1.ipa.out_proj.weight", "out_columns"),
    (r"ipa_layers\.(\d+)\.ipa\.linear_out\.bias", r"trunk.layers.\1.ipa.out_proj.bias", "copy"),
    (
        r"ipa_layers\.(\d+)\.mha_l\.attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"trunk.layers.\1.attention.\2_proj.\3",
        "copy",
    ),
    (r"ipa_layers\.(\d+)\.mha_l\.attn\.bias_k", r"trunk.layers.\1.attention.sink_key", "sink"),
    (r"ipa_layers\.(\d+)\.mha_l\.attn\.bias_v", r"trunk.layers.\1.attention.sink_value", "sink"),
    (r"ipa_layers\.(\d+)\.fc1\.(weight|bias)", r"trunk.layers.\1.mlp.0.\2", "copy"),
    (r"ipa_layers\.(\d+)\.fc2\.(weight|bias)", r"trunk.layers.\1.mlp.2.\2", "copy"),
    (r"layers\.(\d+)\.adaLN_modulation\.1\.(weight|bias)", r"blocks.\1.adaln.proj.1.\2", "copy"),
    (
        r"layers\.(\d+)\.mha_l\.attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"blocks.\1.residue_attention.\2_proj.\3",
        "copy",
    ),
    (r"layers\.(\d+)\.mha_l\.attn\.bias_k", r"blocks.\1.residue_attention.sink_key", "sink"),
    (r"layers\.(\d+)\.mha_l\.attn\.bias_v", r"blocks.\1.residue_attention.sink_value", "sink"),
    (
        r"layers\.(\d+)\.mha_t\.attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"blocks.\1.frame_attention.\2_proj.\3",
        "copy",
    ),
    (r"layers\.(\d+)\.mha_t\.attn\.bias_k", r"blocks.\1.frame_attention.sink_key", "sink"),
    (r"layers\.(\d+)\.mha_t\.attn\.bias_v", r"blocks.\1.frame_attention.sink_value", "sink"),
    (r"layers\.(\d+)\.fc1\.(weight|bias)", r"blocks.\1.mlp.0.\2", "copy"),
    (r"layers\.(\d+)\.fc2\.(weight|bias)", r"blocks.\1.mlp.2.\2", "copy"),
    (r"emb_to_latent\.adaLN_modulation\.1\.(weight|bias)", r"final_layer.adaln.proj.1.\1", "copy"),
    (r"emb_to_latent\.linear\.(weight|bias)", r"final_layer.proj.\1", "copy"),
    (r"fc1\.(weight|bias)", r"sequence_head.frame_mlp.0.\1", "copy"),
    (r"fc2\.(weight|bias)", r"sequence_head.frame_mlp.2.\1", "copy"),
    (r"fc3\.(weight|bias)", r"sequence_head.residue_mlp.0.\1", "copy"),
    (r"emb_to_logits\.(weight|bias)", r"sequence_head.residue_mlp.2.\1", "copy"),
)
_COMPILED = tuple((re.compile(pattern), template, transform) for pattern, template, transform in _RULES)
# Fixed buffers of the original: checked against the network's own, never copied.
_POS_EMBED = "pos_embed"
_INV_FREQ = re.compile(r"(ipa_layers|layers)\.(\d+)\.(mha_l|mha_t)\.attn\.rot_emb\.inv_freq")


def map_original_weights(
    original: Mapping[str, Tensor], network: nn.Module, ipa: IPASizes, source: str
) -> dict[str, Tensor]:
    """Rename and re-lay-out `original` (keys without "model.") into a state dict that `network` loads with
    strict=True. `ipa` are the sizes from the same checkpoint's args; `source` names the input in errors."""
    target = network.state_dict()
    transforms = _transforms(ipa)
    mapped: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in original.items():
        if key == _POS_EMBED:
            _check_residue_table(value, network, source)
            continue
        if _INV_FREQ.fullmatch(key):
            _check_inverse_frequency(key, value, network, source)
            continue
        rule = next(((p.fullmatch(key), t, f) for p, t, f in _COMPILED if p.fullmatch(key)), None)
        if rule is None:
            unknown.append(key)
            continue
        match, template, transform = rule
        our_key = match.expand(template)
        if our_key not in target:
            unknown.append(key)
            continue
        value = transforms[transform](value.detach().to(torch.float32).clone())
        if tuple(value.shape) != tuple(target[our_key].shape):
            raise WeightMappingError(
                f"{source}: weight {key!r} has shape {tuple(original[key].shape)}, but the network its args "
                f"describe expects {tuple(target[our_key].shape)} for {our_key!r}; the args do not match the weights"
            )
        mapped[our_key] = value.contiguous()
    if unknown:
        raise WeightMappingError(
            f"{source}: {len(unknown)} weight(s) with no place in the network its args describe: "
            f"{', '.join(sorted(unknown)[:8])}{' ...' if len(unknown) > 8 else ''}"
        )
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise WeightMappingError(
            f"{source}: {len(missing)} network weight(s) have no source in the checkpoint: "
            f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        )
    return mapped


def _transforms(ipa: IPASizes) -> dict[str, Callable[[Tensor], Tensor]]:
    h = ipa.heads
    q_rows = _block_to_interleaved(h * ipa.qk_points)
    kv_rows = _block_to_interleaved(h * (ipa.qk_points + ipa.v_points))
    point_columns = _block_to_interleaved(h * ipa.v_points)
    scalar_columns = h * ipa.head_dim

    def out_columns(weight: Tensor) -> Tensor:
        # columns: scalars (h, c) | value points | point norms; only the points change layout
        points = weight[:, scalar_columns : scalar_columns + point_columns.numel()]
        return torch.cat(
            [
                weight[:, :scalar_columns],
                points[:, point_columns],
                weight[:, scalar_columns + point_columns.numel() :],
            ],
            dim=1,
        )

    return {
        "copy": lambda x: x,
        "sink": lambda x: x.reshape(-1),  # (1, 1, D) -> (D,)
        "q_points": lambda x: _rows(x, q_rows),
        "kv_points": lambda x: _rows(x, kv_rows),
        "out_columns": out_columns,
    }


def _block_to_interleaved(num_points: int) -> Tensor:
    """Index i of the interleaved layout (point j = i // 3, coordinate x = i % 3) -> its block-layout row
    x * num_points + j. num_points = H * P, points ordered head-major (h * P + p) in both layouts."""
    interleaved = torch.arange(3 * num_points)
    return (interleaved % 3) * num_points + interleaved // 3


def _rows(tensor: Tensor, order: Tensor) -> Tensor:
    if tensor.shape[0] != order.numel():
        raise WeightMappingError(
            f"an IPA point projection has {tensor.shape[0]} output rows; the args' IPA sizes give {order.numel()}"
        )
    return tensor[order]


def _check_residue_table(value: Tensor, network: nn.Module, source: str) -> None:
    table = getattr(network, "residue_table", None)
    if table is None:
        raise WeightMappingError(
            f"{source}: the checkpoint has 'pos_embed' (--abs_pos_emb) but the network was built without the "
            "residue table"
        )
    stored = value.reshape(-1, value.shape[-1]).float()
    if stored.shape != table.shape or not torch.allclose(stored, table.float(), atol=_BUFFER_TOLERANCE):
        raise WeightMappingError(
            f"{source}: 'pos_embed' {tuple(value.shape)} is not the fixed sinusoidal table of "
            f"{tuple(table.shape)} this network adds (different crop or embedding width?)"
        )


def _check_inverse_frequency(key: str, value: Tensor, network: nn.Module, source: str) -> None:
    # Every attention of the network shares one head width, so any rotary table is the reference.
    reference = next((b for n, b in network.named_buffers() if n.endswith("rotary.inverse_frequency")), None)
    if (
        reference is None
        or value.shape != reference.shape
        or not torch.allclose(value.float(), reference.float(), rtol=_BUFFER_TOLERANCE, atol=0.0)
    ):
        raise WeightMappingError(
            f"{source}: {key!r} is not the rotary table of head width {2 * value.numel()} with base 10000 "
            "that this network uses"
        )
