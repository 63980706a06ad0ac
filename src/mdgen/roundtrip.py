"""Check tokenisation on MD files: decode(encode(x)) RMSDs and the token round-trip error.

    python -m mdgen.roundtrip TOPOLOGY [TRAJECTORY ...] [--stride N]

RMSDs are per frame, then averaged over frames: once as placed (decode rebuilds in the original
global frame, so no superposition is needed) and once after optimal (Kabsch) superposition, the
standard RMSD; the heavy-atom criterion of the test suite (<= 0.35 Å) applies to the latter. The token error is max |encode(decode(t)) - t| over every channel that the
atoms determine: the offsets, psi and chi1-4. omega and phi are excluded because their rigid groups
hold no heavy atoms, so decode ignores them and cannot reproduce them (METHOD 2.6).

The heavy-atom RMSD is not a bug budget: residue frames and torsions are exact, but bond lengths
and angles are ideal, while 350 K MD bends angles by ~4°; the error compounds along a side chain.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from mdgen import tokens
from mdgen.constants import TORSION_NAMES
from mdgen.errors import user_errors
from mdgen.trajectory_files import Trajectory, read_trajectory

_BACKBONE_SLOTS = slice(0, 4)  # N, CA, C, O
_ATOM_DETERMINED_TORSIONS = [TORSION_NAMES.index(name) for name in ("psi", "chi1", "chi2", "chi3", "chi4")]


@dataclass(frozen=True)
class RoundTripErrors:
    backbone_rmsd: float  # Å, N CA C O, mean over frames
    heavy_atom_rmsd: float  # Å, all heavy atoms, mean over frames, as placed
    superposed_heavy_atom_rmsd: float  # Å, all heavy atoms after per-frame Kabsch superposition
    max_token_error: float  # atom-determined channels, see module docstring


def atom_determined_channels(num_key_frames: int, torsion_mask: torch.Tensor) -> torch.Tensor:
    """(..., L, C) bool: offset channels everywhere, torsion channels of psi/chi where unmasked."""
    torsion_channels = torch.zeros_like(torsion_mask)
    torsion_channels[..., _ATOM_DETERMINED_TORSIONS] = torsion_mask[..., _ATOM_DETERMINED_TORSIONS]
    offsets = torch.ones(*torsion_mask.shape[:-1], 7 * num_key_frames, dtype=torch.bool)
    return torch.cat([offsets, torsion_channels.repeat_interleave(2, dim=-1)], dim=-1)


def per_frame_rmsd(predicted: torch.Tensor, reference: torch.Tensor, atom_mask: torch.Tensor) -> torch.Tensor:
    """predicted/reference (T, L, 14, 3) Å, atom_mask (L, 14) bool -> (T,) RMSD Å, no superposition."""
    squared = ((predicted - reference) ** 2).sum(-1) * atom_mask  # (T, L, 14)
    return torch.sqrt(squared.sum((-1, -2)) / atom_mask.sum())


def superposed_rmsd(
    predicted: torch.Tensor, reference: torch.Tensor, atom_mask: torch.Tensor
) -> torch.Tensor:
    """predicted/reference (T, L, 14, 3) Å, atom_mask (L, 14) bool -> (T,) RMSD Å after Kabsch superposition."""
    p = predicted[:, atom_mask]  # (T, N, 3)
    q = reference[:, atom_mask]
    p = p - p.mean(1, keepdim=True)
    q = q - q.mean(1, keepdim=True)
    u, _, vt = torch.linalg.svd(p.transpose(1, 2) @ q)  # (T, 3, 3)
    # Flip the last singular direction where needed so the optimum is a rotation, not a reflection.
    sign = torch.sign(torch.det(u @ vt))
    u = torch.cat([u[..., :2], u[..., 2:] * sign[:, None, None]], dim=-1)
    rotated = p @ (u @ vt)
    return torch.sqrt(((rotated - q) ** 2).sum(-1).mean(-1))


def roundtrip_errors(trajectory: Trajectory, key_frames=(0,)) -> RoundTripErrors:
    atom14 = torch.from_numpy(trajectory.atom14).double()  # (T, L, 14, 3) Å
    aatype = torch.from_numpy(trajectory.aatype)
    atom_mask = torch.from_numpy(trajectory.atom14_mask)
    encoded = tokens.encode(atom14, aatype, key_frames=key_frames)  # (T, L, C)
    decoded = tokens.decode(encoded, atom14[key_frames[0]], aatype)  # decode uses the first key frame
    backbone_mask = torch.zeros_like(atom_mask)
    backbone_mask[:, _BACKBONE_SLOTS] = atom_mask[:, _BACKBONE_SLOTS]
    channels = atom_determined_channels(len(key_frames), tokens.frame_features(atom14, aatype).torsion_mask)
    token_error = (tokens.encode(decoded, aatype, key_frames=key_frames) - encoded).abs() * channels
    return RoundTripErrors(
        backbone_rmsd=per_frame_rmsd(decoded, atom14, backbone_mask).mean().item(),
        heavy_atom_rmsd=per_frame_rmsd(decoded, atom14, atom_mask).mean().item(),
        superposed_heavy_atom_rmsd=superposed_rmsd(decoded, atom14, atom_mask).mean().item(),
        max_token_error=token_error.max().item(),
    )


@user_errors("mdgen.roundtrip")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("topology", help="PDB topology (heavy atoms; H and OXT are dropped)")
    parser.add_argument("trajectories", nargs="*", help="XTC/DCD/H5 files (default: the topology's models)")
    parser.add_argument("--stride", type=int, default=1, help="read every N-th frame")
    args = parser.parse_args(argv)
    print(
        f"{'file':<60} {'frames':>6} {'backbone Å':>11} {'heavy Å':>9} {'heavy sup Å':>11} {'token err':>10}"
    )
    for path in args.trajectories or [None]:
        trajectory = read_trajectory(args.topology, path, stride=args.stride)
        errors = roundtrip_errors(trajectory)
        print(
            f"{trajectory.source:<60} {trajectory.num_frames:>6} {errors.backbone_rmsd:>11.3f} "
            f"{errors.heavy_atom_rmsd:>9.3f} {errors.superposed_heavy_atom_rmsd:>11.3f} "
            f"{errors.max_token_error:>10.2e}"
        )


if __name__ == "__main__":
    main()
