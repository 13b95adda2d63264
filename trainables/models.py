"""create_model(name): the project's own models first, then any timm model."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.airbench_net import AirbenchNet, AirbenchSpec
from trainables.preact_resnet import PreActResNet, PreActResNetSpec
from trainables.small_cnn import SmallCNN

# Variants are data handed to one class each (timm's habit), not subclasses.
PROJECT_MODELS: dict[str, Callable[[int, int], nn.Module]] = {
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


def create_model(name: str, num_classes: int, in_chans: int, pretrained: bool = False, weights: str = "") -> nn.Module:
    """Build a model from the current torch RNG state; `pretrained` starts a timm model from its
    ImageNet weights, read from `weights` when given (else timm fetches them)."""
    if name in PROJECT_MODELS:
        if pretrained:
            raise ValueError(f"{name} is a project model with no pretrained weights; pretrained needs a timm model")
        return PROJECT_MODELS[name](num_classes, in_chans)
    if not is_known_model(name):
        raise ValueError(unknown_model_message(name))
    import timm

    overlay = {"pretrained_cfg_overlay": {"file": weights}} if pretrained and weights else {}
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **overlay)


def classifier_of(model: nn.Module) -> nn.Module:
    """The last layer (timm's get_classifier convention), whose weights the analysis compares."""
    return model.get_classifier()  # type: ignore[operator]
