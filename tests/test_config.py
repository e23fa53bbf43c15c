import pytest
import yaml

from daif.config import Config, LossConfig, flatten, from_dict, load_config, parse_override, to_dict, to_yaml


def test_defaults_are_the_papers_published_command():
    config = Config()
    assert (config.optim.lr, config.optim.weight_decay, config.optim.batch_size, config.optim.schedule) == (5e-4, 5e-4, 32, "cosine")
    assert (config.loss.recon, config.loss.blur, config.loss.aif_recon, config.loss.aif_blur) == (1000.0, 10.0, 100.0, 10.0)
    assert (config.loss.smooth, config.loss.smooth_beta, config.loss.alpha) == (10.0, 2.5, 0.85)
    assert (config.model.width, config.model.levels) == (16, 4)


def test_yaml_then_overrides_then_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loss:\n  recon: 100\n  blur: 0.1\ntrain:\n  epochs: 7\n")
    config = load_config(path, ["loss.blur=1", "optim.lr=1e-3", "data.fixed_indices=[0, 2, 4]", "scaling.use_gpu=true"], preset="nyuv2-robust")
    assert config.loss.recon == 100.0 and config.loss.blur == 1.0 and config.train.epochs == 7 and config.optim.lr == 1e-3
    assert config.data.fixed_indices == (0, 2, 4) and config.scaling.use_gpu is True
    assert config.data.mode == "binned" and config.model.far == 10.0  # from the preset
    assert isinstance(config.loss, LossConfig)
    assert from_dict(yaml.safe_load(to_yaml(config))) == config


def test_flatten_gives_dotted_keys_for_mlflow():
    flat = flatten(load_config(overrides=["data.fixed_indices=[1,3]"]))
    assert flat["loss.recon"] == 1000.0 and flat["data.fixed_indices"] == "1,3" and flat["optim.lr"] == 5e-4
    assert len(flat) == sum(len(section) for section in to_dict(Config()).values())


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.recn=1", "loss.recn"),
        ("lossy.recon=1", "lossy"),
        ("train.epochs=1.5", "train.epochs"),
        ("optim.lr=fast", "optim.lr"),
        ("scaling.use_gpu=1", "scaling.use_gpu"),
        ("loss.coarse_aif=medium", "coarse_aif"),
        ("data.fixed_indices=3", "data.fixed_indices"),
        ("optim.schedule=step", "schedule"),
        ("optim.warmup_epochs=-1", "warmup_epochs"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[override])


def test_bad_override_syntax_and_files(tmp_path):
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("loss.recon")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ValueError, match="preset"):
        load_config(preset="kitti")


def test_the_quickstart_preset_is_the_papers_model_and_objective():
    config = load_config(preset="quickstart")
    loss, model = config.loss, config.model
    assert (model.depth_head, model.aif_head, model.aif_temperature) == ("regress", "select", 1.0)  # one regressed channel
    assert (loss.recon, loss.blur, loss.coarse_aif, loss.temperature, loss.recon_trains_depth) == (100.0, 10.0, "soft", 1.0, True)
    assert (loss.aif_recon, loss.aif_blur, loss.smooth, loss.smooth_beta) == (0.0, 0.0, 1.0, 2.5)  # entry 18
    assert (loss.cost, loss.cost_smooth) == (0.0, 0.0)  # no analytic depth anywhere
    assert (loss.alpha, loss.kernel_size) == (0.85, None)  # the paper's SSIM share; no window: the ladder (entry 23)
    assert (model.width, model.levels, model.range_source, model.near, model.depth_mapping) == (16, 3, "scenes", 0.0, "log")  # entry 27
    assert model.detail_input and not loss.detail  # the high-pass input channel, not the detail term (entry 47)
    assert not load_config(preset="nyuv2-5").model.detail_input  # the paper's presets keep its four channels
    assert (config.optim.batch_size, config.optim.lr, config.optim.warmup_epochs) == (4, 2e-3, 2.0)  # entry 34
    assert (config.train.epochs, config.data.mode) == (40, "fixed")
    assert (config.optim.weight_decay, config.optim.schedule) == (5e-4, "cosine")  # the paper's
    assert (config.scaling.num_workers, config.scaling.cpus_per_worker, config.tracking.experiment) == (1, 1.5, "daif-quickstart")
    for preset in ("quickstart", "quickstart-search", "nyuv2-5", "nyuv2-robust", None):  # no ground truth picks the model
        assert (load_config(preset=preset).train.val_metric, load_config(preset=preset).train.val_mode) == ("val/recon", "min")


