"""create_model(name): the project's own models first, then any timm model."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.airbench_net import AirbenchNet, AirbenchSpec
from trainables.preact_resnet import PreActResNet, PreActResNetSpec
from trainables.resnet_cifar import ResNetCifar, ResNetCifarSpec
from trainables.small_cnn import SmallCNN

# Variants are data handed to one class each (timm's habit), not subclasses.
PROJECT_MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet14": lambda num_classes, in_chans: ResNetCifar(
        ResNetCifarSpec(blocks=2, num_classes=num_classes, in_chans=in_chans)
    ),
    "preactresnet18": lambda num_classes, in_chans: PreActResNet(
        PreActResNetSpec((2, 2, 2, 2), num_classes=num_classes, in_chans=in_chans)
    ),
    "preactresnet34": lambda num_classes, in_chans: PreActResNet(
        PreActResNetSpec((3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans)
    ),
    "airbench_net": lambda num_classes, in_chans: AirbenchNet(
        AirbenchSpec(), num_classes=num_classes, in_chans=in_chans
    ),
    "small_cnn": lambda num_classes, in_chans: SmallCNN(num_classes, in_chans),
}
DROPOUT_MODELS = {"small_cnn": SmallCNN}  # project models that take a drop_rate (timm's take it too)


def is_known_model(name: str) -> bool:
    """True for a project model or a model timm can build, without building it."""
    if name in PROJECT_MODELS:
        return True
    import timm  # why: imported here so project models cost no timm import time

    return timm.is_model(name)


def unknown_model_message(name: str) -> str:
    return (
        f"unknown model {name!r}: project models are {', '.join(sorted(PROJECT_MODELS))}; "
        "any name in timm.list_models() also works"
    )


def model_refusal(
    name: str, drop_rate: float, drop_path_rate: float, model_args: dict | None = None
) -> tuple[str, str] | None:
    """(the setting, why) where `name` cannot take these training-time draws or constructor
    arguments, or None where it can."""
    if name in PROJECT_MODELS and model_args:
        return "model_args", f"{name} is a project model; model_args are passed to a timm model's constructor"
    if name in PROJECT_MODELS and drop_path_rate > 0:
        return "drop_path_rate", f"{name} is a project model with no drop-path; drop_path_rate needs a timm model"
    if name in PROJECT_MODELS and drop_rate > 0 and name not in DROPOUT_MODELS:
        return "drop_rate", f"{name} has no dropout; drop_rate needs {', '.join(DROPOUT_MODELS)} or a timm model"
    return None


def draws_at_training(
    name: str, drop_rate: float = 0.0, drop_path_rate: float = 0.0, model_args: dict | None = None
) -> bool:
    """Whether the model makes random draws of its own while it trains (dropout, drop-path): built on
    the meta device (shapes only, no weights, nothing downloaded) and searched for them."""
    import torch

    with torch.device("meta"):
        model = create_model(name, 10, 3, drop_rate=drop_rate, drop_path_rate=drop_path_rate, model_args=model_args)
    for module in model.modules():
        rate = getattr(module, "p", None) if isinstance(module, nn.Dropout) else getattr(module, "drop_prob", None)
        if (rate or 0) > 0 or (getattr(module, "drop_rate", 0) or 0) > 0:
            return True
    return False


def create_model(
    name: str,
    num_classes: int,
    in_chans: int,
    pretrained: bool = False,
    weights: str = "",
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    model_args: dict | None = None,
) -> nn.Module:
    """Build a model from the current torch RNG state; `pretrained` starts a timm model from its
    ImageNet weights, read from `weights` when given (else timm fetches them); drop_rate and
    drop_path_rate are its training-time draws, where the model has them (model_refusal);
    model_args go to a timm model's constructor as they are (a ViT's img_size for small images)."""
    refusal = model_refusal(name, drop_rate, drop_path_rate, model_args)
    if refusal:
        raise ValueError(refusal[1])
    if name in DROPOUT_MODELS and drop_rate > 0:
        return DROPOUT_MODELS[name](num_classes, in_chans, drop_rate=drop_rate)
    if name in PROJECT_MODELS:
        if pretrained:
            raise ValueError(f"{name} is a project model with no pretrained weights; pretrained needs a timm model")
        return PROJECT_MODELS[name](num_classes, in_chans)
    if not is_known_model(name):
        raise ValueError(unknown_model_message(name))
    import timm

    overlay = {"pretrained_cfg_overlay": {"file": weights}} if pretrained and weights else {}
    rates = {k: v for k, v in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)) if v > 0}
    return timm.create_model(
        name,
        pretrained=pretrained,
        num_classes=num_classes,
        in_chans=in_chans,
        **overlay,
        **rates,
        **(model_args or {}),
    )


def classifier_of(model: nn.Module) -> nn.Module:
    """The last layer (timm's get_classifier convention), whose weights the analysis compares."""
    return model.get_classifier()  # type: ignore[operator]
