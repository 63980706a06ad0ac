"""Ideal backbone chains: N, CA, C of a whole chain built from ω/φ/ψ (NeRF), placed on residue frames.

A chain built here cannot break: every bond length and bond angle is ideal, including the peptide
bond C(i)-N(i+1), and ω is kept near planar (trans, or cis before a proline), so every CA(i)-CA(i+1)
lies in 3.74-3.85 Å (trans) or 2.88-3.02 Å (cis), inside METHOD 12's ranges. `chain_frames_on_frames`
then puts such a chain as close as possible (least squares on N, CA, C) to generated residue frames,
which by themselves are independent per residue and drift apart. Torsion errors accumulate along the
chain (a rigid-body fit cannot undo them): fine for peptides, Å-scale drift beyond ~15 residues.

Intra-residue geometry (N-CA, CA-C, N-CA-C) and the O-based ψ of AlphaFold come from the ideal
coordinates of `mdgen.constants`, so the rebuilt N, CA, C coincide exactly with what the side-chain
builder places on the rebuilt frames. The peptide-bond geometry (not in those per-residue tables) is
the mean over the amber14/OBC2 MD the models learn from (data/demo and ../shared/data, 10^4 frames):
C-N 1.342 Å, CA-C-N 117.3°, C-N-CA 125.1°. Engh & Huber's X-ray values (1.329 Å, 116.2°, 121.7°) put
O(i) and C(i+1) closer and left 5 points fewer MD frames valid after a round trip
(experiments/quality/decoder.md).

Everything is batched over leading dimensions (..., L); the only Python loop runs along the chain.
"""

from __future__ import annotations

import functools
import math

import torch

from mdgen import constants as rc
from mdgen.geometry.rigids import apply_rigid, frames_from_backbone
from mdgen.geometry.sidechain import atom14_from_frames
from mdgen.geometry.tables import residue_table
from mdgen.geometry.torsions import dihedral_sin_cos

C_N_BOND_A = 1.342
CA_C_N_ANGLE_DEG = 117.3
C_N_CA_ANGLE_DEG = 125.1
# ω may deviate this much from planar (180°, or 0° for cis before a proline) before it is clamped.
# In MD at 350 K (amber14/OBC2, data/demo + ../shared/data) |ω - 180°| has 99th/99.9th percentiles
# 28°/36° and maximum 45° (experiments/quality/decoder.md); at 40° CA(i)-CA(i+1) is 3.75 Å, inside
# METHOD 12's [3.6, 4.0] Å (it leaves that range beyond about 60°).
OMEGA_MAX_DEVIATION_DEG = 40.0

_EPS = 1e-8
_N, _CA, _C, _O = 0, 1, 2, 3  # atom14 slots
_PROLINE = rc.RESTYPES.index("P")
_OMEGA, _PHI, _PSI = 0, 1, 2


