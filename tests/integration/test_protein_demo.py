"""`experiment=protein_demo` (ATLAS layout, replicas, crops, padding) on the committed villin fixture
(tests/fixtures/villin: real MD frames of the 36-residue villin headpiece, three replicas, 10 ps).

Fast: the experiment composes as documented, trains in-process (a handful of steps, tiny network) with a
falling loss, draws all replicas and crops of real residues, and pads a chain shorter than the crop.
Slow (`make test-full`): the commands chained as the README runs them, prepare -> train -> sample (forward
rollouts of the whole chain from its PDB) -> evaluate task=protein against the three replicas.
"""

import json
import math
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from cli_runner import run_command
from mdgen.config import build_module, compose_config
from mdgen.train import train
from training_probe import probe_overrides, read_probe

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "villin"  # ATLAS layout: villin/villin{.pdb,_prod_R*_fit.xtc}
VILLIN_RESIDUES = 36
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def fixture_overrides(tmp_path: Path) -> list[str]:
    return [
        "experiment=protein_demo",
        f"data.sim_dir={FIXTURE}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]


def fixture_frames() -> int:
    """Frames of the shortest fixture replica."""
    folder = FIXTURE / "villin"
    return min(
        md.load(str(folder / f"villin_prod_R{i}_fit.xtc"), top=str(folder / "villin.pdb")).n_frames
        for i in (1, 2, 3)
    )


def test_protein_demo_composes_as_documented():
    """The settings conf/experiment/protein_demo.yaml promises (catches a base config that overrides
    them, e.g. the ATLAS recipe's 250 frames at 400 ps, crop 256 or batch 1 leaking through)."""
    cfg = compose_config(["experiment=protein_demo"])
    assert cfg.task.name == "forward" and cfg.task.num_frames == 12 and cfg.task.frame_interval_ps == 10.0
    assert cfg.data.layout == "atlas" and list(cfg.data.replicas) == [1, 2, 3]
    assert cfg.data.crop < VILLIN_RESIDUES  # crops of real residues
    assert cfg.data.cache_interval_ps == 10.0 and cfg.data.num_frames == 12
    assert cfg.data.sim_dir.endswith("data/proteins/md") and cfg.model.embed_dim == 96  # compact
    assert cfg.trainer.accelerator == "cpu" and cfg.data.num_workers == 0


def test_protein_demo_trains_on_real_protein_frames_and_its_loss_falls(tmp_path):
    """30 optimizer steps of the experiment (tiny network, 6-frame windows, a 2-step warm-up): the
    flow-matching loss on a fixed batch with fixed noise falls by at least 10 % between the initial and
    the final weights, every training item is a full crop of real residues, and all three replicas are
    drawn. Catches: an ATLAS entry name scheme that trains on one replica only, crops that are padding,
    a loss that does not reach the weights (NaN, detached, zero learning rate)."""
    overrides = [
        *fixture_overrides(tmp_path),
        "model=tiny",
        "task.num_frames=6",
        "trainer.max_steps=30",
        "trainer.max_time=null",
        "trainer.check_val_every_n_epoch=100",
        "scheduler.warmup_steps=2",
        "optimizer.lr=3e-3",
        "logger=none",
        "callbacks.ema.enabled=false",
    ]
    probe_dir = tmp_path / "probe"
    cfg = compose_config(
        [*overrides, *probe_overrides(str(probe_dir)), f"paths.output_dir={tmp_path / 'run'}", *QUIET]
    )
    train(cfg)
    record = read_probe(probe_dir)
    assert record["global_step"] == 30
    names = {item.split("@")[0] for batch in record["batches"] for item in batch}
    assert names == {"villin_R1", "villin_R2", "villin_R3"}

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["residue_mask"].shape == (cfg.data.batch_size, cfg.data.crop)
    assert torch.all(batch["residue_mask"] == 1)  # a 24-residue crop of a 36-residue chain: no padding
    offsets = batch["residue_index"][:, 0]
    assert torch.all(batch["residue_index"] == offsets[:, None] + torch.arange(cfg.data.crop))

    module = build_module(cfg)

    def loss_on_fixed_noise(weights) -> float:
        module.load_state_dict(weights)
        generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return sum(module.compute_loss(batch, generator).loss.item() for _ in range(8)) / 8

    initial, final = loss_on_fixed_noise(record["initial"]), loss_on_fixed_noise(record["final"])
    assert math.isfinite(initial) and math.isfinite(final)
    assert final < 0.9 * initial, f"loss {initial:.3f} -> {final:.3f}"


def test_a_crop_longer_than_the_chain_pads_with_masked_residues(tmp_path):
    """crop=40 on the 36-residue chain: items hold the whole chain then 4 masked padding residues
    (aatype 0, identity rotations, zero translations)."""
    cfg = compose_config([*fixture_overrides(tmp_path), "data.crop=40", "task.num_frames=6"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    mask = batch["residue_mask"]
    assert mask.shape[-1] == 40 and torch.all(mask[:, :36] == 1) and torch.all(mask[:, 36:] == 0)
    assert torch.all(batch["aatype"][:, 36:] == 0) and torch.all(batch["trans"][:, :, 36:] == 0)
    assert torch.equal(batch["rots"][:, :, 36:], torch.eye(3).expand_as(batch["rots"][:, :, 36:]))


def test_a_chain_longer_than_an_absolute_position_table_is_refused_before_any_work(tmp_path):
    """A network with the original tetrapeptide positions (a 4-row table) cannot place villin's 36
    residues: one SamplingInputError naming the file and both lengths, nothing written (was an
    IndexError traceback from inside the network)."""
    from mdgen.sampling.inputs import SamplingInputError
    from mdgen.sampling.request import SamplingRequest
    from mdgen.sampling.run import run_sampling
    from mdgen.sampling.sampler_options import SolverOptions

    cfg = compose_config(
        ["experiment=demo_forward", "model=tiny", "model.residue_pos_emb=table", "model.max_residues=4"]
    )
    module = build_module(cfg)
    checkpoint = tmp_path / "table.ckpt"  # run_sampling uses `module`; the request names an existing file
    checkpoint.write_bytes(b"")
    request = SamplingRequest(
        ckpt_path=str(checkpoint),
        out_dir=str(tmp_path / "out"),
        input_pdb=str(FIXTURE / "villin" / "villin.pdb"),
    )
    with pytest.raises(SamplingInputError, match=r"villin.pdb frame 0: 36 residues.* table of 4 rows"):
        run_sampling(request, module, SolverOptions("euler", 2))
    assert not (tmp_path / "out").exists()


# ---- the commands chained (slow) ---------------------------------------------------------------------

NUM_FRAMES, NUM_CHUNKS, NUM_ROLLOUTS = 6, 2, 2  # 2 rollouts of 2 x 5 + 1 = 11 frames, 10 ps apart


@pytest.mark.slow
def test_prepare_train_sample_evaluate_on_the_villin_fixture(tmp_path):
    """The README's protein commands on the fixture. Catches: a cache or checkpoint a later command cannot
    read, sampling that crops the chain (all 36 residues must come out), samples the protein evaluator
    cannot match to the reference, missing replica rows."""
    cache, run_dir = tmp_path / "cache", tmp_path / "train"
    samples, evaluation = tmp_path / "samples", tmp_path / "evaluation"
    assert fixture_frames() >= NUM_FRAMES
    run_command("mdgen.prepare", f"sim_dir={FIXTURE}", f"out_dir={cache}", "interval_ps=10", "progress=false")
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["villin_R1", "villin_R2", "villin_R3"]
    run_command(
        "mdgen.train",
        "experiment=protein_demo",
        f"data.sim_dir={FIXTURE}",
        f"data.cache_dir={cache}",
        "model=tiny",
        f"task.num_frames={NUM_FRAMES}",
        "trainer.max_steps=3",
        "scheduler=constant",
        "trainer.check_val_every_n_epoch=1",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        *QUIET,
    )
    pdb = FIXTURE / "villin" / "villin.pdb"
    run_command(
        "mdgen.sample",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"input_pdb={pdb}",
        f"num_rollouts={NUM_ROLLOUTS}",
        f"num_chunks={NUM_CHUNKS}",
        f"out_dir={samples}",
        "sampler=euler",
    )
    generated = md.load(str(samples / "villin.xtc"), top=str(samples / "villin.pdb"))
    assert generated.n_residues == VILLIN_RESIDUES
    assert generated.n_frames == NUM_ROLLOUTS * (NUM_CHUNKS * (NUM_FRAMES - 1) + 1)
    np.testing.assert_allclose(np.diff(generated.time), 10.0, atol=1e-3)
    start = md.load(str(pdb))
    start_ca = start.xyz[0, start.topology.select("name CA")]
    rollout_starts = generated.xyz[
        :: len(generated.time) // NUM_ROLLOUTS, generated.topology.select("name CA")
    ]
    np.testing.assert_allclose(rollout_starts, np.broadcast_to(start_ca, rollout_starts.shape), atol=1e-3)
    decoding = json.loads((samples / "sampling_summary.json").read_text())["decoding"]
    assert decoding["decoder"] == "auto" and decoding["chain_frames"] == 0  # auto: frames beyond 16 residues
    assert decoding["frames"] == NUM_ROLLOUTS * NUM_CHUNKS * (NUM_FRAMES - 1)

    run_command(
        "mdgen.evaluate",
        "task=protein",
        f"samples_dir={samples}",
        f"reference_dir={FIXTURE}",
        f"out_dir={evaluation}",
        "protein.sasa_sphere_points=100",
    )
    report = (evaluation / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| metric"))
    for row in ("generated", "MD replica 1 vs rest", "MD replica 2 vs rest", "MD replica 3 vs rest"):
        assert f"{row} (n=1)" in header
    assert (evaluation / "plots" / "villin_rmsf.png").is_file()
    assert (evaluation / "plots" / "villin_pca.png").is_file()  # MD vs generated on the MD PCs
    metrics = json.loads((evaluation / "metrics.json").read_text())
    pooled = metrics["pooled"]["generated"]
    assert 0.0 <= pooled["ca_valid_fraction"] <= 1.0 and math.isfinite(pooled["rmwd_A"])
