"""Physical validity (METHOD 12) of decoded frames for each decoder, with and without relax=true.

    .venv/bin/python benchmarks/decoder_validity.py --md data/demo/md ../shared/data/tetrapeptides \
        --stride 4 --relax-every 20 --out experiments/quality/decoder.json
    .venv/bin/python benchmarks/decoder_validity.py --ckpt CKPT --peptides MKWE PYDS HPTL --md data/demo/md ...

Sections (each printed as a markdown table; everything also goes to --out as JSON):
1. MD round trip: real MD frames -> tokens (key frame = frame 0) -> decode_windows, as sampling decodes a
   window. Rows: the MD itself (control), decoder=frames (the original's), decoder=chain without and
   with clash removal (declash), and relax=true on every --relax-every-th frame after the frames and
   the plain chain decoders. Columns: valid fraction and failure rates (METHOD 12), heavy-atom RMSD to
   the MD frame as placed, decoding CPU ms per frame (relax: s per frame), mean |torsion change| of
   clash removal.
2. Generated (with --ckpt): single windows sampled from --starts evenly spaced MD frames of each
   peptide; the same tokens decoded every way; validity plus the mean torsion JS distance (100 bins) of
   the generated frames to the peptide's whole MD, so a decoder that bought validity by distorting
   torsions would show.
3. Omega in MD: percentiles of |omega - planar| (the chain decoder clamps at 40°).
4. Protein drift (with --protein PDB): round-trip RMSD of contiguous segments of one chain, by length:
   the chain decoder's torsion errors accumulate along the chain; the frames decoder's do not.
CPU times are process times with one torch thread; wall times on a shared machine are noisier.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from mdgen import constants as rc
from mdgen.analysis.features import pooled_torsion_angles, torsion_angles, torsion_definitions
from mdgen.analysis.validity import frame_failures
from mdgen.evaluation.jsd import angle_jsd
from mdgen.geometry.backbone import OMEGA_MAX_DEVIATION_DEG
from mdgen.sampling.decoding import DecoderSettings, decode_windows_counted
from mdgen.sampling.engine import window_batch
from mdgen.sampling.relax import FrameRelaxer
from mdgen.tasks import TaskSpec
from mdgen.tokens import frame_features
from mdgen.trajectory_files import read_trajectory, write_trajectory

DECODERS = {
    "frames": DecoderSettings("frames", declash=False),
    "chain": DecoderSettings("chain", declash=False),
    "chain + declash": DecoderSettings("chain", declash=True),
}
RELAXED = ("frames", "chain", "chain + declash")  # relax=true after these (subsample: ~0.05-0.3 s/frame)
TORSION_BINS = 100


@dataclass
class Row:
    label: str
    frames: int
    valid: float
    ca_break: float
    cn_break: float
    clash: float
    rmsd_to_md_A: float | None = None
    cpu_ms_per_frame: float | None = None  # decoding (relax rows: relaxation)
    torsion_change_deg: float | None = None  # declash: mean |change| of the torsions of changed frames
    changed_fraction: float | None = None  # declash: fraction of frames whose torsions were changed
    torsion_jsd: float | None = None  # generated: mean JS distance of torsions to the peptide's MD

    def markdown(self) -> str:
        def fmt(value, spec):
            return "" if value is None else format(value, spec)

        return (
            f"| {self.label} | {self.frames} | {self.valid:.3f} | {self.ca_break:.3f} | {self.cn_break:.3f} | "
            f"{self.clash:.3f} | {fmt(self.rmsd_to_md_A, '.3f')} | {fmt(self.cpu_ms_per_frame, '.3g')} | "
            f"{fmt(self.changed_fraction, '.3f')} | {fmt(self.torsion_change_deg, '.2f')} | "
            f"{fmt(self.torsion_jsd, '.3f')} |"
        )


HEADER = (
    "| rows | frames | valid | CA-CA break | C-N break | clash | heavy RMSD to MD (Å) | "
    "ms/frame (decode: CPU; relax: wall) | frames changed | their mean torsion change (°) | torsion JSD |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def failures(atom14: np.ndarray, aatype: np.ndarray) -> dict[str, np.ndarray]:
    """METHOD 12 flags of frames (T, L, 14, 3) Å, read back from a written PDB/XTC as evaluation does."""
    with tempfile.TemporaryDirectory() as tmp:
        pdb, xtc = write_trajectory(Path(tmp) / "frames", atom14, aatype, timestep_ps=1.0)
        return frame_failures(md.load(str(xtc), top=str(pdb)))


class Tally:
    """Pools per-peptide results into one row."""

    def __init__(self, label: str):
        self.label = label
        self.flags: dict[str, list[np.ndarray]] = {"ca_break": [], "cn_break": [], "clash": []}
        self.rmsd: list[np.ndarray] = []
        self.cpu_s = 0.0
        self.turns: list[float] = []
        self.changed: list[int] = []
        self.jsd: list[float] = []

    def add(self, atom14, aatype, reference=None, cpu_s=0.0, turn_deg=None, jsd=None, changed=None):
        for key, value in failures(atom14, aatype).items():
            self.flags[key].append(value)
        if reference is not None:
            mask = rc.ATOM14_MASK[aatype]
            self.rmsd.append(np.sqrt(((atom14 - reference)[:, mask] ** 2).sum(-1).mean(-1)))
        self.cpu_s += cpu_s
        if turn_deg is not None:
            self.turns.append(turn_deg)
        if jsd is not None:
            self.jsd.append(jsd)
        if changed is not None:
            self.changed.append(changed)

    def row(self) -> Row:
        flags = {key: np.concatenate(values) for key, values in self.flags.items()}
        invalid = flags["ca_break"] | flags["cn_break"] | flags["clash"]
        frames = len(invalid)
        return Row(
            self.label,
            frames,
            float(1 - invalid.mean()),
            float(flags["ca_break"].mean()),
            float(flags["cn_break"].mean()),
            float(flags["clash"].mean()),
            float(np.concatenate(self.rmsd).mean()) if self.rmsd else None,
            1000 * self.cpu_s / frames if self.cpu_s else None,
            float(np.mean(self.turns)) if self.turns else None,
            sum(self.changed) / frames if self.changed else None,
            float(np.mean(self.jsd)) if self.jsd else None,
        )


def forward_task(num_frames: int) -> TaskSpec:
    return TaskSpec(name="forward", num_frames=num_frames, frame_interval_ps=10.0, cond_frames=(0,))


def decode(tokens, batch, aatype, task, settings) -> tuple[np.ndarray, float, object]:
    """(B, T, L, 14, 3) decoded atoms, CPU seconds, counts."""
    start = time.process_time()
    decoded = decode_windows_counted(tokens, batch, aatype, task, settings)
    return decoded.atom14.numpy(), time.process_time() - start, decoded


def torsion_turn_deg(atom14_a: np.ndarray, atom14_b: np.ndarray, aatype: np.ndarray) -> float:
    """Mean |change| (°) of the torsions of frames that changed at all (0 when none did)."""
    a = frame_features(torch.as_tensor(atom14_a), torch.as_tensor(aatype))
    b = frame_features(torch.as_tensor(atom14_b), torch.as_tensor(aatype))
    turn = torch.rad2deg(
        torch.atan2(a.torsions[..., 0], a.torsions[..., 1])
        - torch.atan2(b.torsions[..., 0], b.torsions[..., 1])
    )
    turn = (torch.remainder(turn + 180.0, 360.0) - 180.0).abs() * a.torsion_mask
    changed = turn.flatten(1).amax(-1) > 1e-3
    if not changed.any():
        return 0.0
    return float(turn[changed].sum() / (a.torsion_mask.sum() * changed.sum()))


def peptide_dirs(roots: list[str], names: list[str] | None) -> list[Path]:
    dirs = []
    for root in roots:
        for directory in sorted(Path(root).iterdir()):
            if (directory / f"{directory.name}.pdb").is_file() and (names is None or directory.name in names):
                dirs.append(directory)
    return dirs


def read_md(directory: Path, stride: int):
    return read_trajectory(
        directory / f"{directory.name}.pdb", directory / f"{directory.name}.xtc", stride=stride
    )


def md_round_trip(dirs: list[Path], stride: int, relax_every: int, relaxer: FrameRelaxer) -> list[Row]:
    tallies = {"MD (control)": Tally("MD (control)")}
    tallies |= {label: Tally(f"decoder={label}") for label in DECODERS}
    relax_tallies = {"MD": Tally(f"MD (control, every {relax_every}th frame)")}
    relax_tallies |= {label: Tally(f"decoder={label} + relax (every {relax_every}th)") for label in RELAXED}
    for directory in dirs:
        traj = read_md(directory, stride)
        atom14, aatype = torch.as_tensor(traj.atom14), torch.as_tensor(traj.aatype)
        batch = window_batch(atom14[None], aatype[None])
        task = forward_task(len(atom14))
        tokens = task.build_inputs(batch).tokens
        tallies["MD (control)"].add(traj.atom14, traj.aatype)
        decoded = {}
        for label, settings in DECODERS.items():
            atoms, cpu_s, counts = decode(tokens, batch, aatype[None], task, settings)
            decoded[label] = atoms[0]
            turn = changed = None
            if settings.declash:
                turn = torsion_turn_deg(atoms[0], decoded["chain"], traj.aatype)
                changed = counts.frames_declashed
            tallies[label].add(atoms[0], traj.aatype, traj.atom14, cpu_s, turn, changed=changed)
        subsample = slice(None, None, relax_every)
        relax_tallies["MD"].add(traj.atom14[subsample], traj.aatype)
        for label in RELAXED:
            before = relaxer.usage
            relaxed = relaxer.relax(decoded[label][subsample], traj.aatype)
            spent = relaxer.usage.wall_s - before.wall_s
            relax_tallies[label].add(relaxed, traj.aatype, traj.atom14[subsample], cpu_s=0.0)
            relax_tallies[label].cpu_s = relax_tallies[label].cpu_s + spent  # wall s (OpenMM threads)
        print(f"  {directory.name}: {len(atom14)} frames", flush=True)
    rows = [tally.row() for tally in tallies.values()]
    for key, tally in relax_tallies.items():
        row = tally.row()
        if key != "MD":
            row.cpu_ms_per_frame = 1000 * tally.cpu_s / row.frames  # relax: wall ms per frame
        rows.append(row)
    return rows


def omega_percentiles(dirs: list[Path], stride: int) -> dict[str, float]:
    deviations = []
    for directory in dirs:
        traj = read_md(directory, stride)
        features = frame_features(torch.as_tensor(traj.atom14), torch.as_tensor(traj.aatype))
        omega = torch.rad2deg(torch.atan2(features.torsions[:, 1:, 0, 0], features.torsions[:, 1:, 0, 1]))
        planar = torch.where(omega.abs() < 90, torch.zeros_like(omega), torch.full_like(omega, 180.0))
        deviations.append(((omega.abs() - planar).abs()).flatten().numpy())
    values = np.concatenate(deviations)
    return {
        "angles": int(len(values)),
        **{f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99, 99.9)},
        "max": float(values.max()),
        f"fraction_beyond_{OMEGA_MAX_DEVIATION_DEG:g}": float((values > OMEGA_MAX_DEVIATION_DEG).mean()),
    }


def torsion_jsd(atom14: np.ndarray, aatype: np.ndarray, reference_angles: np.ndarray, definitions) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        pdb, xtc = write_trajectory(Path(tmp) / "g", atom14, aatype, timestep_ps=1.0)
        angles = torsion_angles(md.load(str(xtc), top=str(pdb)), definitions)
    return float(
        np.mean(
            [angle_jsd(reference_angles[:, i], angles[:, i], TORSION_BINS) for i in range(angles.shape[1])]
        )
    )


def generated(
    ckpt: str, dirs: list[Path], starts: int, seed: int, method: str, steps: int, relax_every: int, relaxer
) -> tuple[list[Row], dict]:
    from mdgen.config import load_module

    module = load_module(ckpt).eval()
    num_frames = module.task.num_frames
    tallies = {label: Tally(f"decoder={label}") for label in DECODERS}
    relax_tallies = {label: Tally(f"decoder={label} + relax (every {relax_every}th)") for label in RELAXED}
    sampling_s = 0.0
    for directory in dirs:
        traj = read_md(directory, 1)
        start_frames = np.linspace(0, traj.num_frames - 1, starts).astype(int)
        atom14 = torch.as_tensor(np.repeat(traj.atom14[start_frames][:, None], num_frames, axis=1))
        aatype = torch.as_tensor(traj.aatype)[None].expand(starts, -1)
        batch = window_batch(atom14, aatype)
        start = time.perf_counter()
        with torch.no_grad():
            result = module.sample(
                batch, generator=torch.Generator().manual_seed(seed), method=method, num_steps=steps
            )
        sampling_s += time.perf_counter() - start
        tokens = result.tokens.float()
        with (
            tempfile.TemporaryDirectory() as tmp
        ):  # the reference's torsions, in the topology written for samples
            pdb, xtc = write_trajectory(Path(tmp) / "r", traj.atom14, traj.aatype, timestep_ps=1.0)
            reference = md.load(str(xtc), top=str(pdb))
        definitions = torsion_definitions(reference.topology)
        reference_angles = pooled_torsion_angles([reference], definitions)
        decoded = {}
        for label, settings in DECODERS.items():
            atoms, cpu_s, counts = decode(tokens, batch, aatype, module.task, settings)
            frames = atoms[:, 1:].reshape(-1, *atoms.shape[2:])  # frame 0 is the given start
            decoded[label] = frames
            turn = changed = None
            if settings.declash:
                turn = torsion_turn_deg(frames, decoded["chain"], traj.aatype)
                changed = counts.frames_declashed * len(frames) / (len(frames) + starts)  # frame 0 excluded
            jsd = torsion_jsd(frames, traj.aatype, reference_angles, definitions)
            tallies[label].add(frames, traj.aatype, cpu_s=cpu_s, turn_deg=turn, jsd=jsd, changed=changed)
        for label in RELAXED:
            before = relaxer.usage.wall_s
            relaxed = relaxer.relax(decoded[label][::relax_every], traj.aatype)
            relax_tallies[label].add(relaxed, traj.aatype)
            relax_tallies[label].cpu_s += relaxer.usage.wall_s - before
        print(f"  {directory.name}: {starts} windows of {num_frames} frames", flush=True)
    rows = [tally.row() for tally in tallies.values()]
    for tally in relax_tallies.values():
        row = tally.row()
        row.cpu_ms_per_frame = 1000 * tally.cpu_s / row.frames
        rows.append(row)
    info = {
        "checkpoint": ckpt,
        "task": module.task.name,
        "num_frames": num_frames,
        "solver": f"{method}/{steps}",
    }
    return rows, info | {"sampling_wall_s": sampling_s}


def protein_drift(pdb_path: str, lengths: list[int]) -> list[dict]:
    """Round-trip heavy-atom RMSD (as placed) of contiguous segments of the first protein chain."""
    traj = md.load(pdb_path)
    keep = traj.topology.select(
        "chainid 0 and protein and not element H and resname " + " ".join(rc.RESNAMES3[:20])
    )
    traj = traj.atom_slice(keep)
    residues = list(traj.topology.residues)
    atom14 = np.zeros((len(residues), 14, 3), np.float32)
    aatype = np.array([rc.RESTYPES.index(rc.RESTYPE_3TO1[r.name]) for r in residues])
    for i, residue in enumerate(residues):
        names = rc.ATOM14_NAMES[residue.name]
        for atom in residue.atoms:
            if atom.name in names:
                atom14[i, names.index(atom.name)] = traj.xyz[0, atom.index] * 10.0
    ca = atom14[:, 1]
    breaks = np.nonzero(np.linalg.norm(ca[1:] - ca[:-1], axis=-1) > 4.2)[0]
    segments = np.split(np.arange(len(residues)), breaks + 1)
    results = []
    for length in lengths:
        rmsd = {"frames": [], "chain": []}
        for segment in segments:
            for begin in range(0, len(segment) - length + 1, max(1, length // 2)):
                index = segment[begin : begin + length]
                x, a = torch.as_tensor(atom14[index][None]).repeat(2, 1, 1, 1), torch.as_tensor(aatype[index])
                present = (np.abs(atom14[index]).sum(-1) > 0) & rc.ATOM14_MASK[aatype[index]]
                batch = window_batch(x[None], a[None])  # a window of the frame twice (tasks need T >= 2)
                task = forward_task(2)
                tokens = task.build_inputs(batch).tokens
                for label in rmsd:
                    atoms, _, _ = decode(tokens, batch, a[None], task, DecoderSettings(label, declash=False))
                    diff = atoms[0, 0] - atom14[index]
                    rmsd[label].append(float(np.sqrt((diff[present] ** 2).sum(-1).mean())))
        if rmsd["chain"]:
            results.append(
                {"residues": length, "segments": len(rmsd["chain"])}
                | {f"{label}_rmsd_A": float(np.mean(values)) for label, values in rmsd.items()}
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--md", nargs="+", default=["data/demo/md"], help="folders of NAME/NAME.{pdb,xtc}")
    parser.add_argument("--stride", type=int, default=4, help="MD round trip: every n-th frame")
    parser.add_argument("--relax-every", type=int, default=20, help="relax every n-th of those frames")
    parser.add_argument("--ckpt", help="a forward checkpoint: also decode what it generates")
    parser.add_argument("--peptides", nargs="*", help="generated: these names under --md (default: all)")
    parser.add_argument("--starts", type=int, default=4, help="generated: windows per peptide")
    parser.add_argument("--solver", default="euler")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--protein", help="a PDB file for the drift table (e.g. pdbfixer's tests/data/1BHL.pdb)"
    )
    parser.add_argument("--out", help="write every figure here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    relaxer = FrameRelaxer()
    record: dict = {"command": "python " + " ".join(sys.argv), "torch_threads": 1}
    dirs = peptide_dirs(args.md, None)

    print(f"== MD round trip ({len(dirs)} peptides, every {args.stride}th frame)")
    rows = md_round_trip(dirs, args.stride, args.relax_every, relaxer)
    print(HEADER, *(row.markdown() for row in rows), sep="\n")
    record["md_round_trip"] = [asdict(row) for row in rows]

    omega = omega_percentiles(dirs, args.stride)
    print(f"== |omega - planar| in MD (deg): {json.dumps(omega)}")
    record["omega_in_md"] = omega

    if args.ckpt:
        chosen = peptide_dirs(args.md, args.peptides)
        print(f"== generated by {args.ckpt} ({len(chosen)} peptides)")
        rows, info = generated(
            args.ckpt, chosen, args.starts, args.seed, args.solver, args.steps, args.relax_every, relaxer
        )
        print(json.dumps(info))
        print(HEADER, *(row.markdown() for row in rows), sep="\n")
        record["generated"] = {"info": info, "rows": [asdict(row) for row in rows]}

    if args.protein:
        drift = protein_drift(args.protein, [4, 8, 16, 32, 64])
        print(
            f"== protein drift ({args.protein})\n| residues | segments | frames RMSD (Å) | chain RMSD (Å) |\n|---|---|---|---|"
        )
        for entry in drift:
            print(
                f"| {entry['residues']} | {entry['segments']} | {entry['frames_rmsd_A']:.2f} | {entry['chain_rmsd_A']:.2f} |"
            )
        record["protein_drift"] = drift

    record["relax"] = relaxer.usage.summary()
    print(f"== relax: {json.dumps(record['relax'])}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
