"""Training: a run folder with config, data report, split, metrics, TensorBoard logs and
checkpoints; early stopping on validation loss; Ctrl-C safe; resumable.

Run folder ``<runs_dir>/<name>/``:
``config.yaml`` (resolved), ``split.json``, ``data_report.{json,md}``, ``metrics.csv``,
``tb/``, ``best.safetensors`` (lowest validation loss), ``last.safetensors`` +
``train_state.pt`` (to resume), ``summary.json``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
import warnings
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter

from ..data.index import SPLIT_FILE, DatasetIndex, index_dataset, write_data_report
from ..data.loader import make_loader
from ..data.transforms import normalize, train_transform
from ..inference.evaluate import evaluate
from ..inference.metrics import TOP_K, topk_correct
from ..models.checkpoint import (
    BEST_NAME,
    LoadedModel,
    load_all_weights,
    make_meta,
    read_meta,
    save_checkpoint,
)
from ..models.heads import COUNTRY, GEOCELL, head, heads_of, split_logits
from ..models.registry import (
    build_model,
    builder_for,
    check_input_size,
    check_train_view,
)
from ..models.weights import read_state_dict
from ..utils.device import autocast, channels_last, resolve_device
from ..utils.errors import CheckpointError, ConfigError, DataError
from ..utils.io import atomic_path, write_csv, write_json
from ..utils.progress import add_task, log, progress_bar
from . import distributed
from .config import TrainConfig, resolve_config, save_config
from ..inference.embeddings import EmbeddingCache
from .geohead import plan_geo
from .views import choose_view

METRIC_FIELDS = ["epoch", "train_loss"] + [f"train_top{k}" for k in TOP_K] + ["val_loss"] + \
    [f"val_top{k}" for k in TOP_K] + ["lr", "epoch_seconds", "train_images_per_s",
                                      "train_geo_loss", "val_cell_median_km"]
STATE_NAME, LAST_NAME = "train_state.pt", "last.safetensors"


class BestWeights:
    """Keeps a real copy of the best weights seen so far.

    The reference kept ``model.state_dict()`` itself, whose tensors keep changing as
    training goes on, so its "best" file held the last epoch. Cloning avoids that.
    """

    def __init__(self, loss: float = math.inf, epoch: int = 0):
        self.loss, self.epoch, self.state = loss, epoch, None

    def update(self, model: nn.Module, loss: float, epoch: int) -> bool:
        if not loss < self.loss:
            return False
        self.loss, self.epoch = loss, epoch
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True


def lr_factor(cfg: TrainConfig, steps_per_epoch: int):
    """Learning-rate multiplier per optimizer step (LambdaLR), for every scheduler."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if cfg.scheduler == "step":  # the reference's StepLR, applied at epoch boundaries
            return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
        if cfg.scheduler == "cosine":
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def make_run_dir(cfg: TrainConfig, resume: bool) -> Path:
    if resume:
        if not cfg.name:  # also reached with a TrainConfig object, not only from the CLI
            raise ConfigError("--resume needs --name of the run to continue")
        run_dir = Path(cfg.runs_dir) / cfg.name
        if not (run_dir / STATE_NAME).is_file():
            raise CheckpointError(f"{run_dir}: nothing to resume (no {STATE_NAME}; did the first "
                                  "epoch finish?)")
        return run_dir
    cfg.name = cfg.name or f"{datetime.now():%Y%m%d-%H%M%S}-{cfg.arch.replace(':', '-')}"
    run_dir = Path(cfg.runs_dir) / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} already exists; continue it with --resume or pick another "
                          "--name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _config_for(resume: bool, config_file, overrides: dict) -> TrainConfig:
    if not resume:
        return resolve_config(config_file, **overrides)
    name, runs_dir = overrides.get("name"), overrides.get("runs_dir") or "runs"
    if not name:
        raise ConfigError("--resume needs --name of the run to continue")
    saved = Path(runs_dir) / name / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{saved}: not found; is {Path(runs_dir) / name} a run folder?")
    # The run's own config wins over a YAML file; explicit arguments (e.g. more epochs) win.
    return resolve_config(saved, **overrides)


