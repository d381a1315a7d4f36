"""Sparse layers: `SparseLinear`, `SparseConv2d` and `to_sparse(model, layout)` turn a frozen model's pruned layers
into ``torch.sparse`` CSR or COO weights (smaller on disk; faster where the sparsity is high, see
benchmarks/sparse_inference.py); `nonzero_weights` counts what they keep.

Example:
    >>> from safs_lite import build_model, prune_model
    >>> from safs_lite.method.frozen import freeze
    >>> dense = freeze(prune_model(build_model("lenet5", seed=0), 0.99))
    >>> x = torch.rand(4, 1, 28, 28)
    >>> bool(torch.allclose(to_sparse(dense, "csr")(x), dense(x), atol=1e-5))
    True
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..method.frozen import freeze
from ..method.pruning import prunable_layers

LAYOUTS = ("csr", "coo")


def _sparse(dense: Tensor, layout: str, index_dtype: torch.dtype) -> Tensor:
    """A 2-D dense tensor as a CSR or (coalesced) COO tensor."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown sparse layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    with warnings.catch_warnings():  # "sparse CSR support is in beta": said once here, not per layer
        warnings.simplefilter("ignore", UserWarning)
        if layout == "coo":
            if index_dtype != torch.int64:
                raise ValueError(f"COO indices are int64 in torch.sparse; got index_dtype={index_dtype}")
            return dense.to_sparse_coo().coalesce()
        csr = dense.to_sparse_csr()
        if index_dtype == torch.int64:
            return csr
        if index_dtype != torch.int32:
            raise ValueError(f"index_dtype must be torch.int64 or torch.int32, got {index_dtype}")
        # int32 indices halve the index bytes; torch.sparse.mm takes them on the CPU (MKL).
        return torch.sparse_csr_tensor(csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype),
                                       csr.values(), csr.shape)


