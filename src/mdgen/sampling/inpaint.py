"""Inpainting (METHOD 6.4; the original's "design"): given a trajectory window, generate the motion and the identities
of the designed residues, conditioned on the other residues' trajectories.

Outputs for a window named NAME and samples i = 0..N-1:
  NAME_{i}.pdb / NAME_{i}.xtc  the generated window, built WITH the designed identities (the original
                               built the true sequence, so its side chains ignored the design)
  NAME_{i}.json                the sample's record, written last (marks it finished)
                               (`mdgen.sample_files.InpaintSampleRecord`)
  NAME_inpaint.json            every sample's record without aa_probs, the true sequence, designed
                               positions and window (`mdgen.sample_files.InpaintManifest`)
  NAME_inpaint.csv             index, sequence, designed, recovery, xtc
"sequence" is the built sequence (true identities at given residues, designed ones elsewhere);
"predicted_sequence" is the model's argmax at every residue whose identity it generated, X elsewhere
(a design model without sequence input predicts the flanks too, which measures flank recovery).
File names in the JSON/CSV are relative to NAME_inpaint.json, so the folder can move. There is no
shared "topology": each sample's NAME_{i}.pdb carries its own designed residues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdgen.constants import RESTYPES, UNKNOWN_AATYPE
from mdgen.sample_files import (
    INPAINT_SUFFIX,
    NOT_PREDICTED,
    InpaintManifest,
    InpaintSampleRecord,
    InpaintWindowRecord,
    read_inpaint_sample,
)
from mdgen.sampling.decoding import designed_positions
from mdgen.sampling.engine import WindowSampler, noise_seed, output_groups
from mdgen.sampling.report import OutputReport, window_outputs_report
from mdgen.sampling.writer import TrajectoryOutput, write_csv, write_json
from mdgen.tasks import TaskSpec


@dataclass(frozen=True)
class InpaintWindow:
    """The trajectory window that conditions the design."""

    name: str  # output stem
    atom14: np.ndarray  # (T, L, 14, 3) Å, T = task.num_frames frames at task.frame_interval_ps
    aatype: np.ndarray  # (L,) true identities
    source: str
    start_frame: int  # first frame in the source trajectory
    stride: int  # source frames per window frame

    @property
    def sequence(self) -> str:
        return "".join(RESTYPES[a] for a in self.aatype)


def retarget_design(task: TaskSpec, design_residues: Sequence[int] | None, num_residues: int) -> TaskSpec:
    """The task with `design_residues` designed and every other residue given (None: the task as trained).

    Residue indices may be negative (from the end); raises naming the index when out of range.
    """
    if design_residues is None:
        return task
    positions = set()
    for r in design_residues:
        index = r + num_residues if r < 0 else r
        if not 0 <= index < num_residues:
            raise ValueError(f"design_residues: residue {r} is out of range for {num_residues} residues")
        positions.add(index)
    if not positions or len(positions) == num_residues:
        raise ValueError(
            f"design_residues={list(design_residues)} must leave at least one of {num_residues} residues given"
        )
    given = [r for r in range(num_residues) if r not in positions]
    return dataclasses.replace(task, cond_residues=tuple(given), design_residues=tuple(sorted(positions)))


def _letters(aatype: np.ndarray) -> str:
    """One-letter sequence; X where the identity is unknown (not predicted)."""
    return "".join(RESTYPES[a] if a < UNKNOWN_AATYPE else NOT_PREDICTED for a in aatype)


def sample_record(
    index: int,
    built: np.ndarray,
    sampled: np.ndarray,
    predicted: np.ndarray,
    window: InpaintWindow,
    positions: Sequence[int],
    seed: int,
    aa_probs: np.ndarray | None,
    xtc: str,
) -> InpaintSampleRecord:
    """The record of one design: built (L,) and sampled (L,) identities, predicted (L,) bool mask,
    aa_probs (L, 20) or None; `xtc` is the file name of its trajectory."""
    recovery = float(np.mean(built[positions] == window.aatype[positions])) if positions else None
    return InpaintSampleRecord(
        index=index,
        sequence=_letters(built),
        predicted_sequence=_letters(np.where(predicted, sampled, UNKNOWN_AATYPE)),
        recovery=recovery,
        noise_seed=seed,
        xtc=xtc,
        aa_probs=None if aa_probs is None else tuple(map(tuple, np.round(aa_probs, 5).tolist())),
    )


def write_inpaint_manifests(
    out_dir: Path,
    window: InpaintWindow,
    positions: Sequence[int],
    task: TaskSpec,
    outputs: Sequence[TrajectoryOutput],
) -> Path:
    """NAME_inpaint.json and NAME_inpaint.csv from the finished samples' records."""
    # xtc from the output itself: records of a run resumed from an older mdgen do not name it
    samples = tuple(dataclasses.replace(read_inpaint_sample(o.record), xtc=o.xtc.name) for o in outputs)
    manifest = InpaintManifest(
        name=window.name,
        true_sequence=window.sequence,
        designed_positions=tuple(positions),
        window=InpaintWindowRecord(
            source=window.source,
            start_frame=window.start_frame,
            stride=window.stride,
            num_frames=task.num_frames,
            frame_interval_ps=task.frame_interval_ps,
        ),
        samples=samples,
    )
    write_csv(
        out_dir / f"{window.name}_inpaint.csv",
        ("index", "sequence", "designed", "recovery", "xtc"),
        [
            (s.index, s.sequence, "".join(s.sequence[p] for p in positions), s.recovery, s.xtc)
            for s in samples
        ],
    )
    return write_json(out_dir / f"{window.name}{INPAINT_SUFFIX}", manifest.to_json())


