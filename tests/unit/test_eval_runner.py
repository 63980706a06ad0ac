"""The evaluation runner in-process: bad input vs bugs, the command's verdict, and the mean ± SEM over peptides.

Three good peptides and one whose reference MD is too short for the MSM lag are written to
tmp_path once (about 3 s of evaluation); the failure semantics use stand-in evaluators.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eval_peptide import markov_chain, peptide_frame, peptide_trajectory, write_peptide
from mdgen.analysis.loading import EvaluationInputError
from mdgen.analysis.msm import StateModelSettings, fit_reference_state_model
from mdgen.errors import UserError
from mdgen.evaluation import runner
from mdgen.evaluation.decorrelation import decorrelation_curves
from mdgen.evaluation.evaluator import TaskEvaluator
from mdgen.evaluation.forward import ForwardSettings
from mdgen.evaluation.pipelines import EvaluationConfig

CHAIN = np.array([[0.9, 0.08, 0.02], [0.1, 0.85, 0.05], [0.05, 0.05, 0.9]])
FORWARD = ForwardSettings(
    decorrelation_max_lag_ps=100.0,
    md_truncations_ps=(100.0,),
    state_model=StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=20.0, n_metastable=4),
)
GOOD = ("AAAA", "BBBB", "CCCC")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runner")
    frame = peptide_frame(root)
    rng = np.random.default_rng(7)
    # SHRT: 8 reference frames cannot support a 2-frame (20 ps) TICA/MSM lag (a bad input, not a bug)
    for name, n_frames in zip((*GOOD, "SHRT"), (300, 300, 300, 8)):
        traj = peptide_trajectory(frame, markov_chain(CHAIN, n_frames, rng), rng)
        write_peptide(root / "md" / name / name, traj)
    for name, n_frames in zip((*GOOD, "SHRT"), (120, 200, 80, 50)):  # different lengths: different JSDs
        traj = peptide_trajectory(frame, markov_chain(CHAIN, n_frames, rng), rng)
        write_peptide(root / "samples" / name, traj)
    return root


def _config(dirs: Path, out: Path, **kwargs) -> EvaluationConfig:
    return EvaluationConfig(
        task="forward",
        samples_dir=dirs / "samples",
        reference_dir=dirs / "md",
        out_dir=out,
        make_plots=False,
        forward=FORWARD,
        **kwargs,
    )


@pytest.fixture(scope="module")
def real_run(dirs):
    return runner.run_evaluation(_config(dirs, dirs / "eval"))


def test_mean_and_sem_over_three_peptides_match_a_hand_computation(real_run):
    """Catches an aggregate over one peptide only, SEM with ddof=0 or without sqrt(n), or a wrong 'summary'."""
    metrics = json.loads(real_run.metrics_path.read_text())
    assert sorted(metrics["peptides"]) == list(GOOD) and metrics["n_evaluated"] == 3
    for metric in ("torsion_jsd_backbone", "tica0_jsd", "msm_state_jsd"):
        values = np.array([metrics["peptides"][name]["rows"]["generated"][metric] for name in GOOD])
        assert np.ptp(values) > 1e-3, "the fixture must give the peptides different values"
        mean = values.sum() / 3
        sem = math.sqrt(((values - mean) ** 2).sum() / 2) / math.sqrt(3)  # std with ddof = 1, over sqrt(n)
        stats = metrics["aggregate"]["generated"][metric]
        assert stats["n"] == 3
        assert stats["mean"] == pytest.approx(mean, abs=1e-12)
        assert stats["sem"] == pytest.approx(sem, abs=1e-12)
        assert metrics["summary"][metric] == pytest.approx(mean, abs=1e-12)
    report = real_run.report_path.read_text()
    bb = metrics["aggregate"]["generated"]["torsion_jsd_backbone"]
    assert f"| generated (n=3) | {bb['mean']:.3f} ± {bb['sem']:.3f} |" in report


def test_a_too_short_sample_is_a_failed_peptide_and_the_command_fails(real_run):
    """Catches a bad input raised as a bug, or swallowed without failing the command."""
    assert list(real_run.failures) == ["SHRT"]
    assert "8 frames are too short for lags of 2 frames" in real_run.failures["SHRT"]
    assert real_run.failures["SHRT"].startswith("EvaluationInputError")
    message = runner.failure_message(real_run, allow_failures=False)
    assert "1 of 4 peptides not evaluated (SHRT)" in message
    assert str(real_run.report_path) in message and "allow_failures=true" in message
    assert runner.failure_message(real_run, allow_failures=True) is None


def test_too_short_inputs_are_user_errors():
    """Catches these input problems going back to plain ValueError (which the runner now treats as bugs)."""
    with pytest.raises(UserError, match="too short for a decorrelation curve"):
        decorrelation_curves([np.zeros((1, 3))], 10.0, 100.0)
    features = np.random.default_rng(0).normal(size=(20, 4))  # 20 <= 4 x the longer lag (5 frames)
    with pytest.raises(UserError, match="too short for lags of 5 frames"):
        fit_reference_state_model(
            features, 10.0, StateModelSettings(tica_lag_ps=20.0, msm_lag_ps=50.0), "ref"
        )


class _StandIn(TaskEvaluator):
    """An evaluator that records calls and raises `behaviour[name]` (or returns a trivial result)."""

    task, main_row = "forward", "generated"

    def __init__(self, behaviour: dict[str, Exception | None], calls: list[str]):
        self.behaviour, self.calls = behaviour, calls

    def peptide_names(self, samples_dir):
        return sorted(self.behaviour)

    def load(self, config, name):
        self.calls.append(name)
        if self.behaviour[name] is not None:
            raise self.behaviour[name]
        return name

    def compute(self, name, inputs, config):
        return {"name": inputs}

    def plot(self, name, analysis, config):
        pass

    def result(self, analysis):
        return analysis

    def sections(self, results, config):
        return [], {}


def _stand_in(monkeypatch, behaviour: dict[str, Exception | None], calls: list[str]) -> None:
    monkeypatch.setitem(runner.EVALUATORS, "forward", _StandIn(behaviour, calls))


def test_user_errors_are_reported_per_peptide_and_the_rest_is_evaluated(dirs, tmp_path, monkeypatch):
    calls = []
    _stand_in(monkeypatch, {"A": EvaluationInputError("A.xtc: cannot be read"), "B": None}, calls)
    summary = runner.run_evaluation(_config(dirs, tmp_path / "out"))
    assert calls == ["A", "B"] and list(summary.results) == ["B"]
    assert summary.failures == {"A": "EvaluationInputError: A.xtc: cannot be read"}
    assert json.loads(summary.metrics_path.read_text())["failed"] == summary.failures
    assert "not evaluated (A)" in runner.failure_message(summary, allow_failures=False)


@pytest.mark.parametrize("bug", [ZeroDivisionError("division by zero"), KeyError("phi:ALA1"), TypeError("x")])
def test_a_bug_is_raised_not_reported_as_a_failed_peptide(dirs, tmp_path, monkeypatch, bug):
    """Catches `except Exception` turning coding bugs into 'failed' entries (and exit 0 with other peptides)."""
    calls = []
    _stand_in(monkeypatch, {"A": None, "B": bug, "C": None}, calls)
    with pytest.raises(type(bug)) as raised:
        runner.run_evaluation(_config(dirs, tmp_path / "out"))
    assert calls == ["A", "B"]  # stops at the bug
    assert any("peptide B" in note for note in getattr(raised.value, "__notes__", ["peptide B"]))
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_bug_in_a_worker_process_is_raised(dirs, tmp_path, monkeypatch):
    """n_jobs > 1: the worker's exception reaches the caller (the pool must not swallow it)."""
    _stand_in(monkeypatch, {"A": None, "B": ZeroDivisionError("in a worker")}, [])
    with pytest.raises(ZeroDivisionError, match="in a worker"):
        runner.run_evaluation(_config(dirs, tmp_path / "out", n_jobs=2))


