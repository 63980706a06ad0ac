"""Tests added for mutants of src/mdgen/geometry/ that survived `make mutate` (experiments/tests/README.md).

The torsion mask from missing atoms was only tested with every backbone atom present and an
unbatched atom mask, so `prev_CA | ...` for `prev_CA & ...`, a roll over the flattened (L, 4) array
instead of over residues, and stacking on dim +1 instead of -1 all survived.
"""

import torch

from mdgen import constants as rc
from mdgen import geometry as g

ALA = rc.ATOM14_NAMES["ALA"]
N, CA, C = ALA.index("N"), ALA.index("CA"), ALA.index("C")


def _masks(aatype, atom14_mask):
    atom14 = torch.randn(*atom14_mask.shape, 3, generator=torch.Generator().manual_seed(0))
    return g.torsion_angles(atom14, aatype, atom14_mask=atom14_mask)[1]


def test_a_missing_carbonyl_carbon_masks_exactly_the_torsions_that_use_it():
    """C of residue 1 missing: phi(1) (C0-N1-CA1-C1), psi(1) (N-CA-C-O), omega(2) (CA1-C1-N2-CA2) and
    phi(2) (C1-N2-CA2-C2) go;
    everything else that the residue types allow stays (omega(2) must not survive on CA(1) alone)."""
    aatype = torch.tensor(rc.aatype_from_sequence("AAAA"))
    atom14_mask = torch.from_numpy(rc.ATOM14_MASK[aatype.numpy()]).clone()
    full = _masks(aatype, atom14_mask.clone())
    atom14_mask[1, C] = False
    mask = _masks(aatype, atom14_mask)
    expected = full.clone()
    expected[1, 1] = False  # phi(1)
    expected[1, 2] = False  # psi(1)
    expected[2, 0] = False  # omega(2)
    expected[2, 1] = False  # phi(2)
    assert torch.equal(mask, expected)
    assert full[1:, :3].all()  # control: with every atom present these torsions exist


def test_batched_atom_masks_are_per_sample_and_per_residue():
    """(B, L, 14) masks: sample 0 misses N of residue 2, sample 1 misses CA of residue 1."""
    aatype = torch.tensor(rc.aatype_from_sequence("AAAA")).expand(2, 4)
    atom14_mask = torch.from_numpy(rc.ATOM14_MASK[aatype.numpy()]).clone()  # (2, 4, 14)
    atom14_mask[0, 2, N] = False
    atom14_mask[1, 1, CA] = False
    mask = _masks(aatype, atom14_mask)
    assert mask.shape == (2, 4, 7)
    # sample 0: N(2) is in omega(2), phi(2), psi(2)
    assert mask[0, :, :3].tolist() == [
        [False, False, True],
        [True, True, True],
        [False, False, False],
        [True, True, True],
    ]
    # sample 1: CA(1) is in omega(1), phi(1), psi(1) and omega(2)
    assert mask[1, :, :3].tolist() == [
        [False, False, True],
        [False, False, False],
        [False, True, True],
        [True, True, True],
    ]
