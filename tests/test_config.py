import argparse

import pytest

import config


def test_defaults_follow_the_design():
    cfg = config.load(environ={})
    assert (cfg.model, cfg.reduce, cfg.dims, cfg.trees, cfg.metric, cfg.k) == (
        "inception_v3",
        "none",
        256,
        100,
        "angular",
        10,
    )
    assert str(cfg.index_dir) == "rsc_files"


def test_environment_overrides_default_and_flag_overrides_environment():
    parser = argparse.ArgumentParser()
    config.add_flags(parser, "trees", "index_dir", "reduce")
    env = {"IMGSIM_TREES": "50", "IMGSIM_INDEX_DIR": "/srv/idx"}
    assert config.load(environ=env, args=parser.parse_args([])).trees == 50
    cfg = config.load(environ=env, args=parser.parse_args(["--trees", "7", "--reduce", "pca"]))
    assert (cfg.trees, str(cfg.index_dir), cfg.reduce) == (7, "/srv/idx", "pca")


def test_bad_values_are_refused_with_the_setting_named():
    with pytest.raises(config.ConfigError, match="IMGSIM_TREES"):
        config.load(environ={"IMGSIM_TREES": "many"})
    with pytest.raises(config.ConfigError, match="reduce must be one of"):
        config.load(environ={"IMGSIM_REDUCE": "tsne"})


def test_tensorflow_starts_without_a_cuda_error_on_a_cpu_machine():
    """The CPU build of TensorFlow is pinned: the GPU build prints 'failed call to cuInit' here."""
    import subprocess
    import sys

    code = "import config; config.quiet_tensorflow(); import keras; print(keras.ops.ones(2).shape)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "cuInit" not in run.stderr and " E0000 " not in run.stderr, run.stderr


def test_a_child_process_gets_the_same_configuration_through_its_environment():
    cfg = config.Config(trees=7, admin_token="t", bind="127.0.0.1:9", reload_interval=0.5)
    assert config.load(environ=config.to_environ(cfg)) == cfg