class Trainer:
    """State of one run; :func:`train` is the entry point."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, index: DatasetIndex, resume: bool,
                 on_epoch=None, started: float | None = None):
        self.cfg, self.run_dir, self.index, self.on_epoch = cfg, run_dir, index, on_epoch
        # Start-up to the first step (indexing, model, loader workers) is logged: at millions
        # of images it is what a run waits for before anything happens.
        self.started = time.perf_counter() if started is None else started
        self.first_step_seconds: float | None = None
        self.device = distributed.setup(resolve_device(cfg.device))
        # Training batches all have one shape (drop_last; with --progressive, one per
        # epoch): let cuDNN time its algorithms once per shape.
        torch.backends.cudnn.benchmark = self.device.type == "cuda"
        self.is_main = distributed.is_main()
        torch.manual_seed(cfg.seed)
        # The location head's cells come from the training coordinates (none: country only).
        resumed = (head(read_meta(run_dir / LAST_NAME), GEOCELL) or {}) if resume else None
        self.geo = plan_geo(cfg.geo, index, cells=cfg.geocells, min_size=cfg.geocell_min,
                            tau_km=cfg.geo_tau, weight=cfg.geo_weight, seed=cfg.seed,
                            resumed=resumed)
        extra_heads = [self.geo.head] if self.geo is not None else []
        net = build_model(cfg.arch, len(index.classes) + sum(h["size"] for h in extra_heads),
                          "none" if resume or cfg.init_from else cfg.weights, cfg.dropout,
                          pool=cfg.pool, view_pool=cfg.view_pool)
        if cfg.init_from and not resume:
            load_all_weights(net, cfg.init_from, index.classes, cfg.pool, extra_heads)
        pp = cfg.preprocessing(net.mean, net.std, net.input_size, net.interpolation)
        check_input_size(net, cfg.arch, pp.image_size, pp.eval_view)
        check_train_view(net, cfg.arch, pp.train_view)
        if cfg.progressive and net.fixed_size is not None:
            raise ConfigError(f"--progressive shrinks the images, but {cfg.arch} takes only "
                              f"{net.fixed_size}x{net.fixed_size} inputs; leave it out")
        meta = make_meta(cfg.arch, index.classes, cfg.dropout, pp, cfg.to_dict(),
                         pool=cfg.pool, view_pool=cfg.view_pool, extra_heads=extra_heads)
        self.heads = heads_of(meta)
        self.model = LoadedModel(net.to(self.device), meta)
        if cfg.channels_last and self.device.type == "cuda":
            net.to(memory_format=torch.channels_last)
        self.pp = pp
        self.transform = train_transform(pp, index.data.scale)
        # Training steps may run a DDP-wrapped and/or compiled copy; weights are shared,
        # checkpoints always save the plain `net`, so they load like single-process ones.
        self.train_net = distributed.wrap(net, self.device)
        self.train_net = torch.compile(self.train_net) if cfg.compile else self.train_net
        self._train_loader = None
        self.steps_per_epoch = len(self.train_loader())
        opt_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        # The fused kernels are several times faster than the default per-tensor loop on CPU.
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        self.optimizer = opt_class(net.param_groups(cfg.lr, cfg.head_lr_mult, cfg.weight_decay,
                                                    cfg.layer_decay), **fused)
        # The average follows the weights after every step; validation and checkpoints use it.
        self.ema = (AveragedModel(net, multi_avg_fn=_ema_with_warmup(cfg.ema_decay),
                                  use_buffers=True) if cfg.ema_decay else None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lr_factor(cfg, self.steps_per_epoch))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.best, self.epoch, self.stale_epochs = BestWeights(), 0, 0
        self.resolution = 1.0  # this epoch's share of the training resolution (--progressive)
        if resume:
            self.load_state()

    # -- persistence -------------------------------------------------------------------
    def save_weights(self, name: str, state: dict, metrics: dict) -> None:
        meta = {**self.model.meta, "metrics": metrics}
        save_checkpoint(self.run_dir / name, state, meta)

    @property
    def evaluated(self) -> LoadedModel:
        """The model that is validated and saved: the weights' average with --ema-decay."""
        if self.ema is None:
            return self.model
        return LoadedModel(self.ema.module, self.model.meta)

    def save_state(self) -> None:
        """The commit point of an epoch: resume restarts after ``self.epoch``."""
        state = {"epoch": self.epoch, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "best_loss": self.best.loss,
                 "best_epoch": self.best.epoch, "stale_epochs": self.stale_epochs}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        with atomic_path(self.run_dir / STATE_NAME) as tmp:
            torch.save(state, tmp)

    def load_state(self) -> None:
        state = torch.load(self.run_dir / STATE_NAME, map_location="cpu", weights_only=True)
        self.model.net.load_state_dict(read_state_dict(self.run_dir / LAST_NAME))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.stale_epochs = state["epoch"], state["stale_epochs"]
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.best = BestWeights(state["best_loss"], state["best_epoch"])
        _truncate_metrics(self.run_dir / "metrics.csv", self.epoch)

    # -- one epoch ---------------------------------------------------------------------
    def train_loader(self):
        """One loader for the whole run: its workers persist between epochs (no start-up
        cost per epoch); the sampler makes each epoch's order and crops reproducible."""
        if self._train_loader is None:
            cfg = self.cfg
            self._train_loader = make_loader(
                self.index.train, self.transform, cfg.batch_size, self.device, shuffle=True,
                read=self.index.data.read, seed=cfg.seed, num_workers=cfg.num_workers,
                persistent=True,
                drop_last=len(self.index.train) > cfg.batch_size * distributed.world_size(),
                rank=distributed.rank(), world=distributed.world_size())
        return self._train_loader

    def train_epoch(self, epoch: int) -> dict:
        cfg, net, device = self.cfg, self.model.net, self.device
        # Per-epoch seeds make a resumed run identical; ranks draw different dropout masks.
        torch.manual_seed(cfg.seed + epoch + 7919 * distributed.rank())
        self.resolution = progressive_factor(cfg.progressive, epoch, cfg.epochs)
        loader = self.train_loader()
        loader.sampler.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros((), device=device)
        geo_sum = torch.zeros((), device=device)  # the location head's share of loss_sum
        correct = torch.zeros(len(TOP_K), device=device, dtype=torch.long)
        seen, start = 0, time.perf_counter()
        world = distributed.world_size()
        with progress_bar(enabled=self.is_main) as bar:
            task = add_task(bar, f"Epoch {epoch}/{cfg.epochs}", len(loader) * cfg.batch_size * world)
            for step, batch in enumerate(loader):
                for failure in batch.failed:  # the bad-file scan missed it: skip, say so
                    warnings.warn(f"skipping {failure.reason}", stacklevel=1)
                if batch.images is None:
                    continue
                labels = batch.labels.to(device, non_blocking=True)
                with autocast(device, cfg.amp):
                    loss, geo_loss, logits = self.loss(self.train_logits(batch.images), labels,
                                                       batch.indices)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(net)
                if self.first_step_seconds is None:
                    self.first_step_seconds = time.perf_counter() - self.started
                    if self.is_main:
                        log(f"First step {self.first_step_seconds:.1f} s after start")
                loss_sum += loss.detach() * len(labels)
                if geo_loss is not None:
                    geo_sum += geo_loss.detach() * len(labels)
                correct += topk_correct(logits.detach(), labels)
                seen += len(labels)
                if step % 10 == 0:  # .item() waits for the GPU: only now and then
                    bar.update(task, info=f"loss {loss_sum.item() / seen:.3f}")
                bar.advance(task, len(labels) * world)
                if self.out_of_steps:  # every rank counts the same steps: all stop here
                    break
            counts = torch.tensor(seen, device=device)
            distributed.all_sum(loss_sum, geo_sum, correct, counts)
            seen = int(counts.item())
            bar.update(task, total=seen, completed=seen, info=f"loss {loss_sum.item() / max(1, seen):.3f}")
        seconds = time.perf_counter() - start
        # The backbone's learning rate (with --layer-decay, that of its top block).
        lr = cfg.lr * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        metrics = {"train_loss": loss_sum.item() / max(1, seen), "epoch_seconds": seconds,
                   "train_images_per_s": seen / seconds, "lr": lr,
                   "resolution": self.resolution}
        if self.geo is not None:
            metrics["train_geo_loss"] = geo_sum.item() / max(1, seen)
        metrics.update({f"train_top{k}": c.item() / max(1, seen) for k, c in zip(TOP_K, correct)})
        return metrics

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor):
        """(total loss, the location head's loss or None, the country logits) of a batch
        of the training split's images at ``indices``: the country's cross-entropy, plus
        ``--geo-weight`` times the geocells' smoothed cross-entropy."""
        outputs = split_logits(logits.float(), self.heads)
        loss = self.criterion(outputs[COUNTRY], labels)
        geo_loss = None
        if self.geo is not None and self.geo.weight:
            geo_loss = self.geo.loss(outputs[GEOCELL], indices)
            if geo_loss is not None:
                loss = loss + self.geo.weight * geo_loss
        return loss, geo_loss, outputs[COUNTRY]

    def train_logits(self, images) -> torch.Tensor:
        """Logits of a training batch: ``[B, 3, h, w]`` (crop, full), ``[B, K, 3, s, s]``
        (grid: the K crops of an image, combined by the model's view pool into one
        prediction) or a list of either (images of mixed sizes). With ``--progressive`` the
        batch is shrunk to this epoch's resolution first."""
        if isinstance(images, list):
            return torch.cat([self.train_logits(image[None]) for image in images])
        device, views = self.device, images.dim() == 5
        flat = images.flatten(0, 1) if views else images
        flat = shrink(normalize(flat.to(device, non_blocking=True), self.pp), self.resolution)
        flat = channels_last(flat, device, self.cfg.channels_last)
        return self.train_net(flat.view(*images.shape[:2], *flat.shape[1:]) if views else flat)

    def validate(self) -> dict:
        result = evaluate(self.evaluated, self.index.data, split="val", samples=self.index.val,
                          device=self.device, batch_size=self.cfg.batch_size,
                          num_workers=self.cfg.num_workers, write=False, pins=False)
        for reason in result.skipped.values():  # broke after the scan: skipped, say so
            warnings.warn(f"skipping {reason}", stacklevel=1)
        row = {f"val_{k}": result.metrics[k] for k in ["loss"] + [f"top{k}" for k in TOP_K]}
        cell_km = result.metrics.get("geo_cell", {}).get("median_km")
        if cell_km is not None:
            row["val_cell_median_km"] = cell_km
        return row

    @property
    def out_of_steps(self) -> bool:
        """--max-steps reached: the scheduler counts optimizer steps (and is resumed)."""
        return 0 < self.cfg.max_steps <= self.scheduler.last_epoch

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> dict:
        writer = (SummaryWriter(str(self.run_dir / "tb"), purge_step=self.epoch + 1)
                  if self.is_main else None)
        if self.cfg.freeze_backbone:
            try:
                return self.fit_head(writer)
            finally:
                writer.close()
        try:
            while (self.epoch < self.cfg.epochs and self.stale_epochs < self.cfg.patience
                   and not self.out_of_steps):
                epoch = self.epoch + 1
                row = {"epoch": epoch, **self.train_epoch(epoch)}
                if self.is_main:  # validation is not sharded: rank 0 validates and decides
                    row.update(self.validate())
                    self.finish_epoch(row, writer)
                    _log_epoch(row)
                    if self.on_epoch is not None:
                        self.on_epoch(row)  # e.g. Optuna reporting; may raise TrialPruned
                self.epoch, self.stale_epochs = distributed.broadcast((epoch, self.stale_epochs))
        except KeyboardInterrupt:
            if not self.is_main:
                raise
            self.save_weights("interrupted.safetensors", self.evaluated.net.state_dict(),
                              {"interrupted_in_epoch": self.epoch + 1})
            log(f"\n[yellow]Interrupted.[/] Finished epochs are kept ({self.epoch}); "
                f"weights at the interruption: {self.run_dir / 'interrupted.safetensors'}"
                f"\nContinue with: geoconvnet train --resume --name {self.cfg.name} "
                f"--runs-dir {self.cfg.runs_dir}")
            raise
        finally:
            if writer is not None:
                writer.close()
        return self.write_summary() if self.is_main else {}

    def fit_head(self, writer) -> dict:
        """--freeze-backbone: the head alone, on embeddings computed once (:mod:`.frozen`)."""
        cfg, device, view = self.cfg, self.device, self.pp.eval_view
        cache = EmbeddingCache(cfg.embedding_cache, self.model, view, cfg.max_pixels)
        # One call for both splits: the cache file is read and written once.
        vectors = cache.get(self.index.data, self.index.train + self.index.val, device,
                            cfg.batch_size, cfg.num_workers).to(device)
        x_train, x_val = vectors[:len(self.index.train)], vectors[len(self.index.train):]
        y_train, y_val = (torch.tensor([label for _, label in samples], device=device)
                          for samples in (self.index.train, self.index.val))
        total = len(x_train) + len(x_val)
        log(f"Embeddings ({view} view): {cache.computed} computed, {total - cache.computed} "
            f"from the cache {cache.path}")
        net_head = self.model.net.head
        self.optimizer = torch.optim.AdamW(net_head.parameters(), lr=cfg.lr * cfg.head_lr_mult,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        order = torch.Generator().manual_seed(cfg.seed)

        def head(x):  # the country logits (the location head's are trained in the loss)
            return split_logits(net_head(x), self.heads)[COUNTRY]

        while self.epoch < cfg.epochs and self.stale_epochs < cfg.patience:
            start = time.perf_counter()
            net_head.train()
            for chunk in torch.randperm(len(x_train), generator=order).split(cfg.batch_size):
                chunk = chunk.to(device)
                loss, _, _ = self.loss(net_head(x_train[chunk]), y_train[chunk], chunk)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            net_head.eval()
            with torch.no_grad():
                row = {"epoch": self.epoch + 1, **_scores("train", head(x_train), y_train),
                       **_scores("val", head(x_val), y_val)}
            seconds = time.perf_counter() - start
            row.update(lr=cfg.lr * cfg.head_lr_mult, epoch_seconds=seconds,
                       train_images_per_s=len(x_train) / seconds)
            self.finish_epoch(row, writer)
            _log_epoch(row)
            if self.on_epoch is not None:
                self.on_epoch(row)  # tune: report, maybe prune
        return {**self.write_summary(), "embeddings_computed": cache.computed,
                "embeddings_cached": total - cache.computed}

    def finish_epoch(self, row: dict, writer) -> None:
        self.epoch = row["epoch"]
        if self.best.update(self.evaluated.net, row["val_loss"], self.epoch):
            self.stale_epochs = 0
            best_metrics = {k: row[k] for k in row if k.startswith("val_")} | {"epoch": self.epoch}
            self.save_weights(BEST_NAME, self.best.state, best_metrics)
        else:
            self.stale_epochs += 1
        self.save_weights(LAST_NAME, self.model.net.state_dict(), {"epoch": self.epoch})
        # (last.safetensors holds the raw weights that resume continues from; the average is
        # in train_state.pt)
        _append_metrics(self.run_dir / "metrics.csv", row)
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key.replace("_", "/", 1), value, self.epoch)
        writer.flush()
        self.save_state()

    def write_summary(self) -> dict:
        summary = {"run": str(self.run_dir), "epochs_run": self.epoch, "best_epoch": self.best.epoch,
                   "best_val_loss": self.best.loss,
                   "stopped_early": self.stale_epochs >= self.cfg.patience and self.epoch < self.cfg.epochs,
                   "classes": len(self.index.classes), "device": str(self.device),
                   "processes": distributed.world_size(),
                   "optimizer_steps": self.scheduler.last_epoch,
                   "first_step_seconds": self.first_step_seconds}
        write_json(self.run_dir / "summary.json", summary)
        return summary


