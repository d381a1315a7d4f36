"""The other models of the paper's Table 1: VGG-16 and ResNet-18 (CIFAR-10), EfficientNet-B0 (ImageNet-16).

Like LeNet-5 (models.py), every model keeps its activation sites in `model.acts`,
an `nn.ModuleDict` from a dot-free site name to an `Activation`, and states the
input it expects (`input_shape`, plus `any_size = True` where only the channel
count matters). These are the standard architectures, not the reference
code's versions (SAFS_METHOD.md section 6); each docstring says how they differ.

Pruning: no model sets `prunable`, so layer-wise pruning covers every Conv2d and
Linear, first and last included, as the paper prunes.
"""
from __future__ import annotations

import torch  # noqa: F401  (used by the docstring examples)
from torch import Tensor, nn

from ..method.activations import Activation

# VGG-16 ("D" in Simonyan & Zisserman 2015): 13 conv layers (numbers) and 5 max pools ("M").
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16, CIFAR style: 13 conv-BN-activation layers, 5 max pools, one Linear 512 -> classes.

    32x32 inputs (five poolings leave 1x1x512). Activation sites conv1..conv13
    (after the BN of the conv of the same name). Prunable layers: conv1..conv13
    and fc (all 14).

    Differs from the reference code's "VGG-16", which is built from the VGG-11
    configuration (8 conv layers): this is the real 16-layer configuration,
    the same convolutions as torchvision's `vgg16_bn`, with the reference's
    single-Linear CIFAR head instead of torchvision's 4096-4096 classifier.

    Example:
        >>> model = VGG16()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    input_shape = (3, 32, 32)

    def __init__(self, num_classes: int = 10, activation: str = "relu"):
        super().__init__()
        cin, i = 3, 0
        for v in VGG16_CFG:
            if v != "M":
                i += 1
                self.add_module(f"conv{i}", nn.Conv2d(cin, v, 3, padding=1))
                self.add_module(f"bn{i}", nn.BatchNorm2d(v))
                cin = v
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(512, num_classes)
        self.acts = nn.ModuleDict({f"conv{k}": Activation(activation) for k in range(1, i + 1)})

    def forward(self, x: Tensor) -> Tensor:
        i = 0
        for v in VGG16_CFG:
            if v == "M":
                x = self.pool(x)
            else:
                i += 1
                x = self.acts[f"conv{i}"](getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return self.fc(x.flatten(1))  # (B, 512) -> (B, num_classes)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-act, conv-BN, add the shortcut, then act.

    The two activations belong to the model's `acts` and are passed in, so the
    block holds no activation of its own and none sits on the shortcut.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()  # identity
        if stride != 1 or cin != cout:  # projection: 1x1 conv + BN, no activation
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor, act_a: nn.Module, act_b: nn.Module) -> Tensor:
        out = act_a(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return act_b(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR style: 3x3 stem (no max pool), 4 stages of 2 basic blocks, global pool, Linear.

    Designed for 32x32 inputs; global average pooling makes any size work.
    Activation sites (17): "stem", then per block "layer<s>_<b>_a" (after bn1)
    and "layer<s>_<b>_b" (after the residual addition), e.g. "layer2_0_b".
    Prunable layers: conv1, every block conv, the three 1x1 shortcut convs and
    fc (all 21).

    Differs from the reference code's ResNet-18, which puts an activation on
    the shortcut branch and none after the addition. This is the standard
    block of He et al. (2016), the same as torchvision's `BasicBlock`.

    Example:
        >>> model = ResNet18()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    input_shape = (3, 32, 32)
    any_size = True

    def __init__(self, num_classes: int = 10, activation: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        sites, cin = ["stem"], 64
        for s, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
            blocks = nn.ModuleList([BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)])
            self.add_module(f"layer{s}", blocks)
            sites += [f"layer{s}_{b}_{ab}" for b in range(2) for ab in "ab"]
            cin = cout
        self.fc = nn.Linear(512, num_classes)
        self.acts = nn.ModuleDict({site: Activation(activation) for site in sites})

    def forward(self, x: Tensor) -> Tensor:
        a = self.acts
        x = a["stem"](self.bn1(self.conv1(x)))  # (B, 64, H, W)
        for s in range(1, 5):
            for b, block in enumerate(getattr(self, f"layer{s}")):
                x = block(x, a[f"layer{s}_{b}_a"], a[f"layer{s}_{b}_b"])
        return self.fc(x.mean((2, 3)))  # global average pool: (B, 512) -> (B, num_classes)


class EfficientNetB0(nn.Module):
    """EfficientNet-B0 from torchvision's definition, adapted to small inputs and the number of classes.

    Built by `torchvision.models.efficientnet_b0(weights=None)` (random init),
    with two changes: the stem conv has stride 1 instead of 2 (a 16x16 image
    then reaches the last stage at 1x1, a 32x32 one at 2x2), and the classifier
    has `num_classes` outputs. Everything else is torchvision's: 16 MBConv
    blocks, squeeze-excitation, the 1x1 head conv to 1280 channels, dropout 0.2
    before the classifier and stochastic depth (up to 0.2) on the blocks.

    Activation sites (49, forward order): "stem", per block k = 0..15
    "block<k>_expand" (after the 1x1 expansion; block 0 has none),
    "block<k>_dwise" (after the depthwise conv) and "block<k>_se" (inside the
    squeeze-excitation, between its two 1x1 convs; its sigmoid gate is not a
    site), and "head". Every torchvision `nn.SiLU` was replaced by an
    `Activation("swish")` (swish with beta 1 is SiLU, so the dense network is
    torchvision's). Each site module sits both in `self.acts` and where
    torchvision's forward calls it (the same object), so the state dict lists
    alpha/beta twice (`features...` and `acts...`); loading it is consistent.
    Prunable layers: every Conv2d (including the squeeze-excitation's 1x1
    convs) and the classifier's Linear (82 layers).

    Differs from the reference code's EfficientNet-B0, a simplified CIFAR
    version (kuangliu/pytorch-cifar style): no 1x1 head conv, no dropout or
    stochastic depth, a different stride pattern, squeeze-excitation on the
    block output instead of the expanded features, and of the SE convs only
    the first pruned (its list names fc1 twice and fc2 never, apparently a
    typo; we prune both). Its searched sites are the same kinds as ours (stem,
    expand, depthwise, SE), 49 in all, without our "head".

    Example:
        >>> model = EfficientNetB0(num_classes=1000)
        >>> model(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 1000])
    """

    input_shape = (3, 16, 16)
    any_size = True

    def __init__(self, num_classes: int = 1000, activation: str = "swish"):
        super().__init__()
        from torchvision.models import efficientnet_b0  # imported here: torchvision is slow to import

        tv = efficientnet_b0(weights=None, num_classes=num_classes)
        tv.features[0][0].stride = (1, 1)  # small inputs: keep the stem at full resolution
        self.features, self.avgpool, self.classifier = tv.features, tv.avgpool, tv.classifier
        sites: dict[str, Activation] = {}

        def site(name: str) -> Activation:
            sites[name] = Activation(activation)
            return sites[name]

        self.features[0][2] = site("stem")
        k = 0
        for stage in self.features[1:8]:
            for mbconv in stage:
                for layer in mbconv.block:
                    if hasattr(layer, "fc1"):  # squeeze-excitation
                        layer.activation = site(f"block{k}_se")
                    elif len(layer) == 3:  # Conv2dNormActivation with an activation
                        kind = "dwise" if layer[0].groups > 1 else "expand"
                        layer[2] = site(f"block{k}_{kind}")
                k += 1
        self.features[8][2] = site("head")
        self.acts = nn.ModuleDict(sites)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 1280, H/16, W/16)
        x = self.avgpool(x).flatten(1)
        return self.classifier(x)