def test_the_search_recipe_is_a_named_preset_on_the_same_network():
    search, paper = load_config(preset="quickstart-search"), load_config(preset="quickstart")
    loss = search.loss
    assert (loss.cost, loss.cost_smooth, loss.cost_smooth_beta) == (1.0, 0.01, 10.0)  # entry 15
    assert (loss.recon, loss.recon_trains_depth, loss.blur, loss.aif_recon, loss.aif_blur, loss.smooth) == (1.0, False, 0, 0, 0, 0)
    assert (search.model.depth_head, search.model.aif_head, search.model.candidates) == ("search", "select", 24)
    assert (search.model.width, search.model.levels) == (paper.model.width, paper.model.levels)
    assert (search.optim.batch_size, search.optim.lr, search.train.epochs, search.data) == (8, 1e-3, 16, paper.data)
    assert load_config().model.depth_head == "regress" and load_config().loss.cost == 0.0


def test_model_choices_are_checked():
    with pytest.raises(ValueError, match="depth_mapping"):
        load_config(overrides=["model.depth_mapping=linear"])
    with pytest.raises(ValueError, match="range_source"):
        load_config(overrides=["model.range_source=guess"])
    with pytest.raises(ValueError, match="depth_head: expected one of"):
        load_config(overrides=["model.depth_head=classify"])
    with pytest.raises(ValueError, match="cost_intensity_weight: expected a number in"):
        load_config(overrides=["model.cost_intensity_weight=2"])
    with pytest.raises(ValueError, match="cost_smooth: expected a finite weight"):
        load_config(overrides=["model.depth_head=search", "loss.cost_smooth=-1"])
    with pytest.raises(ValueError, match="loss.cost: a term of the 'search' depth head .* set model.depth_head=search or loss.cost=0"):
        load_config(overrides=["loss.cost=1"])  # the paper's "regress" head has no cost volume
    with pytest.raises(ValueError, match="depth_mapping: expected one of \\('sigmoid', 'inverse', 'log'\\), got 'max'"):
        load_config(overrides=["model.depth_mapping=max"])  # retired (issue 24)


def test_a_saved_config_with_retired_keys_at_their_old_defaults_still_loads(tmp_path):
    """RETIRED_KEYS: a config saved before issue 24 holds data.min_stack_size and loss.search* at their defaults,
    which changed nothing: they are dropped; any other value is an error naming the key."""
    from daif.config import RETIRED_KEYS

    saved = to_dict(load_config(preset="quickstart"))
    for key, default in RETIRED_KEYS.items():
        section, name = key.split(".")
        saved[section][name] = default
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    assert load_config(path) == load_config(preset="quickstart") == from_dict(saved)
    with pytest.raises(ValueError, match="config key 'loss.search' was retired .* old default 0.0 is accepted, got 300"):
        load_config(path, ["loss.search=300"])
    with pytest.raises(ValueError, match="config key 'data.min_stack_size' was retired"):
        load_config(overrides=["data.min_stack_size=2"])


def test_importing_the_config_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, daif.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_relative_paths_mean_the_folder_the_command_runs_in(tmp_path, monkeypatch):
    """A Ray worker runs in a folder of its own: data.path, train.init_from and tracking.storage given relative are
    made absolute against the command's working directory; URIs stay as given."""
    monkeypatch.chdir(tmp_path)
    config = load_config(overrides=["data.path=store", "train.init_from=runs/ckpt", "tracking.storage=out"])
    assert (config.data.path, config.train.init_from, config.tracking.storage) == (
        str(tmp_path / "store"), str(tmp_path / "runs" / "ckpt"), str(tmp_path / "out"))
    uris = load_config(overrides=["data.path=/abs/store", "train.init_from=runs:/abc/model", "tracking.storage=s3://b/p"])
    assert (uris.data.path, uris.train.init_from, uris.tracking.storage) == ("/abs/store", "runs:/abc/model", "s3://b/p")


def test_daif_train_flags_land_in_their_config_keys(tmp_path):
    import argparse

    from daif.train.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--data", str(tmp_path), "--preset", "quickstart", "--seed", "7", "--epochs", "3",
                                                 "--init-from", "pretrained", "--storage", "s3://bucket/runs"]))
    assert (config.train.seed, config.train.epochs, config.train.init_from) == (7, 3, "pretrained")
    assert config.tracking.storage == "s3://bucket/runs" and config.data.path == str(tmp_path)
    default = config_from_args(parser.parse_args(["--data", str(tmp_path), "--preset", "quickstart"]))
    assert default.train.seed == 0  # the config's own default (daif.config.TrainConfig)