def progressive_factor(start: float, epoch: int, epochs: int) -> float:
    """The share of the training resolution in ``epoch`` (1-based) with progressive resizing
    from ``start`` (0 or 1: off): rising linearly from ``start`` in the first epoch to full
    resolution, which the last fifth of the epochs (at least one) train at -- low
    resolution first, the full one last, as FFCV's ResNet recipes do."""
    if not start or start >= 1 or epochs < 2:
        return 1.0
    full_from = epochs - max(1, round(0.2 * epochs)) + 1  # the first full-resolution epoch
    if epoch >= full_from:
        return 1.0
    return start + (1 - start) * (epoch - 1) / max(1, full_from - 1)


def shrink(images: torch.Tensor, factor: float, multiple: int = 8) -> torch.Tensor:
    """``[N, 3, H, W]`` float images resized by ``factor`` (sides rounded to ``multiple``
    pixels, at least 16); unchanged at factor 1."""
    if factor >= 1:
        return images
    h, w = images.shape[-2:]
    size = [max(16, round(side * factor / multiple) * multiple) for side in (h, w)]
    if size == [h, w]:
        return images
    return nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True,
                                     align_corners=False)


def _ema_with_warmup(decay: float):
    """EMA whose decay grows to ``decay`` as (1 + n) / (10 + n) over the first updates, so
    the average is not mostly the initial weights after a short run (as in timm's EMA)."""
    def update(averaged, current, num_averaged):
        n = int(num_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, num_averaged)

    return update


