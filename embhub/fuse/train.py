"""Training one fusion model, predicting with it, and reading its attention (torch; imported lazily).

Training follows the study's trainer (benchmark-protocol-details.md §7.1): Adam, linear warm-up from 1e-8·lr
over ``warmup_epochs`` epochs of steps then a constant rate, gradient-norm clipping, early stopping on the
validation task loss with the best epoch's weights restored. LFC loss: mean over the batch of
``‖ŷ − y‖₂`` (the L2 metric itself). DEG loss: per-gene cross-entropy with balanced class weights
``n / (3·count[g, c])`` (0 for an absent class) from the training rows, weighted mean over rows, then the mean
over genes.

On a GPU the forward pass runs under ``torch.autocast`` in :func:`embhub.accel.pick_dtype`'s precision (a
gradient scaler guards fp16); on the CPU it runs in fp32 with torch's deterministic algorithms, so the same seed
gives the same model.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from embhub.accel import pick_device, pick_dtype
from embhub.errors import InputError
from embhub.fuse.config import TRAINING_SEED, WARMUP_START_FACTOR, FusionConfig
from embhub.fuse.data import FusionData
from embhub.fuse.model import DEG_CLASSES, FusionModel

PREDICT_BATCH = 1024


@dataclass
class EpochReport:
    """What the progress callback receives after every epoch."""

    label: str
    epoch: int
    max_epochs: int
    train_loss: float
    validation_loss: float
    best_epoch: int
    seconds: float


class TrainingDiverged(InputError):
    """No epoch gave a finite validation loss, so there is no model to keep."""


ProgressCallback = Callable[[EpochReport], None]
EpochHook = Callable[[int, float], None]


@dataclass
class TrainedFusion:
    model: FusionModel
    config: FusionConfig
    task: str
    device: Any
    dtype: Any
    best_epoch: int
    best_validation_loss: float
    seconds_per_epoch: float
    history: list[dict[str, float]] = field(default_factory=list)
    cpu_threads: int | None = None


@contextlib.contextmanager
def seeded(seed: int, cpu_threads: int | None = None, deterministic: bool = True) -> Iterator[None]:
    """Seed torch, switch on deterministic algorithms (CPU runs) and optionally set the CPU thread count.

    Small models train far faster on one thread when the CPU is shared (OpenMP threads spin waiting for
    each other); results are reproducible for a given thread count. Previous settings are restored.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        with thread_count(cpu_threads):
            yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


