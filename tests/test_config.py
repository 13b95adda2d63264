import pytest

from tests.conftest import digits_trial
from trainables.config import TrialConfig


def test_round_trip_through_tune_style_dict():
    config = digits_trial()
    cfg = TrialConfig.from_dict(config)
    assert cfg.to_dict() == config
    assert isinstance(cfg.mean, tuple)  # lists from params.json become tuples again


def test_unknown_key_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown key.*lr_typo"):
        TrialConfig.from_dict({**digits_trial(), "lr_typo": 1})


def test_missing_key_is_refused_by_name():
    config = digits_trial()
    del config["epochs"]
    with pytest.raises(ValueError, match="missing key.*epochs"):
        TrialConfig.from_dict(config)


@pytest.mark.parametrize("key,value", [("lr", "0.1"), ("epochs", 2.5), ("epochs", True), ("hflip", 1), ("mean", 0.5)])
def test_wrong_types_are_refused(key, value):
    with pytest.raises(TypeError, match=key):
        TrialConfig.from_dict({**digits_trial(), key: value})


def test_int_is_accepted_where_float_is_expected():
    assert TrialConfig.from_dict({**digits_trial(), "lr": 1}).lr == 1.0


@pytest.mark.parametrize("key,value", [("mode", "fast"), ("optimizer", "rmsprop"), ("metric", "auc"), ("epochs", 0)])
def test_values_outside_their_choices_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        TrialConfig.from_dict({**digits_trial(), key: value})


def test_the_models_that_need_in_memory_data_are_the_ones_that_initialise_from_it():
    from trainables.config import IN_MEMORY_MODELS
    from trainables.models import PROJECT_MODELS, create_model

    needs_data = {name for name in PROJECT_MODELS if hasattr(create_model(name, 10, 3), "init_from_data")}
    assert needs_data == set(IN_MEMORY_MODELS)