class SparseLinear(nn.Module):
    """A linear layer whose weight is a ``torch.sparse`` CSR or COO tensor: y = x W^T + b.

    Args:
        weight: (out_features, in_features) weight, dense (converted) or already sparse.
        bias: (out_features,) bias or None.
        layout: "csr" or "coo" (used when `weight` is dense).
        index_dtype: torch.int64, or torch.int32 (CSR only) for smaller files.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None, layout: str = "csr",
                 index_dtype: torch.dtype = torch.int64):
        super().__init__()
        w = weight.detach()
        self.register_buffer("weight", w if w.layout != torch.strided else _sparse(w, layout, index_dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.in_features, self.out_features = int(w.shape[1]), int(w.shape[0])

    @classmethod
    def from_dense(cls, layer: nn.Linear, layout: str = "csr", index_dtype: torch.dtype = torch.int64
                   ) -> SparseLinear:
        """The sparse version of a (frozen, unmasked) nn.Linear."""
        return cls(layer.weight, layer.bias, layout, index_dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Return x W^T + b for x of shape (..., in_features)."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        # sparse @ dense is the product torch.sparse supports on every layout: (out, in) @ (in, N).
        y = torch.sparse.mm(self.weight, x2.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"layout={str(self.weight.layout).removeprefix('torch.sparse_')}, nnz={self.weight._nnz()}")


class SparseConv2d(nn.Module):
    """A 2-D convolution computed as a sparse matrix product over the patch entries its kept weights use.

    The (out, C*kh*kw) weight matrix keeps only its non-zero columns (input channel and kernel
    offset pairs some kept weight reads); for each input size the layer gathers just those rows
    of the unfolded input, one `index_select`, and multiplies them by the sparse weight. At 99%
    sparsity LeNet-5's conv1 reads 2 of its 25 patch entries, so the unfold shrinks with the
    weights; a full `F.unfold` would cost more than the dense convolution.

    Args:
        conv: a frozen nn.Conv2d (groups 1, zero padding).
        layout: "csr" or "coo".
        index_dtype: torch.int64, or torch.int32 (CSR only).

    Raises:
        ValueError: for grouped convolutions or non-zero padding modes.
    """

    def __init__(self, conv: nn.Conv2d, layout: str = "csr", index_dtype: torch.dtype = torch.int64):
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"SparseConv2d supports groups=1, numeric zero padding; got groups={conv.groups}, "
                             f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
        w = conv.weight.detach()
        self.out_channels, self.in_channels = int(w.shape[0]), int(w.shape[1])
        self.kernel_size, self.stride = tuple(w.shape[2:]), tuple(conv.stride)
        self.padding, self.dilation = tuple(conv.padding), tuple(conv.dilation)
        flat = w.reshape(self.out_channels, -1)
        used = (flat != 0).any(0).nonzero().flatten()  # patch entries (c, i, j) a kept weight reads
        self.register_buffer("used", used)
        self.register_buffer("weight", _sparse(flat[:, used].contiguous(), layout, index_dtype))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self._index: dict[tuple, Tensor] = {}  # (H, W, device) -> gather index; rebuilt, never saved

    def _gather_index(self, h: int, w: int, ho: int, wo: int, device: torch.device) -> Tensor:
        """Flat indices into a padded (C, h, w) image of the used patch entries at every output position."""
        cache = (h, w, str(device))
        if cache not in self._index:
            kh, kw = self.kernel_size
            c, rest = self.used // (kh * kw), self.used % (kh * kw)
            i, j = rest // kw, rest % kw
            base = c * h * w + i * self.dilation[0] * w + j * self.dilation[1]
            rows = torch.arange(ho) * self.stride[0] * w
            cols = torch.arange(wo) * self.stride[1]
            offsets = (rows[:, None] + cols[None, :]).flatten()
            self._index[cache] = (base.cpu()[:, None] + offsets[None, :]).flatten().to(device)
        return self._index[cache]

    def forward(self, x: Tensor) -> Tensor:
        """Return the convolution of x (B, C, H, W)."""
        b = x.shape[0]
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        h, w = x.shape[-2:]
        kh, kw = self.kernel_size
        ho = (h - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        n_used, n_pos = self.used.numel(), ho * wo
        if n_used == 0:  # every weight pruned: the output is the bias alone
            y = x.new_zeros(b, self.out_channels, ho, wo)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        # Gather the used patch entries of every image, (B, used, positions), and lay them out as
        # (used, images x positions) so that the product's rows come out image-major: the final
        # (out, B, positions) -> (B, out, positions) copy then moves whole rows of positions.
        cols = x.reshape(b, -1).index_select(1, self._gather_index(h, w, ho, wo, x.device))
        cols = cols.view(b, n_used, n_pos).transpose(0, 1).reshape(n_used, b * n_pos)
        y = torch.sparse.mm(self.weight, cols).view(self.out_channels, b, n_pos).transpose(0, 1)
        if self.bias is None:
            return y.contiguous().view(b, self.out_channels, ho, wo)
        # One pass adds the bias and writes the contiguous (NCHW) result; a plain `y + bias` would
        # keep y's permuted strides, and pooling such a tensor is twice as slow.
        out = torch.empty(b, self.out_channels, n_pos, dtype=y.dtype, device=y.device)
        torch.add(y, self.bias.view(1, -1, 1), out=out)
        return out.view(b, self.out_channels, ho, wo)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, used_patch_entries={self.used.numel()}, "
                f"layout={str(self.weight.layout).removeprefix('torch.sparse_')}, nnz={self.weight._nnz()}")


def to_sparse(model: nn.Module, layout: str = "csr", conv: bool = True,
              index_dtype: torch.dtype = torch.int64) -> nn.Module:
    """A frozen copy of `model` whose prunable layers hold sparse weights.

    Args:
        model: a pruned or frozen model (it is frozen first: masks permanent, sites constant).
        layout: "csr" or "coo".
        conv: also make Conv2d layers sparse (`SparseConv2d`); False keeps them dense (faster
            at moderate sparsity, see benchmarks/sparse_inference.py).
        index_dtype: torch.int64, or torch.int32 (CSR only) for smaller files.

    Returns:
        The sparse model (eval mode); its outputs equal the frozen model's up to float32
        summation order.

    Raises:
        ValueError: on an unknown layout or index dtype.
    """
    _sparse(torch.zeros(1, 1), layout, index_dtype)  # validate before copying anything
    out = freeze(model)
    for name, m in list(prunable_layers(out).items()):
        if isinstance(m, nn.Linear):
            out.set_submodule(name, SparseLinear.from_dense(m, layout, index_dtype))
        elif conv and isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros" \
                and not isinstance(m.padding, str):
            out.set_submodule(name, SparseConv2d(m, layout, index_dtype))
    return out.eval()


def nonzero_weights(model: nn.Module) -> int:
    """Kept (non-zero) weights over the prunable layers of a dense, frozen or sparse model."""
    total = 0
    for m in model.modules():
        if isinstance(m, (SparseLinear, SparseConv2d)):
            total += int((m.weight.values() if m.weight.layout != torch.sparse_coo
                          else m.weight._values()).ne(0).sum())
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            total += int((m.weight != 0).sum())
    return total