def run_inpaint(
    sampler: WindowSampler,
    window: InpaintWindow,
    num_samples: int,
    base_seed: int,
    batch_size: int,
    out_dir: Path,
) -> OutputReport:
    """Write NAME_{i} for every design not yet finished, then the NAME_inpaint manifests."""
    task = sampler.task
    num_residues = len(window.aatype)
    positions = designed_positions(task, num_residues)
    predicted = task.design_residue_mask(num_residues).numpy()  # (L,) identities the model generates
    outputs = [TrajectoryOutput(out_dir / f"{window.name}_{i}", has_record=True) for i in range(num_samples)]
    pending = [i for i, output in enumerate(outputs) if not output.is_finished()]
    usage_before = sampler.usage
    groups = output_groups(pending, num_samples, batch_size)
    for group in tqdm(groups, desc=f"design {window.name}", unit="batch"):
        atoms = np.broadcast_to(window.atom14, (len(group), *window.atom14.shape))  # (B, T, L, 14, 3)
        aatype = np.broadcast_to(window.aatype, (len(group), num_residues))
        generated = sampler.generate(atoms, aatype, sampler.generator(base_seed + group[0]))
        for row, i in enumerate(group):
            if i in pending:
                probs = None if generated.aa_probs is None else generated.aa_probs[row]
                record = sample_record(
                    i,
                    generated.aatype[row],
                    generated.sampled_aatype[row],
                    predicted,
                    window,
                    positions,
                    noise_seed(base_seed, i, batch_size),
                    probs,
                    outputs[i].xtc.name,
                )
                outputs[i].write(
                    generated.atom14[row], generated.aatype[row], task.frame_interval_ps, record.to_json()
                )
    manifest = write_inpaint_manifests(out_dir, window, positions, task, outputs)
    usage = sampler.usage - usage_before
    return window_outputs_report(
        window.name,
        [output.xtc for output in outputs],
        range(num_samples),
        pending,
        task.num_frames,
        task.frame_interval_ps,
        usage,
        {"design_json": str(manifest), "designed_positions": positions},
    )