def _scores(prefix: str, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    loss = nn.functional.cross_entropy(logits, labels).item()
    correct = topk_correct(logits, labels)
    return {f"{prefix}_loss": loss,
            **{f"{prefix}_top{k}": c.item() / len(labels) for k, c in zip(TOP_K, correct)}}


def check_same_split(index: DatasetIndex, run_dir: Path) -> None:
    saved = json.loads((run_dir / SPLIT_FILE).read_text())["val"]
    if saved != index.val_paths():
        raise DataError(f"{index.root} changed since {run_dir} started (the validation split "
                        "differs); resuming would mix splits. Start a new run instead.")


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop rows of epochs that were not committed (a crash between the two writes)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch]
    write_csv(path, METRIC_FIELDS, rows)


def _log_epoch(row: dict) -> None:
    resolution = row.get("resolution", 1.0)
    log(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f} top1 {row['train_top1']:.1%} "
        f"| val loss {row['val_loss']:.3f} top1 {row['val_top1']:.1%} top3 {row['val_top3']:.1%} "
        f"| {row['train_images_per_s']:.1f} img/s"
        + (f" | {resolution:.0%} resolution" if resolution < 1 else "")
        + (f" | val cell median {row['val_cell_median_km']:,.0f} km"
           if row.get("val_cell_median_km") is not None else ""))


