"""Smoke tests of benchmarks/speed_vs_md.py and benchmarks/equal_cost_quality.py on tiny inputs.

They check mechanics and bookkeeping (files written, figures finite, ratio = generated rate / MD rate,
equal-cost lengths = W x MD rate, omitted rows stated), never timings.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import mdtraj
import pytest
import torch

from mdgen.config import build_module, compose_config, to_plain_dict
from mdgen.sampling.report import OutputReport, RunReport, write_summary

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MD = REPO_ROOT / "data" / "demo" / "md"
PEPTIDE = "GWEK"


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / script), *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def untrained_forward_ckpt(tmp_path_factory) -> Path:
    """A forward checkpoint of the tiny model, written as mdgen.train writes one (weights untrained)."""
    cfg = compose_config(["experiment=demo_forward", "model=tiny", "task.num_frames=3"])
    module = build_module(cfg, run_config=to_plain_dict(cfg))
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.slow  # ~15 s: a benchmark script end to end (make test-full)
def test_speed_vs_md_records_finite_rates_and_their_ratio(untrained_forward_ckpt, tmp_path):
    out = tmp_path / "speed.json"
    result = run_script(
        "speed_vs_md.py",
        *("--ckpt", str(untrained_forward_ckpt), "--sequence", PEPTIDE),
        *("--pdb", str(DEMO_MD / PEPTIDE / f"{PEPTIDE}.pdb")),
        *("--md-ps", "0.4", "--md-save-interval-ps", "0.2", "--md-equilibration-ps", "0.04"),
        *("--num-chunks", "2", "--batch-size", "1", "2", "--sampler", "euler", "--sampler-steps", "3"),
        *("--threads", "1", "--device", "cpu", "--out", str(out)),
    )
    record = json.loads(out.read_text())
    generation = {gen["batch_size"]: gen for gen in record["generation"]}
    md = {run["protocol"]: run for run in record["md"]}
    assert sorted(generation) == [1, 2] and sorted(md) == ["obc2_2fs", "obc2_hmr_4fs"]
    for gen in generation.values():
        frames = gen["rollouts"] * (gen["num_chunks"] * (3 - 1) + 1)
        assert gen["generated_ns"] == pytest.approx(frames * 10.0 / 1000.0)  # 10 ps frames
        assert math.isfinite(gen["ns_per_wall_s"]) and gen["ns_per_wall_s"] > 0
    for run in md.values():
        assert run["production_ps"] == 0.4
        assert math.isfinite(run["ns_per_wall_s"]) and run["ns_per_wall_s"] > 0
        assert run["ns_per_day"] == pytest.approx(run["ns_per_wall_s"] * 86400.0)
    assert len(record["ratios"]) == 4
    for entry in record["ratios"]:
        expected = (
            generation[entry["batch_size"]]["ns_per_wall_s"] / md[entry["md_protocol"]]["ns_per_wall_s"]
        )
        assert entry["ratio"] == pytest.approx(expected, rel=1e-12)
        assert f"{entry['ratio']:.3g}" in result.stdout  # the printed table holds the same figure
    assert all(math.isfinite(value) for value in record["startup"].values())
    assert record["hardware"]["cpu_model"] and record["hardware"]["openmm"]
    assert record["markdown"] in result.stdout
    assert out.with_suffix(".md").read_text().strip() == record["markdown"]
    assert out.with_suffix(".png").stat().st_size > 0


def write_samples(samples_dir: Path, wall_s: float) -> None:
    """The second half of the demo MD as 'generated' trajectories, with a sampling_summary.json."""
    reference = mdtraj.load(
        str(DEMO_MD / PEPTIDE / f"{PEPTIDE}.xtc"), top=str(DEMO_MD / PEPTIDE / f"{PEPTIDE}.pdb")
    )
    half = reference[reference.n_frames // 2 :]
    samples_dir.mkdir()
    half[0].save_pdb(str(samples_dir / f"{PEPTIDE}.pdb"))
    half.save_xtc(str(samples_dir / f"{PEPTIDE}.xtc"))
    output = OutputReport(
        name=PEPTIDE,
        files=(str(samples_dir / f"{PEPTIDE}.xtc"),),
        generated=(0,),
        skipped=(),
        generated_frames=half.n_frames,
        frame_interval_ps=10.0,
        nfe=1,
        wall_s=wall_s,
    )
    report = RunReport("forward", "none.ckpt", {}, "cpu", "32", {}, 1, (output,), total_wall_s=wall_s + 1.0)
    write_summary(samples_dir, report)


@pytest.mark.slow  # ~17 s: a benchmark script end to end (make test-full)
def test_equal_cost_quality_truncates_md_to_the_cost_of_the_samples(tmp_path):
    write_samples(tmp_path / "samples", wall_s=3.0)
    md_rate = {"timestep_fs": 4.0, "hydrogen_mass_amu": 1.5, "platform": "CPU", "threads": 1}
    speed = {
        "date_utc": "test",
        "device": "cpu",
        "hardware": {"cpu_model": "test CPU", "cpu_cores": 2, "gpu": None},
        "md": [
            md_rate | {"protocol": "obc2_hmr_4fs", "ns_per_wall_s": 0.01, "ns_per_day": 864.0},
            md_rate
            | {
                "protocol": "obc2_2fs",
                "timestep_fs": 2.0,
                "hydrogen_mass_amu": None,
                "ns_per_wall_s": 1.0,
                "ns_per_day": 86400.0,
            },
        ],
    }
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    out = tmp_path / "equal_cost"
    result = run_script(
        "equal_cost_quality.py",
        *("--samples", str(tmp_path / "samples"), "--reference", str(DEMO_MD)),
        *("--speed", str(tmp_path / "speed.json"), "--out", str(out), "--factor", "100"),
    )
    record = json.loads((out / "equal_cost.json").read_text())
    assert record["md_rate"]["protocol"] == "obc2_hmr_4fs"  # the demo MD's protocol (HMR, 4 fs)
    equal, expensive = record["baselines"]["equal cost"], record["baselines"]["100x cost"]
    assert equal["length_ps"] == pytest.approx(30.0)  # 3 s x 0.01 ns/s
    assert expensive["length_ps"] == pytest.approx(3000.0)  # longer than the 2 ns reference
    rows = {row["row"]: row for row in record["rows"]}
    assert list(rows) == [
        "generated",
        "MD equal cost (30 ps)",
        "MD 100x cost (3000 ps)",
        "first frame repeated",
    ]
    for name in ("generated", "MD equal cost (30 ps)", "first frame repeated"):
        values = [entry["mean"] for entry in rows[name]["metrics"].values()]
        assert all(value is not None and math.isfinite(value) for value in values), name
    assert "not shorter than the reference" in rows["MD 100x cost (3000 ps)"]["omitted"]
    assert "MD 100x cost (3000 ps) omitted" in result.stdout
    assert (out / "equal_cost.md").read_text().strip() == record["markdown"]
    assert (out / "evaluate" / "metrics.json").is_file() and (out / "equal_cost.png").stat().st_size > 0
