"""End-to-end tests of `depth-any-view adapt` (adapt/run.py and the modules it runs) on tiny
synthetic bags written by the project's own bag writer, with a tiny network on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import copy_bag, tiny_model, write_tiny_network
from safetensors.torch import load_file

from depth_any_view.adapt.config import AdaptConfig, load_adapt_config
from depth_any_view.adapt.run import adapt_bags
from depth_any_view.cli import main
from depth_any_view.config import ConfigError

FRAMES = 6  # 5 sets to adapt on, 1 held out (holdout_fraction 0.2)
SIZE = (48, 48)  # (width, height) pixels
GT_TOPICS = ("/depth_gt", "/ground_truth/occupancy")


def _no_ground_truth(topic: str, n: int, total: int) -> bool:
    return not topic.endswith(GT_TOPICS)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adapt")


@pytest.fixture(scope="module")
def network(work: Path) -> dict[str, Path]:
    """A tiny model config and its seeded random weights (the starting weights)."""
    return write_tiny_network(work, tiny_model(grid_dims=[16, 16, 16]))


@pytest.fixture(scope="module")
def params(work: Path) -> Path:
    """The node's parameters with a light CPU setting (a user's override file)."""
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump({"depth_any_view": {"ros__parameters": {
        "device": "cpu", "threads": 1, "warmup_iters": 0}}}))
    return path


@pytest.fixture(scope="module")
def bags(work: Path) -> dict[str, Path]:
    """A bag with depth and occupancy ground truth and its copy without them."""
    from depth_any_view.bag.writer import write_bag
    from depth_any_view.data.synth import generate_frames

    gt = work / "with_gt"
    write_bag(gt, generate_frames(frames=FRAMES, size=SIZE, seed=2, scene="indoor",
                                  grid_dims=16), storage="mcap")
    return {"gt": gt, "stripped": copy_bag(gt, work / "stripped", _no_ground_truth)}


def _cfg(**changes: Any) -> AdaptConfig:
    base = dict(steps=4, lr=1e-3, mlflow=False, save_every=2, device="cpu", threads=1,
                cameras_odometry="none", warmup_steps=1)
    return AdaptConfig(**{**base, **changes})


def _run(bag: Path, out: Path, network: dict[str, Path], params: Path,
         **kwargs: Any) -> dict[str, Any]:
    cfg = kwargs.pop("config", None) or _cfg()
    return adapt_bags([bag], out, params_file=params, weights=network["weights"],
                      config=cfg, progress=False, **kwargs)


@pytest.fixture(scope="module")
def straight(bags, network, params, work) -> dict[str, Any]:
    """Four steps on the bag with ground truth, in one go."""
    return _run(bags["gt"], work / "straight", network, params)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_writes_weights_report_and_scores_held_out_sets(straight, network, work) -> None:
    """DIR holds loadable weights that moved from the start, model.yaml, the report with
    loss curves, a checkpoint, and AbsRel before/after on the held-out set."""
    out = work / "straight"
    for name in ("model.safetensors", "model.yaml", "report.md", "report.json",
                 "loss_curve.png", "checkpoint/adapt_state.pt",
                 "checkpoint/start.safetensors"):
        assert (out / name).is_file(), name
    start, adapted = _tensors(network["weights"]), _tensors(out / "model.safetensors")
    assert start.keys() == adapted.keys()
    assert any(not torch.equal(start[k], adapted[k]) for k in start)
    assert all(torch.equal(start[k], v) for k, v in
               _tensors(out / "checkpoint/start.safetensors").items())
    bag = straight["bags"][0]
    assert (bag["adapt_sets"], bag["holdout_sets"]) == (FRAMES - 1, 1)
    assert bag["odometry"] == "topic /odom" and bag["overlapping_pairs"] > 0
    held = straight["holdout"]
    assert held["sets"] == 1
    for label in ("before", "after"):
        assert 0 < held[label]["abs_rel"] < 10 and held[label]["count"] > 0
        assert 0 < held[label]["scale_ratio"] < 100
    assert straight["steps"] == 4 and len(yaml.safe_load(
        (out / "model.yaml").read_text())["held_out"]) == 3
    text = (out / "report.md").read_text()
    assert "| before |" in text and "| after |" in text and "loss_curve.png" in text


def test_ground_truth_topics_are_never_read(straight, bags, network, params, work) -> None:
    """Stripping every depth_gt and occupancy ground-truth topic changes no weight bit."""
    stripped = _run(bags["stripped"], work / "stripped_run", network, params)
    a = _tensors(work / "straight" / "model.safetensors")
    b = _tensors(work / "stripped_run" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert stripped["holdout"] is None and not stripped["bags"][0]["depth_gt"]
    assert "nothing to score" in (work / "stripped_run" / "report.md").read_text()


def test_resume_gives_the_same_weights_bit_for_bit(straight, bags, network, params, work,
                                                   monkeypatch) -> None:
    """A run interrupted after its step-2 checkpoint, then --resume: the weights and
    losses of the run that never stopped."""
    from depth_any_view.adapt.trainer import Adapter

    out = work / "resumed"
    step = Adapter.process_batch

    def interrupted(self: Adapter) -> dict[str, float]:
        if self.step == 2:
            raise KeyboardInterrupt
        return step(self)

    with monkeypatch.context() as m:
        m.setattr(Adapter, "process_batch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _run(bags["gt"], out, network, params)
    assert not (out / "model.safetensors").exists()
    resumed = _run(bags["gt"], out, network, params, resume=out)
    a = _tensors(work / "straight" / "model.safetensors")
    b = _tensors(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["steps"] == 4
    assert resumed["holdout"]["before"] == straight["holdout"]["before"]
    assert resumed["loss_last"] == straight["loss_last"]


def test_adapted_weights_load_in_eval_bag(straight, bags, params, work) -> None:
    """eval-bag (and so the node's `weights` parameter) takes DIR/model.safetensors."""
    from depth_any_view.bag.evaluate import evaluate_bag

    weights = work / "straight" / "model.safetensors"
    result = evaluate_bag(bags["gt"], work / "eval_adapted", params_file=params,
                          weights=weights, progress=False, output_bag=False)
    assert result["engine"]["weights"] == str(weights)
    assert result["sets"]["processed"] == FRAMES
    assert 0 < result["depth"]["overall"]["abs_rel"] < 10


def test_command_line_with_mlflow(bags, network, params, work, capsys) -> None:
    """The subcommand runs, prints the held-out figures and logs an MLflow run."""
    out = work / "cli"
    rc = main(["adapt", str(bags["gt"]), "--out", str(out), "--params", str(params),
               "--weights", str(network["weights"]), "--steps", "2", "--device", "cpu",
               "--set", "mlflow=true", "--set", "cameras_odometry=none", "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "held-out AbsRel" in printed and "model.safetensors" in printed
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("depth_any_view_adapt")
    (run,) = client.search_runs([exp.experiment_id])
    assert "adapt/total" in run.data.metrics and "holdout/after_abs_rel" in run.data.metrics
    assert run.data.params["adapt.steps"] == "2"


def _error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    return err


def test_unusable_bags_get_one_clear_line(bags, network, params, work, capsys) -> None:
    """Missing CameraInfo, too few frames, no overlapping cameras and no odometry."""
    base = ["--params", str(params), "--weights", str(network["weights"]), "--quiet",
            "--set", "mlflow=false", "--set", "cameras_odometry=none"]
    no_info = copy_bag(bags["stripped"], work / "no_info",
                       lambda t, n, total: t != "/cameras/front_left/camera_info")
    err = _error_line(capsys, ["adapt", str(no_info), "--out", str(work / "u1"), *base])
    assert "/cameras/front_left/camera_info" in err
    short = copy_bag(bags["stripped"], work / "short", lambda t, n, total: n < 2)
    err = _error_line(capsys, ["adapt", str(short), "--out", str(work / "u2"), *base])
    assert "gives 2 complete synchronized set(s)" in err and "min_sets" in err
    no_odom = copy_bag(bags["stripped"], work / "no_odom",
                       lambda t, n, total: t not in ("/odom", "/tf"))
    opposite = work / "opposite.yaml"
    opposite.write_text(yaml.safe_dump({"depth_any_view": {"ros__parameters": {
        "device": "cpu", "threads": 1, "warmup_iters": 0,
        "camera_names": ["front", "back"]}}}))
    err = _error_line(capsys, ["adapt", str(no_odom), "--out", str(work / "u3"), *base,
                               "--params", str(opposite)])
    assert "no two cameras" in err and "no odometry" in err


def test_cameras_only_odometry_supplies_poses(bags, network, params, work) -> None:
    """A bag without odometry: KISS-ICP on the starting network's depth gives the poses
    (or the run says where its poses came from), and adaptation still runs."""
    no_odom = copy_bag(bags["stripped"], work / "no_odom_vo",
                       lambda t, n, total: t not in ("/odom", "/tf"))
    result = _run(no_odom, work / "vo", network, params,
                  config=_cfg(steps=1, cameras_odometry="kiss_icp"))
    assert result["bags"][0]["odometry"] == "kiss_icp"
    assert (work / "vo" / "model.safetensors").is_file()


def test_config_errors_name_the_option(tmp_path: Path) -> None:
    """Unknown keys and bad values fail with the option's name; the packaged file loads."""
    cfg = load_adapt_config(None, ["steps=7", "lr=5e-5"])  # YAML reads 5e-5 as a string
    assert cfg.steps == 7 and cfg.lr == 5e-5 and cfg.holdout_fraction == 0.2
    with pytest.raises(ConfigError, match="'lr' must be a number"):
        load_adapt_config(None, ["lr=fast"])
    with pytest.raises(ConfigError, match="unknown adapt option"):
        load_adapt_config(None, ["stepz=7"])
    with pytest.raises(ConfigError, match="holdout_fraction"):
        AdaptConfig(holdout_fraction=1.0)
    with pytest.raises(ConfigError, match="synthetic_data"):
        AdaptConfig(synthetic_every=5)
    with pytest.raises(ConfigError, match="cameras_odometry"):
        AdaptConfig(cameras_odometry="gps")


def test_synthetic_batches_are_mixed_in(bags, network, params, work) -> None:
    """With `synthetic_every`, supervised synthetic batches join the self-supervised loss
    (the anchor against drift), logged as their own term."""
    from depth_any_view.data.synth import synthesize

    shards = work / "shards"
    synthesize(shards, frames=2, size=(32, 32), grid_dims=16, seed=3, scene="indoor",
               progress=False)
    result = _run(bags["stripped"], work / "mixed", network, params,
                  config=_cfg(steps=2, synthetic_data=[str(shards)], synthetic_every=1))
    assert result["loss_first"]["synthetic"] > 0
    _run(bags["stripped"], work / "plain", network, params, config=_cfg(steps=2))
    plain = _tensors(work / "plain" / "model.safetensors")
    mixed = _tensors(work / "mixed" / "model.safetensors")
    assert any(not torch.equal(plain[k], mixed[k]) for k in plain)
