"""Evaluation on the real tetrapeptide MD in ../shared/data (slow: minutes of CPU).

The second half of each peptide's MD, scored as if it were generated against the first half, must
score clearly better than the same frames with randomised backbone torsions (wrong ensemble) and,
on relaxation times, than the same frames in shuffled order (no dynamics); the MD-length rows must
fall as the MD grows; the second half of the 100 fs MD must beat naive upsamplers of its coarse input.
Uses the first two peptides found (never a fixed list) to bound the run time.
"""

import mdtraj as md
import numpy as np
import pytest

from mdgen.evaluation.baselines import randomise_backbone_torsions, shuffle_frames
from mdgen.evaluation.forward import ForwardSettings, md_row_name
from mdgen.evaluation.pipelines import EvaluationConfig
from mdgen.evaluation.runner import run_evaluation
from mdgen.evaluation.upsampling import HELD, INTERPOLATED, UPSAMPLED

pytestmark = pytest.mark.slow
MD_LENGTHS_PS = (100.0, 1000.0, 5000.0)


def _save(traj, stem, step_ps):
    stem.parent.mkdir(parents=True, exist_ok=True)
    traj = md.Trajectory(traj.xyz, traj.topology, time=np.arange(1, traj.n_frames + 1) * step_ps)
    traj[0].save_pdb(str(stem.with_suffix(".pdb")))
    traj.save_xtc(str(stem.with_suffix(".xtc")))


@pytest.fixture(scope="module")
def split(shared_tetrapeptides, tmp_path_factory):
    root = tmp_path_factory.mktemp("half_split")
    names = sorted(p.name for p in shared_tetrapeptides.iterdir() if (p / f"{p.name}.xtc").is_file())[:2]
    rng = np.random.default_rng(0)
    for name in names:
        folder = shared_tetrapeptides / name
        coarse = md.load(str(folder / f"{name}.xtc"), top=str(folder / f"{name}.pdb"))
        fine = md.load(str(folder / f"{name}_fine.xtc"), top=str(folder / f"{name}.pdb"))
        first, second = coarse[: coarse.n_frames // 2], coarse[coarse.n_frames // 2 :]
        _save(first, root / "reference" / name / name, coarse.timestep)
        _save(fine[: fine.n_frames // 2], root / "reference" / name / f"{name}_fine", fine.timestep)
        _save(second, root / "replica" / name / name, coarse.timestep)
        _save(second, root / "md_half" / name, coarse.timestep)
        _save(randomise_backbone_torsions(second, rng), root / "random_torsions" / name, coarse.timestep)
        _save(shuffle_frames(second, rng), root / "shuffled_frames" / name, coarse.timestep)
        _save(fine[fine.n_frames // 2 :], root / "fine_half" / name, fine.timestep)
    return root, names


def _forward(root, samples):
    config = EvaluationConfig(
        task="forward",
        samples_dir=root / samples,
        reference_dir=root / "reference",
        replica_dir=root / "replica",
        out_dir=root / f"forward_{samples}",
        make_plots=False,
        forward=ForwardSettings(md_truncations_ps=MD_LENGTHS_PS),
    )
    summary = run_evaluation(config)
    assert not summary.failures, summary.failures
    return summary.results


def test_md_half_beats_randomised_torsions_and_shuffled_frames(split):
    root, names = split
    md_half, randomised, shuffled = (
        _forward(root, s) for s in ("md_half", "random_torsions", "shuffled_frames")
    )
    for name in names:
        good, bad = md_half[name].rows["generated"], randomised[name].rows["generated"]
        assert good.torsion_jsd_backbone < 0.6 * bad.torsion_jsd_backbone
        assert good.torsion_pair_jsd_mean < bad.torsion_pair_jsd_mean
        assert good.validity.valid_fraction > 0.8 > 0.3 > bad.validity.valid_fraction
        # shuffling keeps the ensemble (same histograms) but destroys the dynamics
        assert shuffled[name].rows["generated"].torsion_jsd_all == pytest.approx(good.torsion_jsd_all)
        assert good.relaxation_log10_r > shuffled[name].rows["generated"].relaxation_log10_r + 0.3
        trivial = md_half[name].rows["first frame repeated"]
        assert good.torsion_jsd_all < 0.5 * trivial.torsion_jsd_all
        # MD rows fall as the MD grows; the full-length replica row is the md_half sample itself
        rows = md_half[name].rows
        jsd = [rows[md_row_name(length)].torsion_jsd_all for length in MD_LENGTHS_PS]
        assert jsd[0] > jsd[1] > jsd[2]
        assert jsd[2] == pytest.approx(good.torsion_jsd_all)


def test_fine_md_half_beats_naive_upsamplers(split):
    root, names = split
    config = EvaluationConfig(
        task="upsample",
        samples_dir=root / "fine_half",
        reference_dir=root / "reference",
        out_dir=root / "upsample",
        make_plots=False,
    )
    summary = run_evaluation(config)
    assert set(summary.results) == set(names)
    for result in summary.results.values():
        upsampled = result.rows[UPSAMPLED]
        assert upsampled.recovered_fraction_median == pytest.approx(1.0, abs=0.25)
        for baseline in (HELD, INTERPOLATED):
            assert upsampled.curve_mean_abs_difference < result.rows[baseline].curve_mean_abs_difference
