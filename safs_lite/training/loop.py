"""Training, fine-tuning and evaluation on in-memory batches.

One loop serves dense training, the magnitude-pruning fine-tune, every SAFS
candidate evaluation and every HPO trial; `TrainConfig` says which budget and
hyperparameters. Accuracies are in percent throughout the kit.

On a CUDA device, mixed precision and channels-last are switched on for a
block of code with `cuda_options(amp=True, channels_last=True)`.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.core import Data
from ..method.activations import scale_parameters, set_activations, set_trainable_scales
from ..method.pruning import clone, refresh_weights
from .compact import check_engine, engine_for

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("constant", "step", "cosine", "cosine_warm", "plateau")


class NonFiniteLossError(FloatingPointError):
    """Training diverged (the loss is inf or NaN); raised before the optimizer step that would use it."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and budget of one training or fine-tuning run.

    The defaults are the paper's LeNet-5 setting (Adam, lr 1e-3, betas 0.9/0.99,
    weight decay 5e-4, batch 256, constant LR) with a small epoch budget.
    """

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adam"        # one of OPTIMIZERS
    lr: float = 1e-3
    momentum: float = 0.9          # SGD momentum; Adam/AdamW beta1
    beta2: float = 0.99            # Adam/AdamW beta2
    weight_decay: float = 5e-4     # weights only: activation scales (alpha, beta) are never decayed
    scheduler: str = "constant"    # one of SCHEDULERS
    train_subset: int | None = None  # images drawn per epoch (None: the whole training split)
    select: str = "best"           # "best": restore the best-validation epoch; "last": keep the last
    seed: int = 0
    engine: str = "auto"           # "dense", "compact" (skip pruned units and weights) or "auto"; see compact.py

    def __post_init__(self):
        check_engine(self.engine)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be 'best' or 'last', got {self.select!r}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.train_subset is not None and (isinstance(self.train_subset, bool) or
                                              not isinstance(self.train_subset, int) or self.train_subset < 1):
            raise ValueError(f"train_subset must be an integer >= 1 or None (the whole split), "
                             f"got {self.train_subset!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer in ("adam", "adamw") and not 0 <= self.momentum <= self.beta2 < 1:
            raise ValueError(f"Adam's beta1 (momentum={self.momentum!r}) must lie in [0, beta2={self.beta2!r}] "
                             "and beta2 below 1")


def seed_everything(seed: int) -> None:
    """Seed Python's and PyTorch's generators (model init, dropout, ...), CUDA's included.

    Also asks cuDNN for deterministic convolution algorithms. On the CPU that makes a
    seed repeat exactly; on a GPU some kernels (scatter/index backward passes, cuBLAS
    workspaces) stay non-deterministic unless `set_deterministic(True)` is called too.
    """
    random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def set_deterministic(on: bool = True) -> None:
    """Make CUDA runs repeatable: `torch.use_deterministic_algorithms` plus the cuBLAS workspace setting.

    What it costs: some CUDA kernels are replaced by slower deterministic ones, and an operation
    without a deterministic version
    raises instead of running. On the CPU the kit is deterministic without it.
    """
    import os

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


@dataclass(frozen=True)
class CudaOptions:
    """Speed options for models on a CUDA device; see `cuda_options`."""

    amp: bool = False            # mixed precision: bfloat16 autocast, or float16 + GradScaler without bf16
    channels_last: bool = False  # NHWC memory format for the model and its input batches


_CUDA_OPTIONS: ContextVar[CudaOptions] = ContextVar("safs_lite_cuda_options", default=CudaOptions())


@contextlib.contextmanager
def cuda_options(amp: bool = False, channels_last: bool = False) -> Iterator[CudaOptions]:
    """Within this block, `train` and `evaluate` use mixed precision and/or channels-last on CUDA models.

    They have no effect on CPU models (`run_safs` and the CLI refuse them without
    CUDA). A context rather than `TrainConfig` fields: they change speed and
    rounding, not the hyperparameters, and cached runs keep their keys.

    Example:
        >>> with cuda_options(amp=True, channels_last=True):  # doctest: +SKIP
        ...     train(build_model("vgg16").cuda(), data, TrainConfig(optimizer="sgd"))
    """
    token = _CUDA_OPTIONS.set(CudaOptions(amp, channels_last))
    try:
        yield _CUDA_OPTIONS.get()
    finally:
        _CUDA_OPTIONS.reset(token)


def current_cuda_options() -> CudaOptions:
    """The `cuda_options` in force (cached runs include them in their keys when any is on)."""
    return _CUDA_OPTIONS.get()


def _cuda_setup(device: torch.device) -> tuple[Callable, torch.memory_format | None, torch.dtype | None]:
    """(autocast context factory, input memory format, autocast dtype) for the current `cuda_options`."""
    opts = _CUDA_OPTIONS.get()
    if device.type != "cuda":
        return contextlib.nullcontext, None, None
    dtype = None
    if opts.amp:  # bf16 keeps float32's range (no loss scaling, symexp cannot overflow); fp16 on older GPUs
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if dtype is not None else contextlib.nullcontext
    return autocast, (torch.channels_last if opts.channels_last else None), dtype


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of `cfg`, with activation scales in their own group without weight decay."""
    scale_ids = {id(p) for p in scale_parameters(model)}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in scale_ids]
    scales = [p for p in scale_parameters(model) if p.requires_grad]
    groups = [{"params": weights, "weight_decay": cfg.weight_decay}]
    if scales:
        groups.append({"params": scales, "weight_decay": 0.0})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, betas=(cfg.momentum, cfg.beta2))