def train(config: TrainConfig | None = None, *, config_file: str | Path | None = None,
          resume: bool = False, on_epoch=None, **overrides) -> Path:
    """Train a model and return its run folder.

    ``train(data="sample", arch="resnet18", weights="none", epochs=2)`` -- any
    :class:`TrainConfig` field can be passed; ``config_file`` is a YAML file of them.
    ``on_epoch(row)`` is called after every epoch with that epoch's metrics.
    Under ``torchrun`` this is one process of a DDP run (see :mod:`.distributed`).
    """
    started = time.perf_counter()
    cfg = copy.deepcopy(config) if config is not None else _config_for(resume, config_file, overrides)
    if not cfg.data:
        raise ConfigError("no dataset given: pass --data ROOT (try `geoconvnet data synth sample`)")
    builder_for(cfg.arch)  # a wrong --arch fails before a run folder is made
    if cfg.freeze_backbone and (resume or distributed.world_size() > 1):
        raise ConfigError("--freeze-backbone trains a head in seconds on one process: start "
                          "it again instead of --resume, and without torchrun")
    if distributed.world_size() > 1:
        try:
            return _train_distributed(cfg, resume, started)
        finally:
            distributed.teardown()
    return _train_here(cfg, resume, on_epoch, started=started)


def _train_distributed(cfg: TrainConfig, resume: bool, started: float) -> Path:
    """One process of a torchrun job: rank 0 creates the run folder, every rank trains."""
    distributed.setup(resolve_device(cfg.device))
    if distributed.is_main():
        make_run_dir(cfg, resume)
    cfg.name = distributed.broadcast(cfg.name)  # default names carry rank 0's clock
    distributed.barrier()
    if distributed.is_main():
        return _train_here(cfg, resume=resume, on_epoch=None, run_dir_made=True, started=started)
    index = index_dataset(cfg.data, cfg.val_fraction, cfg.seed, max_pixels=cfg.max_pixels)
    run_dir = Path(cfg.runs_dir) / cfg.name
    distributed.barrier()  # rank 0 has written config and split
    Trainer(cfg, run_dir, index, resume, started=started).fit()
    return run_dir


