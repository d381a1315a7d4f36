"""Models whose activation sites are named modules, so SAFS can swap them per layer.

Every model keeps its activation sites in `model.acts`, an `nn.ModuleDict` from
a stable site name to an `Activation` (alpha * op(beta * x)). A searched
solution then reads `{"conv1": "tanh", "conv2": "elu", "fc1": ..., "fc2": ...}`.
Every model also states the input it expects (`input_shape`), so a
model/dataset mismatch is caught before any training.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..method.activations import Activation
from .zoo import VGG16, EfficientNetB0, ResNet18


class LeNet5(nn.Module):
    """LeNet-5 as in the SAFS paper: conv 6@5x5, pool, conv 16@5x5, pool, fc 256-120-84-10.

    28x28 inputs, no batch norm, max pooling. Activation sites: conv1, conv2,
    fc1, fc2 (after the layers of the same name; fc3 produces the logits).
    Prunable layers: conv1, conv2, fc1, fc2, fc3 (all five, as the paper prunes).

    Example:
        >>> model = LeNet5()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    input_shape = (1, 28, 28)

    def __init__(self, num_classes: int = 10, activation: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.pool = nn.MaxPool2d(2)
        self.acts = nn.ModuleDict({s: Activation(activation) for s in ("conv1", "conv2", "fc1", "fc2")})

    def forward(self, x: Tensor) -> Tensor:
        a = self.acts
        x = self.pool(a["conv1"](self.conv1(x)))  # (B, 6, 12, 12)
        x = self.pool(a["conv2"](self.conv2(x)))  # (B, 16, 4, 4)
        x = a["fc1"](self.fc1(x.flatten(1)))      # (B, 120)
        x = a["fc2"](self.fc2(x))                 # (B, 84)
        return self.fc3(x)                        # (B, num_classes)


# name -> (constructor, default activation of the dense network)
MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "lenet5": (LeNet5, "relu"),
    "vgg16": (VGG16, "relu"),
    "resnet18": (ResNet18, "relu"),
    "efficientnet_b0": (EfficientNetB0, "swish"),  # the paper keeps EfficientNet's Swish for the dense net
}


def check_model(name: str) -> str:
    """Return `name` if it is a known model, else raise ValueError listing the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return name


def build_model(name: str, num_classes: int = 10, activation: str | None = None,
                seed: int | None = None) -> nn.Module:
    """Build a model by name with all activation sites set to one operator.

    Args:
        name: a key of `MODELS` ("lenet5", "vgg16", "resnet18", "efficientnet_b0").
        num_classes: size of the output layer.
        activation: operator at every site (default: the model's dense default,
            relu; swish for efficientnet_b0).
        seed: if given, seeds the weight initialisation.

    Returns:
        The freshly initialised model (CPU, float32).
    """
    ctor, default_act = MODELS[check_model(name)]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (a classifier's outputs), got {num_classes!r}")
    if seed is not None:
        torch.manual_seed(seed)
    return ctor(num_classes=num_classes, activation=activation or default_act)


def check_compatible(model: nn.Module, input_shape: tuple[int, ...], name: str = "model") -> None:
    """Raise ValueError (one line, both shapes) if `model` cannot take images of `input_shape` (C, H, W).

    The channel count must match; so must height and width, unless the model
    sets `any_size = True` (it pools globally before its classifier).
    """
    want = getattr(model, "input_shape", None)
    if want is None:
        return
    any_size = getattr(model, "any_size", False)
    if tuple(want[:1]) != tuple(input_shape[:1]) or (len(want) == 3 and want[1:] != tuple(input_shape[1:])
                                                     and not any_size):
        what = f"{want[0]}-channel images of any size, e.g. {tuple(want)}" if any_size else \
            f"images of shape {tuple(want)}"
        raise ValueError(f"{name} expects {what} (C, H, W) but the data has "
                         f"{tuple(input_shape)}; pick a matching model/dataset pair")
