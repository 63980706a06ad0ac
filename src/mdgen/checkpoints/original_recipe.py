"""From the original's saved command line (`train.py` arguments) to this project's recipe: which paper
experiment it is, and the Hydra overrides that rebuild the same network, task and training settings.

Only arguments that change the network, the token layout or the task are interpreted; the rest (data
paths, logging, epochs, ...) do not matter for the weights. Arguments whose network or task this project
does not have (hyena, no_rope, interleave_ipa, ...) are refused rather than silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdgen.errors import UserError

# Native frame interval of the original's raw trajectories: 100 fs (tetrapeptides) and 10 ps (ATLAS).
TETRAPEPTIDE_FRAME_PS = 0.1
ATLAS_FRAME_PS = 10.0
_STRIDE_SUFFIX = re.compile(r"_i(\d+)")  # prep_sims.py --suffix _i100 --stride 100

# The original's boolean flags that change the network, the tokens or the task in a way this project has
# no equivalent for (the network is refused rather than rebuilt differently).
UNSUPPORTED_FLAGS = {
    "hyena": "frame mixing by a Hyena operator instead of attention",
    "no_rope": "attention without rotary positions",
    "interleave_ipa": "an IPA block inside every space-time layer",
    "abs_time_emb": "a fixed sinusoidal table added per frame",
    "no_frames": "atom37 coordinate tokens (111 channels)",
    "mpnn": "the single-frame inverse-folding head",
    "dynamic_mpnn": "the two-frame inverse-folding head",
    "no_offsets": "absolute (not key-frame relative) rigid tokens",
    "design_key_frames": "key frames whose designed residues copy the flanks' rigids",
    "no_design_torsion": "tokens with the designed residues' torsions zeroed",
}
# Arguments that only shaped the original's loss or data loading; noted, not needed for the weights.
LOSS_ONLY_FLAGS = ("supervise_all_torsions", "supervise_no_torsions", "copy_frames")
REQUIRED_ARGS = (
    "embed_dim",
    "num_layers",
    "mha_heads",
    "ipa_heads",
    "ipa_head_dim",
    "ipa_qk",
    "ipa_v",
    "num_frames",
    "crop",
)
# Flags the original wrapper itself defaults to False when an older command line lacks them.
_DEFAULT_FALSE = (
    "inpainting",
    "no_torsion",
    "hyena",
    "no_aa_emb",
    "supervise_all_torsions",
    "supervise_no_torsions",
    "design_key_frames",
    "no_design_torsion",
    "cond_interval",
    "mpnn",
    "dynamic_mpnn",
    "no_offsets",
    "no_frames",
    "ema",
)


class RecipeError(UserError):
    """The original checkpoint's arguments describe a network or task this project cannot rebuild."""


@dataclass(frozen=True)
class IPASizes:
    """IPA sizes of the original's args: heads H, scalar channels c, query/key points Pq, value points Pv."""

    heads: int
    head_dim: int
    qk_points: int
    v_points: int


@dataclass(frozen=True)
class OriginalRecipe:
    """One of the paper's five recipes, with the overrides of `conf/train.yaml` that rebuild it."""

    name: str  # forward | interp | upsample | inpaint | atlas
    experiment: str  # conf/experiment/<experiment>.yaml
    overrides: tuple[str, ...]  # Hydra overrides after experiment=...
    ipa: IPASizes
    abs_pos_emb: bool  # the original's fixed residue table (pos_embed) is in the state dict
    notes: tuple[str, ...]  # settings of the original that this project does not reproduce (loss only)

    def hydra_overrides(self) -> list[str]:
        return [f"experiment={self.experiment}", *self.overrides]


def recipe_from_args(args: Mapping[str, Any], frame_interval_ps: float | None = None) -> OriginalRecipe:
    """The recipe of an original checkpoint from its `hyper_parameters['args']` (a plain dict).

    frame_interval_ps: ps between the training window's frames; None derives it from the original's
    `--suffix _iN` (prep_sims stride N) and `--frame_interval`, on 100 fs (tetrapeptide) or 10 ps (ATLAS)
    raw trajectories.
    """
    args = {**{key: False for key in _DEFAULT_FALSE}, **dict(args)}
    missing = [key for key in REQUIRED_ARGS if args.get(key) is None]
    if missing:
        raise RecipeError(f"the checkpoint's args lack {missing}, which decide the network's sizes")
    unsupported = [f"--{key} ({why})" for key, why in UNSUPPORTED_FLAGS.items() if args.get(key)]
    if unsupported:
        raise RecipeError(
            f"the checkpoint was trained with {', '.join(unsupported)}; this project has no such network"
        )
    if not args.get("prepend_ipa"):
        raise RecipeError(
            "the checkpoint was trained without --prepend_ipa (no key-frame trunk); this project's network always has one"
        )
    if args.get("prediction", "velocity") != "velocity":
        raise RecipeError(
            f"the checkpoint predicts {args['prediction']!r}; this project's models predict the velocity"
        )
    path_type = str(args.get("path_type", "GVP"))
    if path_type not in ("GVP", "Linear"):
        raise RecipeError(
            f"the checkpoint uses the {path_type!r} probability path; this project has GVP and Linear"
        )

    name = _recipe_name(args)
    experiment = {
        "forward": "4aa_forward",
        "interp": "4aa_interp",
        "upsample": "4aa_upsample",
        "inpaint": "4aa_inpaint",
        "atlas": "atlas_forward",
    }[name]
    interval = frame_interval_ps if frame_interval_ps is not None else _frame_interval_ps(args)
    abs_pos_emb = bool(args.get("abs_pos_emb"))
    overrides = [
        *_task_overrides(name, args, interval),
        *_model_overrides(args, abs_pos_emb),
        f"interpolant={'gvp' if path_type == 'GVP' else 'linear'}",
        f"interpolant.dirichlet.alpha_max={float(args.get('alpha_max', 8.0))}",
        f"interpolant.dirichlet.temperature={float(args.get('dirichlet_flow_temp', 1.0))}",
        f"optimizer={'adamw' if args.get('adamW') else 'adam'}",
        f"optimizer.lr={float(args.get('lr', 1e-4))}",
        f"module.discrete_loss_weight={float(args.get('discrete_loss_weight', 0.5))}",
        f"callbacks.ema.enabled={'true' if args.get('ema') else 'false'}",
        f"callbacks.ema.decay={float(args.get('ema_decay', 0.999))}",
        f"trainer.gradient_clip_val={float(args.get('grad_clip', 1.0))}",
        f"trainer.accumulate_grad_batches={int(args.get('accumulate_grad', 1))}",
        f"data.batch_size={int(args.get('batch_size', 8))}",
    ]
    notes = tuple(
        f"--{key} (shaped only the original's loss or data loading; not reproduced by fine-tuning here)"
        for key in LOSS_ONLY_FLAGS
        if args.get(key)
    )
    ipa = IPASizes(int(args["ipa_heads"]), int(args["ipa_head_dim"]), int(args["ipa_qk"]), int(args["ipa_v"]))
    return OriginalRecipe(name, experiment, tuple(overrides), ipa, abs_pos_emb, notes)