@contextlib.contextmanager
def thread_count(cpu_threads: int | None) -> Iterator[None]:
    """Use ``cpu_threads`` torch CPU threads for the duration (None: leave torch's setting)."""
    previous = torch.get_num_threads()
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DeviceData:
    """The arrays of a :class:`FusionData` as tensors on one device, gathered per batch of rows."""

    def __init__(self, data: FusionData, device: Any, task: str):
        self.device = device
        self.sources = [torch.as_tensor(matrix, device=device) for matrix in data.sources]
        self.present = torch.as_tensor(data.present, device=device)
        self.row_pert = torch.as_tensor(data.row_pert, device=device)
        self.row_cell_line = torch.as_tensor(data.row_cell_line, device=device)
        if task == "lfc":
            self.targets = torch.as_tensor(data.lfc, device=device)
        else:
            self.targets = torch.as_tensor(data.deg.astype(np.int64) + 1, device=device)

    def batch(self, rows: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        perts = self.row_pert[rows]
        return [s[perts] for s in self.sources], self.present[perts], self.row_cell_line[rows], self.targets[rows]


def input_statistics(data: FusionData, rows: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-source mean and scale over the unique training perturbations that have the source.

    (The study's z-score also counted the zero-filled missing rows; leaving them out keeps a half-covered
    source's statistics those of its real vectors.) Constant dimensions get scale 1.
    """
    perts = np.unique(data.row_pert[rows])
    means, scales = [], []
    for s, matrix in enumerate(data.sources):
        have = perts[data.present[perts, s]]
        if have.size == 0:
            means.append(np.zeros(matrix.shape[1], np.float32))
            scales.append(np.ones(matrix.shape[1], np.float32))
            continue
        values = matrix[have].astype(np.float64)
        scale = values.std(axis=0)
        scale[scale < 1e-8] = 1.0
        means.append(values.mean(axis=0).astype(np.float32))
        scales.append(scale.astype(np.float32))
    return means, scales


def context_means(data: FusionData, rows: np.ndarray) -> np.ndarray:
    """``(n_cell_lines, G)``: each cell line's mean response over ``rows`` (zeros for a line without rows)."""
    means = np.zeros((len(data.cell_lines), data.lfc.shape[1]), np.float32)
    for line in range(len(data.cell_lines)):
        own = rows[data.row_cell_line[rows] == line]
        if own.size:
            means[line] = data.lfc[own].astype(np.float64).mean(axis=0)
    return means


def deg_class_weights(data: FusionData, rows: np.ndarray) -> np.ndarray:
    """Balanced weights ``(G, 3)``: ``n / (3·count[g, c])``, 0 where class c never occurs for gene g."""
    labels = data.deg[rows].astype(np.int64) + 1
    counts = np.stack([(labels == c).sum(axis=0) for c in range(DEG_CLASSES)], axis=1).astype(np.float64)
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, len(rows) / (DEG_CLASSES * counts), 0.0)
    return weights.astype(np.float32)


def task_loss(output: torch.Tensor, target: torch.Tensor, task: str, class_weights: torch.Tensor | None) -> torch.Tensor:
    output = output.float()
    if task == "lfc":
        return torch.linalg.vector_norm(output - target, dim=1).mean()
    batch, genes = target.shape
    logits = output.view(batch, genes, DEG_CLASSES)
    per_entry = torch.nn.functional.cross_entropy(logits.reshape(-1, DEG_CLASSES), target.reshape(-1), reduction="none")
    weights = class_weights.gather(1, target.T).T
    per_gene = (weights * per_entry.view(batch, genes)).sum(0) / weights.sum(0).clamp_min(1e-12)
    scored = weights.sum(0) > 0
    return per_gene[scored].mean()


def train_fusion(
    data: FusionData,
    fit_rows: np.ndarray,
    validation_rows: np.ndarray,
    config: FusionConfig,
    task: str = "lfc",
    *,
    seed: int = TRAINING_SEED,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    epoch_hook: EpochHook | None = None,
    label: str = "",
    cpu_threads: int | None = None,
) -> TrainedFusion:
    """Fit on ``fit_rows``, stop early on ``validation_rows``; the returned model holds the best epoch's weights.

    ``epoch_hook(epoch, validation_loss)`` runs after every epoch and may raise to abort (Optuna pruning).
    """
    torch_device = pick_device(device)
    dtype = pick_dtype(torch_device, precision)
    mixed = dtype != torch.float32
    n_outputs = data.lfc.shape[1] * (1 if task == "lfc" else DEG_CLASSES)
    on_cpu = torch_device.type == "cpu"
    with seeded(seed, cpu_threads if on_cpu else None, deterministic=on_cpu):
        model = FusionModel([m.shape[1] for m in data.sources], len(data.cell_lines), n_outputs, config)
        means, scales = input_statistics(data, fit_rows)
        if config.input_norm == "zscore":
            model.set_input_statistics([torch.as_tensor(m) for m in means], [torch.as_tensor(s) for s in scales])
        if task == "lfc" and config.response_offset == "context_mean":
            model.start_from(torch.as_tensor(context_means(data, fit_rows)))
        model.to(torch_device)
        tensors = DeviceData(data, torch_device, task)
        weights = None
        if task == "deg":
            weights = torch.as_tensor(deg_class_weights(data, fit_rows), device=torch_device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps_per_epoch = max(1, -(-len(fit_rows) // config.batch_size))
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=WARMUP_START_FACTOR, end_factor=1.0, total_iters=max(1, config.warmup_epochs * steps_per_epoch)
        )
        scaler = torch.amp.GradScaler(torch_device.type, enabled=dtype == torch.float16)
        shuffle = torch.Generator().manual_seed(seed)
        fit = torch.as_tensor(fit_rows, dtype=torch.long)
        validation = torch.as_tensor(validation_rows, dtype=torch.long, device=torch_device)
        best = (float("inf"), 0, None)
        history: list[dict[str, float]] = []
        started = time.perf_counter()
        for epoch in range(1, config.max_epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            total, seen = 0.0, 0
            for rows in fit[torch.randperm(len(fit), generator=shuffle)].split(config.batch_size):
                rows = rows.to(torch_device)
                sources, present, line, target = tensors.batch(rows)
                with torch.autocast(torch_device.type, dtype=dtype, enabled=mixed):
                    output = model(sources, present, line)
                loss = task_loss(output, target, task, weights)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                warmup.step()
                total += float(loss.detach()) * len(rows)
                seen += len(rows)
            validation_loss = _evaluate_loss(model, tensors, validation, task, weights, dtype)
            if validation_loss < best[0]:
                best = (validation_loss, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            seconds = time.perf_counter() - epoch_start
            history.append({"epoch": epoch, "train_loss": total / seen, "validation_loss": validation_loss, "seconds": seconds})
            if progress is not None:
                progress(EpochReport(label, epoch, config.max_epochs, total / seen, validation_loss, best[1], seconds))
            if epoch_hook is not None:
                epoch_hook(epoch, validation_loss)
            if epoch - best[1] >= config.patience:
                break
        elapsed = time.perf_counter() - started
    if best[2] is None:
        raise TrainingDiverged(
            f"{label or 'fusion'}: training diverged (the validation loss was NaN or inf in every epoch) at lr "
            f"{config.lr}; lower --lr, or use --precision fp32 on a GPU"
        )
    model.load_state_dict(best[2])
    model.eval()
    return TrainedFusion(
        model=model,
        config=config,
        task=task,
        device=torch_device,
        dtype=dtype,
        best_epoch=best[1],
        best_validation_loss=best[0],
        seconds_per_epoch=elapsed / len(history),
        history=history,
        cpu_threads=cpu_threads,
    )


@torch.no_grad()
def _evaluate_loss(model, tensors: DeviceData, rows: torch.Tensor, task: str, weights, dtype) -> float:
    model.eval()
    outputs, targets = [], []
    for chunk in rows.split(PREDICT_BATCH):
        sources, present, line, target = tensors.batch(chunk)
        with torch.autocast(tensors.device.type, dtype=dtype, enabled=dtype != torch.float32):
            outputs.append(model(sources, present, line).float())
        targets.append(target)
    return float(task_loss(torch.cat(outputs), torch.cat(targets), task, weights))


@torch.no_grad()
def predict(trained: TrainedFusion, data: FusionData, rows: np.ndarray) -> np.ndarray:
    """LFC ``(n, G)`` float32, or DEG classes ``(n, G)`` int8 in {−1, 0, 1}, for covered ``rows``."""
    outputs = _forward(trained, data, rows, attention=False)
    if trained.task == "lfc":
        return outputs
    return (outputs.reshape(len(rows), -1, DEG_CLASSES).argmax(axis=2) - 1).astype(np.int8)


@torch.no_grad()
def cls_attention(trained: TrainedFusion, data: FusionData, rows: np.ndarray, layers: str = "last") -> np.ndarray:
    """The CLS token's attention to every token ``(n, T)``, averaged over heads (``layers``: "last" or "all").

    Token order ``[CLS, sources…(, cell line)]``; masked sources get exactly 0; each row sums to 1.
    """
    return _forward(trained, data, rows, attention=True, layers=layers)


def _forward(trained: TrainedFusion, data: FusionData, rows: np.ndarray, attention: bool, layers: str = "last") -> np.ndarray:
    model = trained.model
    model.eval()
    tensors = DeviceData(data, trained.device, trained.task)
    index = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=trained.device)
    mixed = trained.dtype != torch.float32
    chunks = []
    with thread_count(trained.cpu_threads if trained.device.type == "cpu" else None):
        for chunk in index.split(PREDICT_BATCH):
            sources, present, line, _ = tensors.batch(chunk)
            with torch.autocast(trained.device.type, dtype=trained.dtype, enabled=mixed):
                if not attention:
                    chunks.append(model(sources, present, line).float().cpu())
                    continue
                _, weights = model(sources, present, line, return_attention=True)
            chosen = weights[-1:] if layers == "last" else weights
            chunks.append(torch.stack([w[:, :, 0, :].float().mean(1) for w in chosen]).mean(0).cpu())
    if not chunks:
        width = model.n_outputs if not attention else len(data.sources) + 1 + (model.config.cell_line == "token")
        return np.zeros((0, width), np.float32)
    return torch.cat(chunks).numpy()
