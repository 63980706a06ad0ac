"""Pure-torch protein geometry: rigid frames, quaternions, AlphaFold torsions, side-chain builder,
ideal backbone chains."""

from mdgen.geometry.backbone import chain_frames_on_frames, ideal_chain, superpose
from mdgen.geometry.quaternions import quaternion_to_rotation, rotation_to_quaternion
from mdgen.geometry.rigids import (
    apply_rigid,
    compose_rigids,
    frames_from_backbone,
    invert_rigid,
    relative_rigid,
    rigid_from_4x4,
    rigid_from_three_points,
)
from mdgen.geometry.sidechain import atom14_from_frames, rigid_group_frames
from mdgen.geometry.torsions import dihedral_sin_cos, torsion_angles, torsion_mask_from_aatype

__all__ = [
    "apply_rigid",
    "atom14_from_frames",
    "chain_frames_on_frames",
    "compose_rigids",
    "dihedral_sin_cos",
    "frames_from_backbone",
    "ideal_chain",
    "invert_rigid",
    "quaternion_to_rotation",
    "relative_rigid",
    "rigid_from_4x4",
    "rigid_from_three_points",
    "rigid_group_frames",
    "rotation_to_quaternion",
    "superpose",
    "torsion_angles",
    "torsion_mask_from_aatype",
]
