"""One step-based trainer for every application's diffusion model.

The application supplies a ``loss_fn(model, batch, generator, device, precision) → scalar`` (how a batch becomes
a diffusion loss: which channels are the target, which the conditions, which class label) and optionally a
``validate_fn(model, device) → {metric: value}`` (full-volume samples scored through :mod:`medfusion.metrics`).
The trainer does the rest:

- ``max_steps`` optimisation steps (AdamW, or the ``optimizer`` given; optional gradient clipping), in epochs over
  ``train_data`` (order and augmentations seeded per step, see :meth:`Trainer._loader`);
- ``last.pt`` every ``save_every`` steps: model, optimiser, step, best score and the random generator of every
  process, so a resumed run continues to **the same weights** an uninterrupted run reaches
  (``tests/apps/cwdm/test_cwdm.py`` checks this bit for bit);
- ``model.pt``: the best validation score (or the last step without validation), an application checkpoint;
- an exponential moving average of the weights (``ema_decay`` > 0; PyTorch's ``AveragedModel``), which then is what
  validation scores and ``model.pt`` holds — the usual remedy for a diffusion network whose weights wander from
  step to step (a seg2med checkpoint's organ means moved by tens of HU between validations), kept in ``last.pt``;
- precision: ``"auto"`` = bfloat16 autocast on CUDA, float32 on CPU (the noise and the targets stay float32);
- DDP under ``torchrun`` (``distributed=True``; gloo on CPU, NCCL on GPUs); every process draws its own noise;
- logging through the ``medfusion.training`` logger (a bundle's ``logging.conf`` formats and routes it) and a
  JSON-lines ``log.jsonl``;
- Ctrl-C and SIGTERM (Slurm's notice) stop it cleanly, with one line naming the ``last.pt`` that resumes it.

Why a loop of our own rather than MONAI's ``SupervisedTrainer`` (measured in ``benchmarks/studies/trainer_study/``): on the
tiny cWDM resume test, ``SupervisedTrainer`` with the standard ``CheckpointSaver``/``CheckpointLoader`` resumes to
different weights from the first resumed step (max |Δw| 8e-3 after 6 steps, more than those steps moved the
weights), because neither the diffusion noise generator, the shuffling RNG, the MONAI transforms' random state nor
the position within an epoch is checkpointed, and under DDP every process draws the same noise.  Making it exact
took about 50 more lines (a checkpointable per-process generator, an epoch-seeded sampler that skips the finished
part of an epoch, per-item transform seeding) that depend on handler order; it then matched this loop bit for
bit, single-process and DDP, at the same speed within noise, while installing pytorch-ignite adds about 1 s to
every ``import monai``.  What this loop does not have is MONAI's handler ecosystem (evaluators with key-metric
checkpoints, early stopping, learning-rate handlers, TensorBoard/MLflow logging).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError, Terminated, signals_as_exceptions, signals_held
from .checkpoint import load_checkpoint, load_torch, plain, save_torch
from .data import SeededItems
from .precision import check_precision

__all__ = ["Trainer"]

logger = logging.getLogger("medfusion.training")

LossFn = Callable[..., torch.Tensor]


class Trainer:
    """Train a :class:`~medfusion.core.model.DiffusionModel` (or any model with a settable ``network``, ``info``,
    ``checkpoint()`` and ``save(path)``, such as an application's deterministic baseline).

    Args:
        model: the model (its ``network`` is trained in place).
        train_data: a dataset of dicts (e.g. a MONAI ``CacheDataset`` over the application's training Compose).
        output_dir: where ``last.pt``, ``model.pt`` and ``log.jsonl`` go.
        loss_fn: ``loss_fn(model, batch, generator=..., device=..., precision=...) → scalar loss``.
        validate_fn: ``validate_fn(model, device) → {name: value}`` or ``None``; ``val_metric`` names the value
            whose maximum selects ``model.pt``.
        max_steps: optimisation steps in total (resuming continues up to this number).
        batch_size, lr, weight_decay: batch size, peak learning rate (default 1e-5, the published cWDM rate at
            batch 1) and the default optimizer's weight decay.
        optimizer: ``optimizer(parameters) → torch.optim.Optimizer`` — e.g. a bundle config's ``{"_target_":
            "torch.optim.AdamW", "_mode_": "callable", "betas": [0.9, 0.99]}``; default AdamW(``lr``,
            ``weight_decay``). Its learning rate is set every step by the schedule below, whatever it was built with.
        grad_clip_norm: clip the gradients' global L2 norm to this value before each step (``None``: no clipping).
        lr_schedule: ``"constant"`` (as published) or ``"cosine"`` (``lr`` decays to 0 over ``max_steps`` along
            half a cosine, after ``warmup_steps`` of linear warm-up); a function of the step alone, so resuming
            continues it exactly.
        lr_scheduler: ``lr_scheduler(optimizer) → torch.optim.lr_scheduler.LRScheduler`` — e.g. ``{"_target_":
            "torch.optim.lr_scheduler.StepLR", "_mode_": "callable", "step_size": 1000, "gamma": 0.5}`` — stepped
            after every optimisation step, its state kept in ``last.pt`` so that resuming continues it; given, it
            replaces ``lr_schedule`` and ``warmup_steps``. Every log line records the step's learning rate.
        precision: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"`` (autocast of the network, with
            a ``GradScaler`` — loss scaling — as float16 training needs; CUDA only).
        val_every, save_every, log_every: steps between validations, ``last.pt`` saves and log lines.
        seed: seeds the data order, the augmentations and the diffusion noise.
        device: ``None`` = the local CUDA device if there is one, else the CPU.
        distributed: DDP over the processes ``torchrun`` started.
        info: provenance stored in ``model.pt`` (training data, settings).
        init_weights: a model checkpoint (e.g. shipped weights) whose network weights start a new run — to
            fine-tune; the network settings must be this model's.  Ignored when ``last.pt`` resumes a run.
        ema_decay: the decay of an exponential moving average of the weights (0: none; e.g. 0.999 averages over
            about the last thousand steps); validation and ``model.pt`` then use the average.
        keep_validated: also keep every validated network as ``model_step<N>.pt`` (its score in its ``info``), to
            choose weights afterwards by measures the validation does not compute.
    """

    def __init__(self, model, train_data: Dataset, output_dir: str | os.PathLike, *, loss_fn: LossFn,
                 validate_fn: Callable | None = None, val_metric: str = "val_score", max_steps: int = 1000,
                 batch_size: int = 1, lr: float = 1e-5, weight_decay: float = 0.0, lr_schedule: str = "constant",
                 warmup_steps: int = 0, precision: str = "auto",
                 val_every: int = 250, save_every: int = 50, log_every: int = 10, seed: int = 0,
                 device: str | torch.device | None = None, distributed: bool = False, num_workers: int = 0,
                 info: dict | None = None, init_weights: str | os.PathLike | None = None,
                 ema_decay: float = 0.0, keep_validated: bool = False, optimizer: Callable | None = None,
                 grad_clip_norm: float | None = None, lr_scheduler: Callable | None = None) -> None:
        self.model, self.train_data, self.output_dir = model, train_data, Path(output_dir)
        # checked now, so that a wrong file ends before any output; applied by run() unless last.pt resumes
        self._init_path = None if init_weights in (None, "") else Path(init_weights)
        self._init = None if self._init_path is None else self._initial_weights(self._init_path)
        self.loss_fn, self.validate_fn, self.val_metric = loss_fn, validate_fn, val_metric
        self.max_steps, self.batch_size, self.lr = int(max_steps), int(batch_size), float(lr)
        self.weight_decay, self.ema_decay = float(weight_decay), float(ema_decay)
        self.keep_validated = bool(keep_validated)
        self.make_optimizer, self.make_scheduler = optimizer, lr_scheduler
        self.grad_clip_norm = None if grad_clip_norm in (None, 0) else float(grad_clip_norm)
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be positive, got {grad_clip_norm!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.lr_schedule, self.warmup_steps = lr_schedule, int(warmup_steps)
        self.val_every, self.save_every, self.log_every = int(val_every), int(save_every), int(log_every)
        self.seed, self.distributed, self.num_workers = int(seed), bool(distributed), int(num_workers)
        self.info = dict(info or {})
        self.rank, self.world_size = 0, 1
        if self.distributed:
            self._init_distributed()
        if device is None:
            device = f"cuda:{_local_rank()}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if precision == "auto":
            precision = "bfloat16" if self.device.type == "cuda" else "float32"
        self.precision = check_precision(precision, self.device)

    # ---- distributed helpers -------------------------------------------------------------------------------
    def _init_distributed(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(_local_rank())
            dist.init_process_group(backend=backend)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        logger.info(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        with open(self.output_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    # ---- the loop ------------------------------------------------------------------------------------------
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        """The batches of ``epoch`` for this process, after the first ``skip_batches`` (resuming mid-epoch).

        The order is a permutation seeded by ``(seed, epoch)`` (padded to a multiple of the processes and split
        among them, as ``DistributedSampler`` does) and every item's random augmentation is seeded by
        ``(seed, epoch, index)``: the data a step sees depends on nothing but the step, so a resumed run sees
        what the uninterrupted one saw.
        """
        n = len(self.train_data)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)).tolist()
        total = -(-n // self.world_size) * self.world_size
        order = (order + order[: total - n])[self.rank::self.world_size]
        items = [(epoch, i) for i in order][skip_batches * self.batch_size:]
        return DataLoader(SeededItems(self.train_data, self.seed), batch_size=self.batch_size, sampler=items,
                          num_workers=self.num_workers, drop_last=False)

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimisation step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        span = max(1, self.max_steps - self.warmup_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))

    def _batches_per_epoch(self) -> int:
        share = -(-len(self.train_data) // self.world_size)
        return -(-share // self.batch_size)

    def _resume(self, net, optimizer, gen) -> tuple[int, float]:
        path = self.output_dir / "last.pt"
        self._resumed_ema = None
        if not path.is_file():
            if self._init is not None:
                net.load_state_dict(self._init.state_dict)
                self._log({"event": "initialised", "from": self._init_path.name,
                           "train_steps": self._init.info.get("train_steps")})
            return 0, -math.inf
        ckpt = load_torch(path)
        net.load_state_dict(ckpt["model"]["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            self._scaler.load_state_dict(ckpt["scaler"])
        if self._scheduler is not None and "lr_scheduler" in ckpt:
            self._scheduler.load_state_dict(ckpt["lr_scheduler"])
        gen.set_state(ckpt["generator"][self.rank % len(ckpt["generator"])])
        self._resumed_ema = ckpt.get("ema")
        self._log({"event": "resumed", "step": int(ckpt["step"])})
        return int(ckpt["step"]), float(ckpt["best"])

    def _initial_weights(self, path: Path):
        """The checkpoint of ``init_weights``, refused unless it is this application's and this network's."""
        ckpt = load_checkpoint(path, kind=getattr(self.model, "kind", None))
        if plain(ckpt.network) != plain(self.model.network_config):
            raise InputError(f"init_weights {path} has another network ({ckpt.network}) than the model being "
                             f"trained ({self.model.network_config})")
        return ckpt

    def run(self) -> dict:
        """Train until ``max_steps``; returns the last log record with ``step`` and ``best`` (validation).

        Ctrl-C and SIGTERM (a scheduler ending the job) stop the run between two files: a checkpoint being written
        is not left half-written, ``log.jsonl`` records where it stopped, and the :class:`KeyboardInterrupt` (or
        :class:`~medfusion.errors.Terminated`) goes on with ``outcome`` naming the ``last.pt`` that resumes the run
        (the same call resumes); a bundle prints that as its one line (:class:`~medfusion.core.bundle.Training`)."""
        self._saved = None
        try:
            with signals_as_exceptions():
                return self._train()
        except KeyboardInterrupt as e:
            if self.output_dir.is_dir():
                self._log({"event": "stopped", "signal": "SIGTERM" if isinstance(e, Terminated) else "SIGINT",
                           "resumes_from": self._saved})
            e.outcome = (f"{self.output_dir / 'last.pt'} (step {self._saved}) resumes it" if self._saved is not None
                         else "no checkpoint was saved yet")
            raise

    def _train(self) -> dict:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._log({"event": "start", "world_size": self.world_size, "device": str(self.device),
                   "precision": self.precision})
        torch.manual_seed(self.seed + self.rank)
        np.random.seed(self.seed + self.rank)
        net = self.model.network.to(self.device)
        optimizer = (self.make_optimizer(net.parameters()) if self.make_optimizer is not None else
                     torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay))
        # float16 needs loss scaling (its range is small); the others pass through it unchanged
        self._scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "float16")
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.rank)
        self._scheduler = None if self.make_scheduler is None else self.make_scheduler(optimizer)
        step, best = self._resume(net, optimizer, gen)
        self._ema = self._averaged(net)
        self._saved = step if step else None
        train_net = net
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda"
                                                else None)
        per_epoch = self._batches_per_epoch()
        t0, losses, record = time.time(), [], {}
        net.train()
        try:
            while step < self.max_steps:
                for batch in self._loader(step // per_epoch, step % per_epoch):
                    if step >= self.max_steps:
                        break
                    self.model.network = train_net
                    losses.append(self._step(net, optimizer, batch, gen, step))
                    step += 1
                    if step % self.log_every == 0 or step == self.max_steps:
                        record = {"step": step, "loss": float(np.mean(losses)), "lr": self._lr,
                                  "sec_per_step": (time.time() - t0) / len(losses)}
                        self._log(record)
                        losses, t0 = [], time.time()
                    self.model.network = net
                    if self.validate_fn is not None and (step % self.val_every == 0 or step == self.max_steps):
                        best = self._validate(step, best)
                    if step % self.save_every == 0 or step == self.max_steps:
                        self._save_last(net, optimizer, step, best, gen)
        finally:
            self.model.network = net
        if self.validate_fn is None:
            self._save_model(step, best)
        self._barrier()
        return {**record, "best": best, "step": step}

    def _step(self, net, optimizer, batch, gen: torch.Generator, step: int) -> float:
        """One optimisation step (0-based ``step``) on ``batch``; the loss."""
        loss = self.loss_fn(self.model, batch, generator=gen, device=self.device, precision=self.precision)
        if self._scheduler is None:
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate(step)
        self._lr = float(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        self._scaler.scale(loss).backward()
        if self.grad_clip_norm is not None:
            self._scaler.unscale_(optimizer)  # clip the true gradients, not float16's scaled ones
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip_norm)
        self._scaler.step(optimizer)
        self._scaler.update()
        if self._scheduler is not None:
            self._scheduler.step()
        if self._ema is not None:
            self._ema.update_parameters(net)
        return float(loss.detach())

    def _averaged(self, net):
        """The moving average of ``net`` (``None`` without ``ema_decay``), from ``last.pt`` when resuming."""
        if not self.ema_decay:
            return None
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay), use_buffers=True)
        if self._resumed_ema is not None:
            ema.load_state_dict(self._resumed_ema)
        return ema

    @contextlib.contextmanager
    def _scored_network(self):
        """``model.network`` is, inside, the network that validation scores and ``model.pt`` holds: the moving
        average with ``ema_decay``, the trained network otherwise."""
        net = self.model.network
        self.model.network = net if self._ema is None else self._ema.module
        try:
            yield self.model.network
        finally:
            self.model.network = net

    def _validate(self, step: int, best: float) -> float:
        if self.is_main:
            with self._scored_network() as scored:
                scored.eval()
                try:
                    scores = self.validate_fn(self.model, self.device)
                    self._log({"step": step, **scores})
                    if self.keep_validated:
                        self._save_model(step, float(scores[self.val_metric]), f"model_step{step}.pt")
                    if scores[self.val_metric] > best:
                        best = float(scores[self.val_metric])
                        self._save_model(step, best)
                finally:
                    self.model.network.train()
        return best

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def _save_last(self, net, optimizer, step: int, best: float, gen: torch.Generator) -> None:
        states = [gen.get_state()]
        if self.distributed:
            import torch.distributed as dist

            states = [None] * self.world_size
            dist.all_gather_object(states, gen.get_state())
        with signals_held():  # a signal waits until last.pt and the step it holds agree
            if self.is_main:
                state = {"model": self.model.checkpoint().to_dict(), "optimizer": optimizer.state_dict(),
                         "step": step, "best": best, "generator": states}
                if self._scaler.is_enabled():
                    state["scaler"] = self._scaler.state_dict()
                if self._ema is not None:
                    state["ema"] = self._ema.state_dict()
                if self._scheduler is not None:
                    state["lr_scheduler"] = self._scheduler.state_dict()
                save_torch(state, self.output_dir / "last.pt")
            self._saved = step

    def _save_model(self, step: int, best: float, name: str = "model.pt") -> None:
        """``model.pt``: the network being validated (the moving average, with ``ema_decay``) and its best score;
        another ``name``: that network at ``step`` and its score there, the model's ``info`` left as it was."""
        if self.is_main:
            key = f"best_{self.val_metric}" if name == "model.pt" else self.val_metric
            info = {**self.info, "train_steps": step, key: best}
            if self._ema is not None:
                info["ema_decay"] = self.ema_decay
            before = self.model.info
            self.model.info = {**before, **info}
            try:
                with self._scored_network():
                    self.model.save(self.output_dir / name)
            finally:
                if name != "model.pt":
                    self.model.info = before


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))