@pytest.mark.parametrize(
    "results, failures, allow, expected",
    [
        (["A"], [], False, None),
        (["A"], ["B"], False, "1 of 2 peptides not evaluated (B)"),
        (["A"], ["B"], True, None),
        ([], ["B", "C"], True, "2 of 2 peptides not evaluated (B, C)"),  # nothing evaluated: never a success
        ([], [runner.NO_PEPTIDES], True, "no peptides found"),
    ],
)
def test_failure_message_is_the_commands_verdict(results, failures, allow, expected):
    summary = runner.RunSummary(
        {name: object() for name in results},
        {name: "no peptides found for task forward in s" for name in failures},
        Path("out/metrics.json"),
        Path("out/report.md"),
    )
    message = runner.failure_message(summary, allow_failures=allow)
    if expected is None:
        assert message is None
    else:
        assert expected in message and "out/report.md" in message and "\n" not in message


def test_each_task_has_one_registered_evaluator_that_finds_its_own_samples(tmp_path):
    """The one registry: catches a task missing from it, registered under another name, or looking
    for another task's manifests (interp reading *_inpaint.json would evaluate nothing)."""
    from mdgen.evaluation.pipelines import EVALUATORS, TASKS

    assert TASKS == ("forward", "interp", "upsample", "inpaint", "protein")
    assert all(EVALUATORS[task].task == task for task in TASKS)
    for name in ("AKIR_paths.json", "GWEK_inpaint.json", "MKWE.pdb", "MKWE_0.pdb", "FLRH_1.pdb"):
        (tmp_path / name).write_text("")
    found = {task: EVALUATORS[task].peptide_names(tmp_path) for task in TASKS}
    assert found["interp"] == ["AKIR"] and found["inpaint"] == ["GWEK"]
    assert found["forward"] == found["upsample"] == found["protein"] == ["FLRH", "MKWE"]
