"""The sample manifests (mdgen.sample_files): what the sampling writers put on disk is what the
evaluation readers parse, the on-disk keys stay the same, and bad files are named in one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mdgen.errors import UserError
from mdgen.evaluation.inpaint import read_inpaint_spec
from mdgen.evaluation.transition_paths import read_path_manifest
from mdgen.sample_files import (
    FORMAT_VERSION,
    InpaintManifest,
    InpaintSampleRecord,
    PathRecord,
    PathsManifest,
    SampleFileError,
    TransitionChoice,
    read_inpaint_manifest,
    read_paths_manifest,
)
from mdgen.sampling.inpaint import InpaintWindow, sample_record, write_inpaint_manifests
from mdgen.sampling.writer import TrajectoryOutput, write_json
from mdgen.tasks import TaskSpec

# The keys `mdgen.sample` has always written (before the typed records); a renamed or dropped one
# would break evaluators of existing sample folders.
PATHS_KEYS = {"name", "reference", "topology", "frame_interval_ps", "num_frames", "transition", "paths"}
PATH_KEYS = {"index", "start_frame", "end_frame", "start_state", "end_state", "xtc", "noise_seed"}
DESIGN_KEYS = {"name", "true_sequence", "designed_positions", "window", "samples"}
DESIGN_SAMPLE_KEYS = {"index", "sequence", "predicted_sequence", "recovery", "noise_seed", "xtc"}


def _paths_manifest() -> PathsManifest:
    transition = TransitionChoice("highest_flux", 1, 3, 0.0125, 20.0, 40, 17, ("k capped at 10",))
    return PathsManifest(
        name="AKIR",
        reference="/md/AKIR.xtc",
        topology="AKIR_0.pdb",
        frame_interval_ps=10.0,
        num_frames=100,
        transition=transition,
        paths=tuple(PathRecord(f"AKIR_{i}.xtc", i, 3, 199, 1, 3, 17 + i) for i in range(2)),
    )


def test_paths_manifest_round_trips_through_its_file_with_the_old_keys(tmp_path):
    manifest = _paths_manifest()
    data = manifest.to_json()
    assert set(data) == PATHS_KEYS | {"format_version"} and data["format_version"] == FORMAT_VERSION
    assert set(data["paths"][0]) == PATH_KEYS and data["transition"]["notes"] == ["k capped at 10"]
    path = write_json(tmp_path / "AKIR_paths.json", data)
    assert read_paths_manifest(path) == manifest  # tuples, nested records and None all come back


def test_the_evaluator_reads_what_the_sampler_writes(tmp_path):
    """Catches a writer key the reader does not look up (e.g. 'trajectory' instead of 'xtc')."""
    path = write_json(tmp_path / "AKIR_paths.json", _paths_manifest().to_json())
    (tmp_path / "AKIR_0.pdb").write_text("topology")
    topology, trajectories = read_path_manifest(path)
    assert topology == tmp_path / "AKIR_0.pdb"
    assert trajectories == [tmp_path / "AKIR_0.xtc", tmp_path / "AKIR_1.xtc"]


def test_design_writer_and_evaluator_agree(tmp_path):
    """sampling.inpaint writes per-sample records and the manifest; evaluation.inpaint parses it.
    Expected recoveries by hand: truth AKIR, designed positions 1, 2."""
    window = InpaintWindow("AKIR", np.zeros((3, 4, 14, 3)), np.array([0, 11, 9, 1]), "in.xtc", 5, 2)
    task = TaskSpec("inpaint", num_frames=3, frame_interval_ps=10.0, cond_residues=(0, 3), design=True)
    predicted = np.array([False, True, True, False])
    built = [np.array([0, 11, 9, 1]), np.array([0, 19, 9, 1])]  # AKIR, AVIR
    outputs = []
    for i, aatype in enumerate(built):
        output = TrajectoryOutput(tmp_path / f"AKIR_{i}", has_record=True)
        probs = np.full((4, 20), 0.05)
        record = sample_record(i, aatype, aatype, predicted, window, [1, 2], 7 + i, probs, output.xtc.name)
        write_json(output.record, record.to_json())
        outputs.append(output)
    manifest_path = write_inpaint_manifests(tmp_path, window, [1, 2], task, outputs)

    data = json.loads(manifest_path.read_text())
    assert set(data) >= DESIGN_KEYS and set(data["samples"][0]) == DESIGN_SAMPLE_KEYS  # no aa_probs
    assert [s["recovery"] for s in data["samples"]] == [1.0, 0.5]
    assert [s["predicted_sequence"] for s in data["samples"]] == ["XKIX", "XVIX"]
    assert data["window"] == {
        "source": "in.xtc",
        "start_frame": 5,
        "stride": 2,
        "num_frames": 3,
        "frame_interval_ps": 10.0,
    }
    spec = read_inpaint_spec(manifest_path)
    assert spec.designed_positions == (1, 2) and spec.true_sequence == "AKIR"
    assert [s.sequence for s in spec.samples] == ["XKIX", "XVIX"]  # the model's prediction is scored
    assert [s.trajectory for s in spec.samples] == [tmp_path / "AKIR_0.xtc", tmp_path / "AKIR_1.xtc"]
    rows = (tmp_path / "AKIR_inpaint.csv").read_text().splitlines()
    assert rows[1:] == ["0,AKIR,KI,1.0,AKIR_0.xtc", "1,AVIR,VI,0.5,AKIR_1.xtc"]


def test_short_hand_written_manifests_read_with_defaults(tmp_path):
    """Only what the evaluator needs is required; the name comes from the file name when absent."""
    path = tmp_path / "GWEK_paths.json"
    path.write_text(json.dumps({"paths": [{"xtc": "GWEK_0.xtc"}], "extra": "ignored"}))
    manifest = read_paths_manifest(path)
    assert manifest.name == "GWEK" and manifest.paths == (PathRecord("GWEK_0.xtc"),)
    assert manifest.topology is None and manifest.format_version == 1  # no key: the first format
    path = tmp_path / "GWEK_inpaint.json"
    path.write_text(
        json.dumps({"true_sequence": "GWEK", "designed_positions": [1], "samples": [{"sequence": "GAEK"}]})
    )
    design = read_inpaint_manifest(path)
    assert design.name == "GWEK" and design.samples == (InpaintSampleRecord("GAEK"),)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", r"not a valid paths manifest \(Expecting property name"),
        ("[]", "the file must be a JSON object, got list"),
        ('{"paths": []}', "lists no paths"),
        ('{"paths": [{"index": 0}]}', r"paths\[0\]\.xtc is missing"),
        ('{"paths": {"xtc": "a.xtc"}}', "paths must be a list"),
        (
            '{"paths": [{"xtc": "a.xtc", "index": "first"}]}',
            r"paths\[0\]\.index='first': expected an integer",
        ),
        (
            '{"paths": [{"xtc": "a.xtc"}], "transition": {"selection": "x"}}',
            "transition.start_state is missing",
        ),
        (
            '{"format_version": 2, "paths": [{"xtc": "a.xtc"}]}',
            "format_version 2 is newer than this mdgen reads",
        ),
        (
            '{"format_version": "1", "paths": [{"xtc": "a.xtc"}]}',
            "format_version='1' is not a version number",
        ),
    ],
)
def test_malformed_or_newer_paths_manifests_name_the_file(tmp_path, content, message):
    path = tmp_path / "AKIR_paths.json"
    path.write_text(content)
    with pytest.raises(SampleFileError, match=rf"^{tmp_path}/AKIR_paths\.json: .*{message}"):
        read_paths_manifest(path)
    assert issubclass(SampleFileError, UserError)  # mdgen.evaluate prints it as one line, exit 2


def test_design_manifest_checks_positions_lengths_and_letters(tmp_path):
    """The three checks a design reader relies on; a missing one lets recoveries index out of range."""
    good = InpaintSampleRecord("AKIR")
    with pytest.raises(ValueError, match=r"designed_positions \[4\] outside 0..3"):
        InpaintManifest("AKIR", "AKIR", (4,), (good,))
    with pytest.raises(ValueError, match="sample 0 has length 3, true sequence 4"):
        InpaintManifest("AKIR", "AKIR", (1,), (InpaintSampleRecord("AKI"),))
    with pytest.raises(ValueError, match=r"sample 0 has non-standard letters \['B'\]"):
        InpaintManifest("AKIR", "AKIR", (1,), (InpaintSampleRecord("AKIR", predicted_sequence="ABIR"),))
    path = tmp_path / "AKIR_inpaint.json"
    path.write_text(json.dumps({"true_sequence": "AKIR", "designed_positions": "12", "samples": []}))
    with pytest.raises(
        SampleFileError, match=r"AKIR_inpaint\.json: not a valid inpaint manifest: designed_positions"
    ):
        read_inpaint_manifest(Path(path))
