import papermill
import pytest

from pystatsml_tl.runs.notebooks import EXPERIMENT_NOTEBOOK
from pystatsml_tl.runs.parameters import (
    EXPERIMENTS,
    PARAMETERS,
    PROFILES,
    SEEDS_PARAMETER,
    parse_value,
    profile_parameters,
    validate_parameters,
)


def test_defaults_are_the_tutorial_settings_with_a_validation_split():
    p = validate_parameters({})
    assert (p["arch"], p["weights"], p["dataset"]) == ("resnet18", "imagenet", "cifar10")
    assert (p["epochs"], p["batch_size"]) == (5, 100)
    assert (p["lr"], p["momentum"], p["step_size"], p["gamma"], p["normalize"]) == (1e-3, 0.9, 7, 0.1, "tutorial")
    assert p["val_fraction"] == 0.1 and profile_parameters("tutorial")["val_fraction"] == 0.0


def test_every_profile_is_valid():
    for name in PROFILES:
        assert profile_parameters(name)["experiment"] in EXPERIMENTS
    assert profile_parameters("smoke")["dataset"] == "digits"  # real images, offline


@pytest.mark.parametrize("params, name", [
    ({"experiment": "finetune-rmsprop"}, "experiment"), ({"epochs": 0}, "epochs"), ({"epochs": "5"}, "epochs"),
    ({"batch_size": -1}, "batch_size"), ({"image_size": 0}, "image_size"), ({"val_fraction": 1}, "val_fraction"),
    ({"normalize": "none"}, "normalize"), ({"arch": "resnet7"}, "arch"), ({"weights": "imagenet22k"}, "weights"),
    ({"dataset": "/no/such/folder"}, "dataset"), ({"device": "tpu"}, "device"), ({"lr": 0}, "lr"),
    ({"momentum": 1.5}, "momentum"), ({"train_subset": 0}, "train_subset"),
])
def test_bad_parameters_name_the_parameter_and_what_was_expected(params, name):
    with pytest.raises(ValueError, match=f"^{name}=.*expected"):
        validate_parameters(params)


def test_unknown_parameter_and_profile():
    with pytest.raises(ValueError, match="unknown parameter.*epoch\\b"):
        validate_parameters({"epoch": 3})
    with pytest.raises(ValueError, match="^profile="):
        profile_parameters("huge")


def test_parse_value_uses_the_declared_type():
    assert parse_value("epochs", "3") == 3 and parse_value("lr", "0.01") == 0.01
    assert parse_value("augment", "true") is True and parse_value("train_subset", "None") is None
    with pytest.raises(ValueError, match="^epochs='three': expected int"):
        parse_value("epochs", "three")
    with pytest.raises(ValueError, match="^progress='maybe'"):
        parse_value("progress", "maybe")


def test_notebook_parameters_cell_matches_the_package():
    inferred = papermill.inspect_notebook(str(EXPERIMENT_NOTEBOOK))
    declared = PARAMETERS | {"seeds": SEEDS_PARAMETER}
    assert list(inferred) == list(declared)
    for name, info in inferred.items():
        assert info["inferred_type_name"] == declared[name].type.__name__
        assert eval(info["default"]) == declared[name].default
        assert info["help"] == declared[name].describe()
