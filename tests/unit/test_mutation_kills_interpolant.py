"""Tests added for mutants of src/mdgen/interpolant/ that survived `make mutate` (experiments/tests/README.md).

The existing masked-MSE test used pred = 0, where (pred - target)^2 == (pred + target)^2, and a second
sample with an empty mask, where a per-sample and a whole-batch normalisation agree.
"""

import torch

from mdgen.interpolant import masked_mse


def test_masked_mse_is_the_per_sample_mean_of_squared_differences():
    """Catches `pred + target` (the loss would pull predictions towards -target) and a mask count over the
    whole batch instead of per sample (a sample's loss would depend on the other samples' masks)."""
    pred = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [5.0, 5.0]], [[1.0, 1.0], [2.0, 2.0], [4.0, 0.0]]])
    target = torch.tensor([[[2.0, 4.0], [3.0, 3.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).unsqueeze(-1)  # 4 and 2 masked entries
    # sample 0: (1 - 2)^2 + (2 - 4)^2 + 0 + (0 - 3)^2 = 1 + 4 + 0 + 9 = 14 over 4; sample 1: 1 + 0 = 1 over 2
    torch.testing.assert_close(masked_mse(pred, target, mask), torch.tensor([14 / 4, 1 / 2]))


def test_masked_mse_weights_entries_by_the_mask_value():
    pred = torch.zeros(1, 2, 1)
    target = torch.tensor([[[2.0], [4.0]]])
    mask = torch.tensor([[[0.5], [1.5]]])  # weighted mean: (0.5 * 4 + 1.5 * 16) / 2 = 13
    torch.testing.assert_close(masked_mse(pred, target, mask), torch.tensor([13.0]))