def _recipe_name(args: Mapping[str, Any]) -> str:
    conditions = [key for key in ("sim_condition", "tps_condition", "inpainting") if args.get(key)]
    if len(conditions) != 1:
        raise RecipeError(
            "the checkpoint's args must set exactly one of --sim_condition, --tps_condition, --inpainting; "
            f"they set {conditions or 'none'}"
        )
    condition = conditions[0]
    if args.get("design") and condition != "inpainting":
        raise RecipeError(
            f"--design with --{condition} is not one of the paper's recipes (design goes with --inpainting)"
        )
    if args.get("atlas"):
        if condition != "sim_condition" or args.get("cond_interval"):
            raise RecipeError("--atlas is only the forward-simulation recipe (--sim_condition)")
        return "atlas"
    if condition == "sim_condition":
        return "upsample" if args.get("cond_interval") else "forward"
    return "interp" if condition == "tps_condition" else "inpaint"


def _frame_interval_ps(args: Mapping[str, Any]) -> float:
    suffix = str(args.get("suffix") or "")
    match = _STRIDE_SUFFIX.fullmatch(suffix)
    if suffix and match is None:
        raise RecipeError(
            f"cannot tell the frame interval from --suffix {suffix!r} (expected '' or '_iN' for a stride N); "
            "pass frame_interval_ps=<ps between the training window's frames>"
        )
    stride = int(match.group(1)) if match else 1
    native = ATLAS_FRAME_PS if args.get("atlas") else TETRAPEPTIDE_FRAME_PS
    return round(native * stride * int(args.get("frame_interval") or 1), 6)


def _task_overrides(name: str, args: Mapping[str, Any], interval_ps: float) -> list[str]:
    overrides = [
        f"task.num_frames={int(args['num_frames'])}",
        f"task.frame_interval_ps={interval_ps}",
        f"task.ode_method={args.get('sampling_method') or 'dopri5'}",
        f"task.no_torsion={'true' if args.get('no_torsion') else 'false'}",
        f"task.use_aa_emb={'false' if args.get('no_aa_emb') else 'true'}",
    ]
    if name == "upsample":
        overrides.append(f"task.cond_interval={int(args['cond_interval'])}")
    if name == "inpaint":
        design = bool(args.get("design"))
        overrides += [f"task.design={'true' if design else 'false'}"]
        if not design:
            overrides.append("task.design_residues=[]")
    if name == "atlas":
        overrides.append(f"data.crop={int(args['crop'])}")
    return overrides


def _model_overrides(args: Mapping[str, Any], abs_pos_emb: bool) -> list[str]:
    embed_dim, heads = int(args["embed_dim"]), int(args["mha_heads"])
    if embed_dim % heads or (embed_dim // heads) % 2:
        raise RecipeError(f"--embed_dim {embed_dim} / --mha_heads {heads} must be an even whole head width")
    return [
        f"model.embed_dim={embed_dim}",
        f"model.num_ipa_blocks={int(args['num_layers'])}",  # the original uses num_layers for both stacks
        f"model.num_blocks={int(args['num_layers'])}",
        f"model.num_heads={heads}",
        "model.mlp_ratio=4.0",
        f"model.ipa_heads={int(args['ipa_heads'])}",
        f"model.ipa_head_dim={int(args['ipa_head_dim'])}",
        f"model.ipa_qk_points={int(args['ipa_qk'])}",
        f"model.ipa_v_points={int(args['ipa_v'])}",
        f"model.dropout={float(args.get('dropout', 0.0))}",
        f"model.time_multiplier={float(args.get('time_multiplier', 100.0))}",
        "model.rotary_base=10000.0",
        f"model.residue_pos_emb={'table' if abs_pos_emb else 'rotary'}",
        f"model.max_residues={int(args['crop']) if abs_pos_emb else 'null'}",
        "model.sink_position=original",
        f"model.grad_checkpointing={'true' if args.get('grad_checkpointing') else 'false'}",
    ]