class RunSchedule:
    """An LR schedule defined over the run's own length, stepped after every batch.

    Each scheduler does what its name says whether the run is 1, 3 or 200 epochs long
    (a per-epoch schedule is constant in a 1-epoch HPO trial and cannot restart or
    react in a 3-epoch one):

    - ``constant``: the base LR throughout.
    - ``step``: halve the LR at every tenth of the run (the reference's VGG schedule:
      every 20 of 200 epochs), ending at lr / 2**9.
    - ``cosine``: cosine annealing from lr to 0 over the run.
    - ``cosine_warm``: cosine annealing with warm restarts, four cycles per run.
    - ``plateau``: halve the LR once the mean training loss of three tenths of the run in
      a row has not improved on the best tenth so far (ReduceLROnPlateau, patience 2, on
      the training loss; the validation split is not read for it).

    Args:
        opt: the optimizer whose groups' LRs are set.
        name: one of SCHEDULERS.
        total_steps: batches in the whole run (epochs x batches per epoch).
    """

    def __init__(self, opt: torch.optim.Optimizer, name: str, total_steps: int):
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
        self.name, self.total, self.opt, self.t = name, max(1, int(total_steps)), opt, 0
        self.chunk = max(1, self.total // 10)
        self._sum = self._n = 0
        lr_sched = torch.optim.lr_scheduler
        if name == "step":
            total = self.total
            self.sched = lr_sched.LambdaLR(opt, lambda t: 0.5 ** min(9, (10 * t) // total))
        elif name == "cosine":
            self.sched = lr_sched.CosineAnnealingLR(opt, T_max=self.total)
        elif name == "cosine_warm":
            self.sched = lr_sched.CosineAnnealingWarmRestarts(opt, T_0=max(1, self.total // 4))
        elif name == "plateau":
            self.sched = lr_sched.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        else:
            self.sched = None

    def step(self, loss: "float | torch.Tensor | None" = None) -> None:
        """Advance one batch; `loss` (that batch's training loss) feeds the plateau rule.

        A tensor loss is summed where it lives and read once per tenth of the run (one device
        sync per chunk, not per batch).
        """
        self.t += 1
        if self.sched is None:
            return
        if self.name == "plateau":
            if torch.is_tensor(loss):
                loss = loss.double()  # summed in float64, as a Python float sum would
            self._sum, self._n = self._sum + (0.0 if loss is None else loss), self._n + 1
            if self.t % self.chunk == 0:
                self.sched.step(float(self._sum) / self._n)
                self._sum = self._n = 0
        else:
            self.sched.step()

    @property
    def lr(self) -> float:
        """The LR of the first parameter group now."""
        return self.opt.param_groups[0]["lr"]


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> RunSchedule:
    """The LR schedule of `cfg` over `cfg.epochs` x `steps_per_epoch` batches (see `RunSchedule`)."""
    return RunSchedule(opt, cfg.scheduler, cfg.epochs * steps_per_epoch)


@torch.inference_mode()
def evaluate(model: nn.Module, data: Data, split: str = "val", batch_size: int = 2048,
             engine: str = "auto") -> dict[str, float]:
    """Loss and accuracy (percent) of `model` on one split.

    Args:
        model: the model (left in eval mode).
        data: the dataset.
        split: "train", "val" or "test". Search and HPO use "val" only.
        batch_size: evaluation batch size.
        engine: "dense", "compact" or "auto" (see `TrainConfig.engine` and `safs_lite.training.compact`).

    Returns:
        {"loss": mean cross-entropy, "accuracy": percent correct}.
    """
    model.eval()
    device = next(model.parameters()).device
    if data.val.x.device != device:  # like `train`: the data follows the model
        data = data.to(device)
    autocast, fmt, _ = _cuda_setup(device)
    net = engine_for(model, engine, data.input_shape, batch_size)
    loss = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one sync, at the end
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    for xb, yb in data.batches(split, batch_size):
        if fmt is not None:
            xb = xb.contiguous(memory_format=fmt)
        with autocast():
            out = net(xb).float()
        loss += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
        n += len(yb)
    return {"loss": loss.item() / n, "accuracy": 100.0 * correct.item() / n}


@torch.inference_mode()
def predict(model: nn.Module, data: Data, split: str = "test", batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """True and predicted labels of one split (for confusion matrices and error analysis).

    Returns:
        (y_true, y_pred), both (N,) int64 on the CPU.
    """
    model.eval()
    device = next(model.parameters()).device
    if data.val.x.device != device:
        data = data.to(device)
    ys, ps = [], []
    for xb, yb in data.batches(split, batch_size):
        ys.append(yb.cpu())
        ps.append(model(xb).argmax(1).cpu())
    return torch.cat(ys), torch.cat(ps)


def train(model: nn.Module, data: Data, cfg: TrainConfig = TrainConfig(), progress: bool = True,
          desc: str = "train", on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train (or fine-tune) `model` in place and return its per-epoch history.

    Pruning masks attached with `prune_model` stay in force: the network's
    pruned weights are exactly zero before, during and after.

    Args:
        model: the model; its device decides where training runs.
        data: the dataset (moved to the model's device if it is elsewhere).
        cfg: hyperparameters and budget.
        progress: show a tqdm bar (terminal or notebook).
        desc: the bar's label.
        on_epoch: called with each epoch's row after validation (HPO uses it to
            report and prune trials; it may raise to stop training).

    Returns:
        One dict per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr (of the epoch's
        last batch), seconds.
        With `cfg.select == "best"` the model ends at its best-validation epoch. With
        `select="last"` and no `on_epoch`, only the last epoch is validated (the
        others carry NaN), which keeps short candidate evaluations cheap.
    """
    device = next(model.parameters()).device
    if data.train.x.device != device:
        data = data.to(device)
    autocast, fmt, amp_dtype = _cuda_setup(device)
    if fmt is not None:
        model.to(memory_format=fmt)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    # the model itself, or its compact form on the same parameters
    net = engine_for(model, cfg.engine, data.input_shape, cfg.batch_size)
    n_train = len(data.train) if cfg.train_subset is None else min(cfg.train_subset, len(data.train))
    steps = train_batches(n_train, cfg.batch_size)  # what `Data.batches` yields: the schedule ends with the run
    guard = _FiniteGuard(model, device)
    sched = make_scheduler(opt, cfg, steps)
    history, best_acc, best_state = [], -1.0, None
    bar = tqdm(total=cfg.epochs * steps, desc=desc, disable=not progress, leave=False, unit="batch")
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for batch, (xb, yb) in enumerate(data.batches("train", cfg.batch_size, shuffle=True, generator=gen,
                                                      train=True, limit=cfg.train_subset), start=1):
            if fmt is not None:
                xb = xb.contiguous(memory_format=fmt)
            with autocast():
                out = net(xb)
                loss = F.cross_entropy(out, yb)
            guard.check_loss(loss, epoch, batch, cfg)  # a NaN never stays in weight_orig (NaN x mask 0 is NaN)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:  # float16: scale the loss so small gradients do not underflow
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            lr_now = opt.param_groups[0]["lr"]
            sched.step(loss.detach() if sched.name == "plateau" else None)
            seen += len(yb)
            loss_sum += loss.detach() * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            bar.update(1)
            guard.every(batch, epoch, cfg)
        guard.settle(epoch, cfg)
        # Validate every epoch when something needs it (best-epoch selection, HPO reports);
        # a short candidate evaluation only needs its last epoch.
        needed = cfg.select == "best" or on_epoch is not None
        val = evaluate(model, data, "val", engine=cfg.engine) if needed or epoch == cfg.epochs else \
            {"loss": float("nan"), "accuracy": float("nan")}
        row = {"epoch": epoch, "train_loss": loss_sum.item() / seen,
               "train_acc": 100.0 * correct.item() / seen, "val_loss": val["loss"],
               "val_acc": val["accuracy"], "lr": lr_now,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_acc']:.2f}")
        if cfg.select == "best" and row["val_acc"] > best_acc:
            best_acc = row["val_acc"]
            best_state = {k: v.detach().clone() if torch.is_tensor(v) else v
                          for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(row)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    refresh_weights(model)  # `weight` of a pruned layer as the weights now are (the compact engine skips the hook)
    return history


def train_batches(n: int, batch_size: int) -> int:
    """Batches in one training pass over `n` images, as `Data.batches(..., train=True)` yields them
    (a final batch of one image is dropped when there are more)."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if n > 1 and n - batch_size * (steps - 1) == 1 else steps


SYNC_EVERY = 50  # on a GPU, batches between two checks of the loss (each check waits for the device once)


def _sync_every(device: torch.device) -> int:
    """Batches between finiteness checks: every batch on the CPU (free there), SYNC_EVERY on a GPU."""
    return 1 if device.type == "cpu" else SYNC_EVERY


class _FiniteGuard:
    """No non-finite training step ever stays in the weights, without a device sync per batch.

    On the CPU each batch's loss is checked before its optimizer step, as it costs nothing. On a
    GPU reading the loss would wait for the device every batch; instead a flag is kept on the
    device (`isfinite` of every loss, and the first bad batch's number), read every `SYNC_EVERY`
    batches and at the end of each epoch, and a copy of the model's state is taken at each check
    that passes. A bad flag restores that copy, the last state whose every step was finite, before
    `NonFiniteLossError` is raised: weight_orig (and every weight) hold no NaN or inf afterwards.
    """

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.n = model, _sync_every(device)
        self.per_batch = self.n == 1
        self.snapshot, self.since = None, 0
        if not self.per_batch:
            self.bad = torch.zeros((), dtype=torch.bool, device=device)
            self.first = torch.zeros((), dtype=torch.int64, device=device)
            self._save()

    def _save(self) -> None:
        self.snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items() if torch.is_tensor(v)}

    def check_loss(self, loss: torch.Tensor, epoch: int, batch: int, cfg: TrainConfig) -> None:
        if self.per_batch:
            if not torch.isfinite(loss):  # stop before the step
                raise NonFiniteLossError(
                    f"non-finite training loss ({loss.item()}) at epoch {epoch}, batch {batch}: "
                    f"lr {cfg.lr:g} with {cfg.optimizer} diverged; the model was not updated with it")
            return
        bad = ~torch.isfinite(loss.detach())
        self.first = torch.where(bad & ~self.bad, torch.full_like(self.first, batch), self.first)
        self.bad |= bad
        self.since += 1

    def every(self, batch: int, epoch: int, cfg: TrainConfig) -> None:
        if not self.per_batch and self.since >= self.n:
            self.settle(epoch, cfg)

    def settle(self, epoch: int, cfg: TrainConfig) -> None:
        """Read the flag (one sync); roll back and raise if a loss was not finite, else keep a new copy."""
        if self.per_batch or self.since == 0:
            return
        self.since = 0
        # the weights too: a step on a finite loss can still overflow them, and the copy must be clean
        floats = [v for v in self.model.state_dict().values() if torch.is_tensor(v) and v.is_floating_point()]
        weights_ok = torch.stack([torch.isfinite(v).all() for v in floats]).all()
        if bool(self.bad | ~weights_ok):  # the one sync
            what = (f"non-finite training loss at epoch {epoch}, batch {int(self.first)}" if bool(self.bad) else
                    f"non-finite weights at epoch {epoch} (the loss stayed finite)")
            self.model.load_state_dict(self.snapshot, strict=False)
            raise NonFiniteLossError(f"{what}: lr {cfg.lr:g} with {cfg.optimizer} diverged; the model was "
                                     "restored to its last state with finite steps")
        self._save()


def finetune_with(pruned: nn.Module, data: Data, ops: dict[str, str], cfg: TrainConfig,
                  learn_scales: bool = False, progress: bool = False, desc: str = "fine-tune",
                  on_epoch=None) -> tuple[nn.Module, list[dict]]:
    """Fine-tune a copy of the pruned checkpoint with the given operators.

    Args:
        pruned: the pruned (not yet fine-tuned) model; left untouched.
        data: the dataset.
        ops: site -> operator name.
        cfg: hyperparameters and budget.
        learn_scales: train alpha and beta too (stage 2); else they stay 1.
        progress: show a progress bar.
        desc: the bar's label.
        on_epoch: per-epoch callback (see `train`).

    Returns:
        (the fine-tuned copy, its per-epoch history).
    """
    model = set_activations(clone(pruned), ops)
    set_trainable_scales(model, learn_scales)
    history = train(model, data, cfg, progress=progress, desc=desc, on_epoch=on_epoch)
    return model, history