def _ideal_residue(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(3, 3) Å: N, CA, C of one residue in its own frame (the same for every residue type)."""
    return residue_table("ATOM14_LITERATURE_POSITIONS", dtype, device)[0, :3]


def _angle_between(u: torch.Tensor, v: torch.Tensor) -> float:
    return math.acos(float((u @ v) / (u.norm() * v.norm())))


@functools.cache
def _intra_residue_geometry() -> tuple[float, float, float]:
    """(N-CA Å, CA-C Å, N-CA-C rad) of the ideal residue in mdgen.constants."""
    n, ca, c = _ideal_residue(torch.float64, torch.device("cpu"))
    return float((n - ca).norm()), float((c - ca).norm()), _angle_between(n - ca, c - ca)


@functools.cache
def textbook_psi_offset() -> torch.Tensor:
    """(sin, cos) (2,) float64 of ψ_textbook - ψ_AF2 in the ideal geometry of mdgen.constants.

    AlphaFold's ψ rotates the group that holds O; the textbook ψ is the dihedral N-CA-C-N(i+1). The
    ideal peptide is planar at C (CA, O and N(i+1) in one plane, O and N(i+1) on opposite sides of
    the CA-C axis), so dihedral(N, CA, C, N(i+1)) = dihedral(N, CA, C, O) + π. Building O at
    ψ_AF2 = 0 and measuring that dihedral gives the offset (0 for the current tables).
    """
    rots = torch.eye(3, dtype=torch.float64)
    torsions = torch.zeros(1, 7, 2, dtype=torch.float64)
    torsions[..., 1] = 1.0  # every torsion 0
    atoms = atom14_from_frames(rots[None], torch.zeros(1, 3, dtype=torch.float64), torsions, torch.zeros(1))[
        0
    ]
    o_dihedral = dihedral_sin_cos(atoms[_N], atoms[_CA], atoms[_C], atoms[_O])  # (sin, cos)
    return -o_dihedral  # + π


def rotate_angles(sin_cos: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(..., 2) (sin, cos) of a + b from those of a (..., 2) and b (2,) (angle addition)."""
    s, c = sin_cos.unbind(-1)
    so, co = offset.to(sin_cos).unbind(-1)
    return torch.stack([s * co + c * so, c * co - s * so], dim=-1)


def unit_angles(sin_cos: torch.Tensor, fallback_deg: float) -> torch.Tensor:
    """(..., 2) pairs scaled to unit length; (near-)zero pairs become `fallback_deg`, so any token decodes."""
    norm = sin_cos.norm(dim=-1, keepdim=True)
    fallback = torch.tensor(
        [math.sin(math.radians(fallback_deg)), math.cos(math.radians(fallback_deg))],
        dtype=sin_cos.dtype,
        device=sin_cos.device,
    )
    return torch.where(norm > 1e-6, sin_cos / norm.clamp_min(1e-6), fallback)


def planar_omega(omega: torch.Tensor, cis_allowed: torch.Tensor, max_deviation_deg: float) -> torch.Tensor:
    """Clamp ω (..., L, 2) (sin, cos) to within `max_deviation_deg` of planar.

    Planar is trans (180°); where `cis_allowed` (..., L) bool (the residue is a proline) it is whichever
    of cis (0°) and trans is nearer. Angles already within the band are returned unchanged.
    """
    angle = torch.atan2(omega[..., 0], omega[..., 1])  # (-π, π]
    target = torch.full_like(angle, math.pi)
    target = torch.where(cis_allowed & (angle.abs() < math.pi / 2), torch.zeros_like(angle), target)
    deviation = torch.remainder(angle - target + math.pi, 2 * math.pi) - math.pi
    limit = math.radians(max_deviation_deg)
    clamped = target + deviation.clamp(-limit, limit)
    return torch.where(
        (deviation.abs() <= limit)[..., None], omega, torch.stack([clamped.sin(), clamped.cos()], dim=-1)
    )


def place_atom(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, bond: float, angle: float, torsion: torch.Tensor
) -> torch.Tensor:
    """NeRF: the point d with |c-d| = bond, angle(b, c, d) = angle (rad), dihedral(a, b, c, d) = torsion.

    a, b, c (..., 3) Å; torsion (..., 2) unit (sin, cos); the dihedral is dihedral_sin_cos's (IUPAC).
    """
    bc = c - b
    bc = bc / torch.sqrt((bc * bc).sum(-1, keepdim=True) + _EPS)
    normal = torch.cross(b - a, bc, dim=-1)
    normal = normal / torch.sqrt((normal * normal).sum(-1, keepdim=True) + _EPS)
    in_plane = torch.cross(normal, bc, dim=-1)
    sin_t, cos_t = torsion[..., :1], torsion[..., 1:]
    step = -math.cos(angle) * bc + math.sin(angle) * (cos_t * in_plane + sin_t * normal)
    return c + bond * step


def ideal_chain(omega: torch.Tensor, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """Backbone N, CA, C (..., L, 3, 3) Å from torsions (..., L, 2) unit (sin, cos), all in textbook terms.

    omega[i] = dihedral CA(i-1), C(i-1), N(i), CA(i); phi[i] = C(i-1), N(i), CA(i), C(i);
    psi[i] = N(i), CA(i), C(i), N(i+1). omega[0], phi[0] and psi[L-1] are not used. Residue 0 sits
    in the identity frame (CA at the origin); the caller places the chain.
    """
    n_ca, ca_c, n_ca_c = _intra_residue_geometry()
    ca_c_n, c_n_ca = math.radians(CA_C_N_ANGLE_DEG), math.radians(C_N_CA_ANGLE_DEG)
    first = _ideal_residue(psi.dtype, psi.device).expand(*psi.shape[:-2], 3, 3)
    n, ca, c = first.unbind(-2)
    residues = [first]
    for i in range(1, psi.shape[-2]):
        n_next = place_atom(n, ca, c, C_N_BOND_A, ca_c_n, psi[..., i - 1, :])
        ca_next = place_atom(ca, c, n_next, n_ca, c_n_ca, omega[..., i, :])
        c_next = place_atom(c, n_next, ca_next, ca_c, n_ca_c, phi[..., i, :])
        n, ca, c = n_next, ca_next, c_next
        residues.append(torch.stack([n, ca, c], dim=-2))
    return torch.stack(residues, dim=-3)


def superpose(mobile: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None):
    """Least-squares rigid fit (Kabsch): rots (..., 3, 3), trans (..., 3) with rots @ mobile + trans ≈ target.

    mobile, target (..., P, 3) Å; weights (..., P) (default uniform). A proper rotation (det +1) always.
    """
    if weights is None:
        weights = torch.ones(mobile.shape[:-1], dtype=mobile.dtype, device=mobile.device)
    w = (weights / weights.sum(-1, keepdim=True).clamp_min(_EPS))[..., None]  # (..., P, 1)
    mobile_centre = (w * mobile).sum(-2)
    target_centre = (w * target).sum(-2)
    covariance = ((target - target_centre[..., None, :]) * w).transpose(-1, -2) @ (
        mobile - mobile_centre[..., None, :]
    )  # (..., 3, 3) = sum_p w_p t_p m_p^T
    u, _, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    flip = torch.ones(*sign.shape, 3, dtype=mobile.dtype, device=mobile.device)
    flip[..., 2] = sign
    rots = u @ torch.diag_embed(flip) @ vh
    trans = target_centre - (rots @ mobile_centre[..., None]).squeeze(-1)
    return rots, trans


def buildable_torsions(
    torsions: torch.Tensor, aatype: torch.Tensor, omega_max_deviation_deg: float = OMEGA_MAX_DEVIATION_DEG
) -> torch.Tensor:
    """The torsions (..., L, 7, 2) a chain is built with: ω, φ, ψ as unit pairs (ω clamped to planar,
    see `planar_omega`; zero pairs replaced), χ as given. aatype (..., L)."""
    omega = planar_omega(
        unit_angles(torsions[..., _OMEGA, :], 180.0), aatype.long() == _PROLINE, omega_max_deviation_deg
    )
    phi = unit_angles(torsions[..., _PHI, :], -60.0)
    psi = unit_angles(torsions[..., _PSI, :], 140.0)
    backbone = torch.stack([omega, phi, psi], dim=-2)
    return torch.cat([backbone, torsions[..., 3:, :]], dim=-2)


def ideal_chain_from_torsions(torsions: torch.Tensor) -> torch.Tensor:
    """N, CA, C (..., L, 3, 3) Å in residue 0's frame from buildable torsions (..., L, 7, 2) (AF2 ψ)."""
    psi = rotate_angles(torsions[..., _PSI, :], textbook_psi_offset())
    return ideal_chain(torsions[..., _OMEGA, :], torsions[..., _PHI, :], psi)


def chain_atom14(torsions: torch.Tensor, aatype: torch.Tensor) -> torch.Tensor:
    """All heavy atoms (..., L, 14, 3) Å of the ideal chain of buildable torsions, in residue 0's frame.

    Differentiable in the torsions; the decoded frame is this chain moved rigidly."""
    chain = ideal_chain_from_torsions(torsions)
    rots, trans = frames_from_backbone(chain[..., _N, :], chain[..., _CA, :], chain[..., _C, :])
    return atom14_from_frames(rots, trans, torsions, aatype)


def chain_frames_on_frames(
    rots: torch.Tensor,
    trans: torch.Tensor,
    torsions: torch.Tensor,
    aatype: torch.Tensor,
    residue_mask: torch.Tensor | None = None,
    omega_max_deviation_deg: float = OMEGA_MAX_DEVIATION_DEG,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace independent residue frames by those of an ideal chain fitted to them.

    rots (..., L, 3, 3), trans (..., L, 3) Å: generated frames; torsions (..., L, 7, 2) (sin, cos) with
    AlphaFold's ψ; aatype (..., L); residue_mask (..., L) (weights of the fit; padding = 0).
    Returns the chain's rots, trans and the torsions as built (`buildable_torsions`), so
    atom14_from_frames places O consistently with N(i+1).
    """
    built = buildable_torsions(torsions, aatype, omega_max_deviation_deg)
    chain = ideal_chain_from_torsions(built)  # (..., L, 3, 3) in residue 0's frame

    ideal = _ideal_residue(rots.dtype, rots.device)  # (3, 3)
    generated = apply_rigid(rots[..., None, :, :], trans[..., None, :], ideal)  # (..., L, 3, 3)
    weights = None
    if residue_mask is not None:
        weights = residue_mask.to(rots.dtype)[..., None].expand(*residue_mask.shape, 3).flatten(-2)
    fit_rots, fit_trans = superpose(chain.flatten(-3, -2), generated.flatten(-3, -2), weights)
    placed = apply_rigid(fit_rots[..., None, None, :, :], fit_trans[..., None, None, :], chain)
    new_rots, new_trans = frames_from_backbone(placed[..., _N, :], placed[..., _CA, :], placed[..., _C, :])
    return new_rots, new_trans, built
