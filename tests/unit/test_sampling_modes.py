"""The checkpoint's task decides the sampling mode; options of other modes are refused."""

from pathlib import Path

import pytest
import yaml

from mdgen.sampling.modes import (
    FORWARD,
    INPAINT,
    INTERP,
    UPSAMPLE,
    IncompatibleTaskError,
    check_mode,
    mode_of_task,
)
from mdgen.sampling.request import SamplingRequest, check_options_for_mode
from mdgen.tasks import TaskSpec

TASK_DIR = Path(__file__).resolve().parents[2] / "conf" / "task"


def task_from_config(name: str) -> TaskSpec:
    values = yaml.safe_load((TASK_DIR / f"{name}.yaml").read_text())
    values.pop("_target_")
    return TaskSpec(**values)


@pytest.mark.parametrize(
    "config, mode", [("forward", FORWARD), ("interp", INTERP), ("upsample", UPSAMPLE), ("inpaint", INPAINT)]
)
def test_each_task_config_maps_to_its_driver(config, mode):
    assert mode_of_task(task_from_config(config)) == mode


def test_requested_mode_must_match_the_checkpoint():
    with pytest.raises(IncompatibleTaskError, match=r"mode=upsample.*task 'forward'"):
        check_mode(task_from_config("forward"), "upsample", "fwd.ckpt")
    assert check_mode(task_from_config("forward"), None, "fwd.ckpt") == FORWARD


def test_options_of_another_task_are_refused(tmp_path):
    ckpt = tmp_path / "fwd.ckpt"
    request = SamplingRequest(
        ckpt_path=str(ckpt), out_dir=str(tmp_path), allow_extrapolation=True, num_chunks=2
    )
    with pytest.raises(IncompatibleTaskError, match=r"allow_extrapolation is for upsample") as error:
        check_options_for_mode(request, FORWARD, "forward task")
    assert "num_chunks" not in str(error.value)
    check_options_for_mode(request.__class__(ckpt_path=str(ckpt), out_dir="x", num_chunks=2), FORWARD, "")


def test_the_reference_msm_options_default_to_the_evaluators_settings():
    """Sampling's TPS endpoints and mdgen.evaluate use one MSM: catches a default copied into the
    request (it would drift from StateModelSettings) or a given value that is dropped."""
    from mdgen.analysis.msm import StateModelSettings

    request = SamplingRequest(ckpt_path="x.ckpt", out_dir="out")
    assert StateModelSettings(**request.state_model_options()) == StateModelSettings()
    request = SamplingRequest(ckpt_path="x.ckpt", out_dir="out", msm_lag_ps=20.0, n_metastable=4)
    settings = StateModelSettings(**request.state_model_options())
    assert (settings.msm_lag_ps, settings.n_metastable) == (20.0, 4)
    assert settings.tica_lag_ps == StateModelSettings().tica_lag_ps
