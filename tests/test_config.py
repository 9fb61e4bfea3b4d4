import argparse
import dataclasses
import os

import pytest

from imgsim import config


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

    quieted = "from imgsim.quiet_tensorflow import quiet_tensorflow; quiet_tensorflow()"
    code = quieted + "; import keras; print(keras.ops.ones(2))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "cuInit" not in run.stderr and " E0000 " not in run.stderr, run.stderr


def test_a_child_process_gets_the_same_configuration_through_its_environment():
    cfg = config.Config(trees=7, admin_token="t" * 16, bind="127.0.0.1:9", reload_interval=0.5)
    assert config.load(environ=config.to_environ(cfg)) == cfg


def test_switches_read_on_and_off_and_choices_are_checked():
    assert config.load(environ={"IMGSIM_TRIM_BORDERS": "off"}).trim_borders is False
    assert config.load(environ={"IMGSIM_TRIM_BORDERS": "Yes"}).trim_borders is True
    with pytest.raises(config.ConfigError, match="expected on or off for trim_borders"):
        config.load(environ={"IMGSIM_TRIM_BORDERS": "maybe"})
    with pytest.raises(config.ConfigError, match="tta must be one of none, rotations"):
        config.load(environ={"IMGSIM_TTA": "flips"})
    with pytest.raises(config.ConfigError, match="target_recall must be in"):
        config.load(environ={"IMGSIM_TARGET_RECALL": "1.5"})
    with pytest.raises(
        config.ConfigError, match="search_k must be -1 .the build's depth., 0 .exact. or a count"
    ):
        config.load(environ={"IMGSIM_SEARCH_K": "-2"})  # -2 once meant something inside; never a setting
    cfg = config.Config(trim_borders=False, pooling="avg", centre="none", tta="rotations", target_recall=0.9)
    assert config.load(environ=config.to_environ(cfg)) == cfg


def _config_script(*args: str, **environ: str):
    import json
    import os
    import subprocess
    import sys

    from helpers import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSIM_")} | environ
    run = subprocess.run(
        [sys.executable, str(ROOT / "config.py"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout) if "--json" in args else run.stdout


def test_config_py_prints_every_setting_with_its_variable_flag_and_value():
    rows = _config_script("--json", IMGSIM_TREES="7", IMGSIM_ADMIN_TOKEN="hunter2-hunter2-hunter2")
    assert [row["setting"] for row in rows] == [f.name for f in config.dataclasses.fields(config.Config)]
    trees = next(row for row in rows if row["setting"] == "trees")
    assert trees == {
        "setting": "trees",
        "default": "100",
        "variable": "IMGSIM_TREES",
        "flag": "--trees",
        "value": "7",
    }
    token = next(row for row in rows if row["setting"] == "admin_token")
    assert token["value"] == "(set)" and token["flag"] == ""  # a secret is never printed
    table = _config_script()
    assert table.splitlines()[0].split() == ["setting", "default", "variable", "flag", "value"]
    assert "hunter2" not in table and "index_dir" in table


def test_the_imgsim_command_refuses_an_unknown_subcommand(capsys):
    from imgsim import cli

    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0 and "imgsim index" not in capsys.readouterr().err


def test_a_blank_admin_token_is_no_token_and_a_short_one_is_refused():
    assert config.Config(admin_token="  ").admin_token == ""  # the admin routes say they are off
    with pytest.raises(config.ConfigError, match="at least 16 characters, got 6"):
        config.Config(admin_token="s3cret")
    with pytest.raises(config.ConfigError, match="at least 16 characters"):
        config.load(environ={"IMGSIM_ADMIN_TOKEN": "letmein"})
    with pytest.raises(config.ConfigError, match="only letters, digits and"):  # it goes into nginx's config
        config.Config(admin_token='long enough but "quoted"; deny all;')


def test_no_command_prints_tensorflows_start_up_lines(photos, tiny_model, tmp_path):
    """TF_CPP_MIN_LOG_LEVEL does not hide what TensorFlow's libraries print while loading: the
    package loads TensorFlow with standard error set aside (quiet_tensorflow.py)."""
    import subprocess
    import sys

    from helpers import ROOT

    command = [
        sys.executable,
        str(ROOT / "img2vec.py"),
        str(photos),
        "--model",
        tiny_model,
        "--image-size",
        "32",
        "--index-dir",
        str(tmp_path / "index"),
        "--no-progress",
    ]
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environ)
    assert run.returncode == 0, run.stderr
    assert "Indexed 12 images" in run.stdout
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard"):
        assert chatter not in run.stderr, run.stderr


def test_the_configuration_page_is_the_table_the_declarations_make():
    """docs/configuration.md describes each setting once: as imgsim/config.py declares it."""
    from helpers import ROOT
    from imgsim.cli import show_config as config_cli

    page = (ROOT / "docs" / "configuration.md").read_text()
    generated = page.split("do not edit below this line -->\n", 1)[1]
    assert generated.strip() == config_cli.markdown().strip()
    described = {line.split(" | ")[0].strip("| ") for line in generated.splitlines()[2:]}
    assert described == {field.name for field in dataclasses.fields(config.Config)}
    assert all(not line.endswith("|  |") for line in generated.splitlines())  # none left undescribed


def test_each_setting_has_a_description_of_its_own_that_ends_a_sentence():
    """Regression: max_k read "Results a search returns when it does not say" (k's words) and
    max_image_pixels "bytes per request" (max_upload_bytes'), each given its group's comment; three
    rows ended in the ';' of a sentence cut between settings."""
    from imgsim.cli import show_config as config_cli

    rows = config_cli.markdown().splitlines()[2:]
    about = [row.rstrip(" |").rsplit(" | ", 1)[1] for row in rows]
    assert len(set(about)) == len(about)
    assert not [text for text in about if text.endswith((";", ","))]
