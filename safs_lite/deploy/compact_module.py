"""The compact form of a pruned model for inference: `CompactModule`, the compact engine's forward as a plain module
that holds only what the masks keep (what `export_run(..., compact=True)` writes as ONNX)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..method.frozen import freeze
from ..method.pruning import prunable_layers


class CompactModule(nn.Module):
    """A pruned model's compact-engine forward (`safs_lite.training.compact`) as a plain inference module.

    It holds a frozen copy of the model (`freeze`) with the pruning masks put back on its pruned
    layers (`weight_orig` holds the frozen weights, zeros included, so `weight_orig * weight_mask`
    is the frozen weight bit for bit), and runs it on the compact engine: live units and kept
    taps only, as gathers and small matrix products. That is what a compact ONNX export
    (`export_run(..., compact=True)`) holds; its outputs equal the masked model's up to float
    rounding order. The engine's plan (which units live, the gather indices) is built here for
    `input_shape`, so tracing (torch.export) meets no data-dependent step.

    Args:
        model: a pruned model the compact engine supports (LeNet-5, MLPs, chains of Conv2d /
            Linear / activations / max pooling / flatten); left untouched.
        input_shape: the (C, H, W) or (features,) one sample has.

    Raises:
        ValueError: if the compact engine cannot run the model, naming why.

    Example:
        >>> from safs_lite import build_model, prune_model
        >>> model = prune_model(build_model("lenet5", seed=0), 0.99).eval()
        >>> x = torch.rand(4, 1, 28, 28)
        >>> bool(torch.allclose(CompactModule(model, (1, 28, 28))(x), model(x), atol=1e-5))
        True
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        super().__init__()
        import torch.nn.utils.prune as prune

        from ..training.compact import CompactNet

        frozen = freeze(model)
        layers = prunable_layers(frozen)
        for name, m in prunable_layers(model).items():
            if hasattr(m, "weight_mask"):
                prune.custom_from_mask(layers[name], "weight", m.weight_mask.detach().clone())
        self.model = frozen.requires_grad_(False)
        self.net = CompactNet(self.model)
        with torch.no_grad():
            self.net(torch.zeros(1, *input_shape, dtype=next(model.parameters()).dtype))

    def _apply(self, fn, recurse=True):
        """`.to(device)`, `.double()` and the like move the plan's index tensors with the weights."""
        super()._apply(fn, recurse)
        self.net.apply_to_plans(fn)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the batch `x`, computed on the compact engine."""
        return self.net(x)
