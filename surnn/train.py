"""Train one suRNN model on one task: the single entry point a person and the sweep both call.

    from surnn.train import train
    result = train({"task": "adding", "hidden_size": 64, "epochs": 3}, report=print_metrics)

`train` is a `surnn.trainable.Trainable` (the contract the sweep drives, described there):
`report(metrics, checkpoint_dir=None)` is called after every evaluation ("epoch", the sweep's
fidelity) with at least: epoch, the task's quality metric (val_accuracy, val_mse or
val_perplexity), update_rate (validation), train_loss, tokens_per_s. The last report of a
completed run also carries inference_ms and inference_speedup (the sparse engine at batch 1 on
the longest validation sequence, `surnn.sparse.timing`; every report with
``inference_timing="every"``, none with "off"). The return value is the last metrics with
"status": "completed", or "diverged" when the loss stopped being finite.
The model scores itself (`surnn.model`), so nothing here depends on the task's kind.

CLI: ``python -m surnn.train --task adding --hidden-size 64 --epochs 3`` (``--help`` lists
every setting); it shows progress on stderr and prints a final JSON line of metrics.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from surnn.data import Batch, TaskInfo, load_task, task_info
from surnn.model import ModelOutput, TaskModel, build_model
from surnn.sparse.timing import INFERENCE_METRICS, longest_sequence, time_inference
from surnn.train_config import TrainConfig
from surnn.trainable import FIDELITY, Reporter, Trainable

CHECKPOINT_FILE = "checkpoint.pt"


class SuRNNTrainable(Trainable):
    """The suRNN trainer as a `surnn.trainable.Trainable`: `train` plus the sweep's hooks.

    ``config`` is a `TrainConfig` or a dict of its fields (dotted keys such as
    ``task_options.max_length`` reach into the task's options).
    """

    def train(self, config: TrainConfig | dict, report: Reporter | None = None) -> dict:
        """Train, evaluate once per epoch, report, checkpoint; resume from checkpoint_dir if it holds one."""
        cfg = _config(config)
        report = report or (lambda metrics, checkpoint_dir=None: None)
        device = pick_device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
        task = load_task(cfg.task, cfg.task_options, cache_dir=cfg.cache_dir)
        model = build_model(task.info, cfg.hidden_size, cfg.num_layers, dropout=cfg.dropout,
                            layer_settings=cfg.layer_settings()).to(device)
        optimizer = make_optimizer(model, cfg)
        steps_per_epoch = cfg.steps_per_epoch or math.ceil(len(task.train) / cfg.batch_size)
        scheduler = warmup_cosine(optimizer, cfg.warmup_fraction, cfg.epochs * steps_per_epoch)
        start_epoch = load_checkpoint(cfg, model, optimizer, scheduler, device)

        scaler = make_scaler(cfg, device)
        metrics: dict = {}
        for epoch in range(start_epoch, cfg.epochs):
            fit = train_epoch(model, task, cfg, optimizer, scheduler, epoch, steps_per_epoch, device, scaler)
            if fit is None:
                return {**metrics, FIDELITY: epoch + 1, "status": "diverged"}
            metrics = {FIDELITY: epoch + 1, **fit, **evaluate(model, task.validation, task.info, cfg, device)}
            if cfg.inference_timing == "every" or (cfg.inference_timing == "end" and epoch + 1 == cfg.epochs):
                metrics.update(time_inference(model, longest_sequence(task.validation)))
            ckpt = save_checkpoint(cfg, model, optimizer, scheduler, epoch + 1, task.info)
            report(metrics, checkpoint_dir=ckpt)
        return {**metrics, "status": "completed"}

    def validate(self, config: TrainConfig | dict) -> None:
        """Checks a config and its task options without loading data.

        Raises:
            SettingError: naming the setting (``task_options.<option>`` for a task's own).
        """
        cfg = _config(config)
        task_info(cfg.task, cfg.task_options)

    def reports(self, config: TrainConfig | dict) -> set[str]:
        """Names of the metrics `train` reports at every evaluation for this config."""
        cfg = _config(config)
        layers = {f"update_rate_layer{i}" for i in range(cfg.num_layers)}
        timing = set(INFERENCE_METRICS) if cfg.inference_timing == "every" else set()
        return {FIDELITY, "train_loss", "train_update_rate", "tokens_per_s", "lr", "update_rate",
                task_info(cfg.task, cfg.task_options).metric} | layers | timing

    def prepare(self, config: TrainConfig | dict) -> None:
        """Generates (or finds in the cache) the config's task data, once before many runs share it."""
        cfg = _config(config)
        load_task(cfg.task, cfg.task_options, cache_dir=cfg.cache_dir)


train = SuRNNTrainable()
"""The trainer: ``train(config, report)``; its hooks are ``train.validate``, ``train.reports``, ``train.prepare``."""


def _config(config: TrainConfig | dict) -> TrainConfig:
    return config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not biases, norms, embeddings' padding or gate parameters)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_gate = ".gate." in name
        (decay if p.dim() >= 2 and not is_gate else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_fraction: float, total_steps: int):
    """Linear warm-up over warmup_fraction of the steps, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_batch(model: TaskModel, batch: Batch, device: torch.device, cfg: TrainConfig) -> ModelOutput:
    """One batch through the model (which scores itself), under the run's autocast."""
    tensors = Batch(*(None if a is None else torch.from_numpy(a).to(device, non_blocking=True) for a in batch))
    with _autocast(device, cfg):
        return model.forward_batch(tensors)


def sparsity_penalty(rate: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    if cfg.target_update_rate is None:
        return cfg.sparsity_lambda * rate
    return cfg.sparsity_lambda * (rate - cfg.target_update_rate) ** 2


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run with this `precision` on `device`; None: float32 throughout.

    "auto" is bfloat16 on CUDA GPUs that support it (the same exponent range as float32, so no
    loss scaling) and float32 elsewhere: CPUs without bfloat16 units gain nothing from it. The
    layers keep their state and recurrence in float32 in any case (see `surnn.cell`).
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def _autocast(device: torch.device, cfg: TrainConfig):
    dtype = autocast_dtype(cfg.precision, device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def make_scaler(cfg: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for float16 (whose gradients underflow without it); a no-op otherwise.

    It starts at 2^10 rather than torch's 2^16: only the projections run in float16 (the
    recurrence is float32), and at 2^16 their gradients overflow for the first several steps,
    each of which the scaler then skips.
    """
    enabled = autocast_dtype(cfg.precision, device) == torch.float16
    return torch.amp.GradScaler(device.type, init_scale=2.0 ** 10, enabled=enabled)


def _train_batches(task, cfg: TrainConfig, epoch: int, steps: int):
    """`steps` shuffled batches for this epoch; deterministic in (seed, epoch), so a resume repeats them."""
    taken, rounds = 0, 0
    while taken < steps:
        for batch in task.train.iter_batches(cfg.batch_size, shuffle=True, seed=cfg.seed * 100_003 + epoch * 101 + rounds,
                                             drop_last=len(task.train) >= cfg.batch_size):
            yield batch
            taken += 1
            if taken == steps:
                return
        rounds += 1


def train_epoch(model, task, cfg, optimizer, scheduler, epoch, steps, device, scaler=None) -> dict | None:
    """One epoch of optimisation; None if the loss became non-finite."""
    scaler = scaler or make_scaler(cfg, device)
    from tqdm import tqdm

    model.train()
    loss_sum, rate_sum, tokens, batches = 0.0, 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
    for batch in _train_batches(task, cfg, epoch, steps):
        out = run_batch(model, batch, device, cfg)
        loss = out.loss
        total = loss + sparsity_penalty(out.update_rate, cfg)
        if not torch.isfinite(total):
            bar.close()
            return None
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += loss.item()
        rate_sum += out.update_rate.item()
        tokens += int(out.steps)
        batches += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", rate=f"{out.update_rate.item():.3f}")
    bar.close()
    elapsed = time.perf_counter() - start
    return {"train_loss": loss_sum / batches, "train_update_rate": rate_sum / batches,
            "tokens_per_s": tokens / max(elapsed, 1e-9), "lr": scheduler.get_last_lr()[0]}


@torch.no_grad()
def evaluate(model, split, info: TaskInfo, cfg: TrainConfig, device) -> dict:
    """Quality metric and update rate (exact, over all real steps) on a split."""
    model.eval()
    batch_size = cfg.eval_batch_size or 2 * cfg.batch_size
    limit = cfg.max_eval_samples or len(split)
    total, count, opened, neuron_steps, seen = 0.0, 0, 0.0, 0.0, 0
    layer_open = None
    for batch in split.iter_batches(batch_size, shuffle=False):
        if seen >= limit:
            break
        seen += len(batch.mask)
        out = run_batch(model, batch, device, cfg)
        steps = float(out.steps) * cfg.hidden_size
        opened += float(out.opened)
        neuron_steps += steps * cfg.num_layers
        layer_open = out.layer_rates.double() * steps + (0 if layer_open is None else layer_open)
        total, count = total + float(out.metric_sum), count + int(out.metric_count)
    metrics = {"update_rate": opened / max(neuron_steps, 1.0)}
    metrics.update({f"update_rate_layer{i}": float(v) / max(neuron_steps / cfg.num_layers, 1.0)
                    for i, v in enumerate(layer_open.tolist())})
    metrics[info.metric] = model.metric_value(total, count)
    return metrics


def save_checkpoint(cfg: TrainConfig, model, optimizer, scheduler, epoch: int,
                    info: TaskInfo | None = None) -> str | None:
    """Write model, optimiser, schedule and epoch atomically; returns the folder or None.

    Tensors and plain data only (the numpy RNG state as a list), so `surnn.load` can read it
    with ``torch.load(weights_only=True)``; `info` lets it rebuild the model without the task.
    """
    if cfg.checkpoint_dir is None:
        return None
    folder = Path(cfg.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "config": cfg.to_dict(),
             "task_info": dataclasses.asdict(info) if info is not None else None,
             "rng": {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
                     "python": random.getstate()}}
    tmp = folder / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT_FILE)
    return str(folder)


def load_checkpoint(cfg: TrainConfig, model, optimizer, scheduler, device) -> int:
    """Restore from cfg.checkpoint_dir if it holds a checkpoint; returns the epoch to start at."""
    if cfg.checkpoint_dir is None or not (Path(cfg.checkpoint_dir) / CHECKPOINT_FILE).exists():
        return 0
    path = Path(cfg.checkpoint_dir) / CHECKPOINT_FILE
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    kind, keys, *rest = state["rng"]["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    random.setstate(state["rng"]["python"])
    return int(state["epoch"])


def main(argv: list[str] | None = None) -> int:
    from surnn.cli import run_cli

    return run_cli(argv, train)


if __name__ == "__main__":
    raise SystemExit(main())
