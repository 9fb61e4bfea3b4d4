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