def _train_here(cfg: TrainConfig, resume: bool, on_epoch, run_dir_made: bool = False,
                started: float | None = None) -> Path:
    run_dir = Path(cfg.runs_dir) / cfg.name if run_dir_made else make_run_dir(cfg, resume)
    index = index_dataset(cfg.data, cfg.val_fraction, cfg.seed, max_pixels=cfg.max_pixels)
    if not resume:
        save_config(cfg, run_dir / "config.yaml")
        write_data_report(index, run_dir)
        split = index.split_record(cfg.val_fraction, cfg.seed)
        write_json(run_dir / SPLIT_FILE, split, indent=1)
    else:
        check_same_split(index, run_dir)
        save_config(cfg, run_dir / "config.yaml")  # e.g. a raised --epochs
    if index.bad_files:
        log(f"[yellow]{len(index.bad_files)} unreadable file(s) skipped[/], listed in "
            f"{run_dir / 'data_report.md'}")
    world = distributed.world_size()
    log(f"Run [bold]{run_dir}[/]: {len(index.classes)} classes, {len(index.train)} train / "
        f"{len(index.val)} val images, arch {cfg.arch}, device {resolve_device(cfg.device)}"
        + (f" x {world} processes (DDP)" if world > 1 else ""))
    distributed.barrier()  # the other ranks wait for config and split before they start
    summary = Trainer(cfg, run_dir, index, resume, on_epoch, started).fit()
    if cfg.freeze_backbone:
        write_json(run_dir / "summary.json", summary)
    if cfg.eval_view == "auto" and (run_dir / BEST_NAME).is_file():
        chosen = choose_view(run_dir, index, resolve_device(cfg.device), cfg.num_workers)
        write_json(run_dir / "summary.json", {**summary, **chosen})
        _log_views(chosen)
    return run_dir


def _log_views(chosen: dict) -> None:
    cells = ", ".join(f"{view} {s['top1']:.1%} ± {s.get('top1_se', 0):.1%} / loss "
                      f"{s['loss']:.3f} ± {s.get('loss_se', 0):.3f}"
                      for view, s in chosen["view_scores"].items())
    why = ("the lowest loss" if chosen.get("chosen_by", "loss") == "loss"
           else "a top-1 lead beyond twice its standard error")
    log(f"Views on validation (top-1 / loss, ± standard error): {cells} -> "
        f"[bold]{chosen['eval_view']}[/] ({why}) is the checkpoint's view from now on")
