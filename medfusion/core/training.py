"""Training of the cWDM synthesis model: data pipeline (MONAI transforms) and a step-based training loop.

The loop is small on purpose, and does what a long diffusion run needs: checkpoints (``last.pt`` to resume,
``model.pt`` = best validation SSIM), resume after interruption (model, optimizer, step and random state),
validation SSIM of full-volume samples, AMP (bfloat16 autocast) on CUDA, progress lines plus a JSON-lines log,
deterministic seeds, and multi-process DDP under ``torchrun`` (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .cwdm import CWDMModel, synthesize
from .data.brats import CONTRASTS, list_cases
from .errors import InputError

__all__ = ["brats_datalist", "brats_train_transforms", "BraTSTrainingSet", "CWDMTrainer"]


def brats_datalist(dataset_dir: str | os.PathLike) -> list[dict]:
    """One dict per complete case folder: ``{"name", "t1n", "t1c", "t2w", "t2f", ["seg"]}`` (file paths)."""
    items = []
    for case in list_cases(dataset_dir, require_missing=False):
        if case.missing is not None:
            continue  # a case without all four contrasts cannot supervise training
        item = {"name": case.name, **case.paths}
        if case.seg:
            item["seg"] = case.seg
        items.append(item)
    if not items:
        raise InputError(f"no complete cases (all of {', '.join(CONTRASTS)}) in {dataset_dir}")
    return items


def brats_train_transforms(patch_size: Sequence[int] | None = None, *, lower: float = 0.1, upper: float = 99.9):
    """MONAI pipeline: load the four contrasts, normalise each (percentiles → [0, 1]), stack them as
    ``image (4, *S)`` in :data:`CONTRASTS` order, and (for training) take random ``patch_size`` crops."""
    from monai.transforms import (
        Compose, ConcatItemsd, EnsureChannelFirstd, EnsureTyped, LoadImaged, RandSpatialCropd, SelectItemsd,
        SpatialPadd,
    )

    from .transforms.intensity import PercentileNormalized

    keys = list(CONTRASTS)
    steps = [
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys, channel_dim="no_channel"),
        PercentileNormalized(keys=keys, lower=lower, upper=upper),
        ConcatItemsd(keys=keys, name="image", dim=0),
        SelectItemsd(keys=["image"]),
    ]
    if patch_size is not None:
        steps += [
            SpatialPadd(keys=["image"], spatial_size=list(patch_size)),
            RandSpatialCropd(keys=["image"], roi_size=list(patch_size), random_size=False),
        ]
    # last: plain float32 tensors (the crops would otherwise wrap them into MetaTensors again)
    steps.append(EnsureTyped(keys=["image"], dtype=torch.float32, track_meta=False))
    return Compose(steps)


class BraTSTrainingSet(Dataset):
    """Complete BraTS-layout cases, loaded and normalised once (cached), cropped at random per access."""

    def __init__(self, dataset_dir, patch_size: Sequence[int] | None = None, *, seed: int = 0, cache: bool = True):
        from monai.data import CacheDataset, Dataset as MonaiDataset

        self.items = brats_datalist(dataset_dir)
        transform = brats_train_transforms(patch_size)
        transform.set_random_state(seed=seed)
        cls = CacheDataset if cache else MonaiDataset
        kwargs = {"progress": False, "num_workers": 0} if cache else {}
        self.data = cls(self.items, transform=transform, **kwargs)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def split_missing(image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From ``image (B, 4, *S)`` and missing-contrast indices ``labels (B,)``, return the target
    ``(B, 1, *S)`` and the three conditions ``(B, 3, *S)`` in canonical order."""
    n = image.shape[1]
    order = torch.stack([torch.tensor([k] + [j for j in range(n) if j != k]) for k in labels.tolist()])
    order = order.to(image.device).reshape(order.shape + (1,) * (image.ndim - 2)).expand(-1, -1, *image.shape[2:])
    arranged = torch.gather(image, 1, order)
    return arranged[:, :1], arranged[:, 1:]


class CWDMTrainer:
    """Step-based trainer for :class:`~medfusion.cwdm.CWDMModel`.

    Args:
        model: the model to train (``model.target`` fixed → that contrast is always the target; ``None`` → a
            random missing contrast per sample, told to the network as its class label).
        train_data: dataset of dicts with ``image (4, *S)`` in [0, 1] (e.g. :class:`BraTSTrainingSet`).
        output_dir: where ``last.pt`` (resume), ``model.pt`` (best validation SSIM, or last without
            validation) and ``log.jsonl`` go.
        val_dir: BraTS-layout folder of complete cases for validation (full volumes), or ``None``.
        max_steps: optimisation steps in total (resuming continues up to this number).
        lr: AdamW learning rate (cWDM: 1e-5, batch 1).  ``amp``: bfloat16 autocast on CUDA.
        val_every, val_cases, val_sampling_steps: validation schedule (DDIM steps per sample).
        save_every: steps between ``last.pt`` checkpoints.
        distributed: use ``torch.distributed`` (set by ``torchrun``; gloo on CPU, NCCL on CUDA).
    """

    def __init__(
        self,
        model: CWDMModel,
        train_data: Dataset,
        output_dir: str | os.PathLike,
        *,
        val_dir: str | os.PathLike | None = None,
        max_steps: int = 1000,
        batch_size: int = 1,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        amp: bool = True,
        val_every: int = 250,
        val_cases: int = 2,
        val_sampling_steps: int = 10,
        save_every: int = 50,
        log_every: int = 10,
        seed: int = 0,
        device: str | torch.device | None = None,
        distributed: bool = False,
        num_workers: int = 0,
        info: dict | None = None,
    ) -> None:
        self.model = model
        self.train_data = train_data
        self.output_dir = Path(output_dir)
        self.val_dir = val_dir
        self.max_steps, self.batch_size, self.lr = int(max_steps), int(batch_size), float(lr)
        self.weight_decay, self.amp = float(weight_decay), bool(amp)
        self.val_every, self.val_cases, self.val_sampling_steps = int(val_every), int(val_cases), int(val_sampling_steps)
        self.save_every, self.log_every, self.seed = int(save_every), int(log_every), int(seed)
        self.distributed, self.num_workers = bool(distributed), int(num_workers)
        self.info = dict(info or {})
        self._val_volumes: list[dict] | None = None  # validation cases, loaded at the first validation
        self.rank, self.world_size = 0, 1
        if self.distributed:
            self._init_distributed()
        if device is None:
            device = f"cuda:{self._local_rank()}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)

    # ---- distributed helpers -------------------------------------------------------------------------------
    @staticmethod
    def _local_rank() -> int:
        return int(os.environ.get("LOCAL_RANK", 0))

    def _init_distributed(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(self._local_rank())
            dist.init_process_group(backend=backend)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        line = " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
        print(f"[train] {line}", flush=True)
        with open(self.output_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until ``max_steps``; returns the last log record (loss, best validation SSIM, ...)."""
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DistributedSampler, RandomSampler

        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._log({"event": "start", "world_size": self.world_size, "device": str(self.device)})
        torch.manual_seed(self.seed + self.rank)
        np.random.seed(self.seed + self.rank)
        net = self.model.network.to(self.device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.rank)
        step, best = 0, -math.inf
        resume = self.output_dir / "last.pt"
        if resume.is_file():
            ckpt = torch.load(resume, map_location="cpu", weights_only=True)
            net.load_state_dict(ckpt["model"]["state_dict"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step, best = int(ckpt["step"]), float(ckpt["best"])
            gen.set_state(ckpt["generator"][self.rank % len(ckpt["generator"])])
            self._log({"event": "resumed", "step": step})

        train_net = net
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_net = DistributedDataParallel(net, device_ids=ids)
        diffusion = self.model.diffusion
        diffusion.network = train_net

        if self.distributed:
            sampler = DistributedSampler(self.train_data, shuffle=True, seed=self.seed)
        else:
            sampler = RandomSampler(self.train_data, generator=torch.Generator().manual_seed(self.seed))
        loader = DataLoader(self.train_data, batch_size=self.batch_size, sampler=sampler,
                            num_workers=self.num_workers, drop_last=False)
        use_amp = self.amp and self.device.type == "cuda"
        epoch, t0, losses, record = 0, time.time(), [], {}
        net.train()
        try:
            while step < self.max_steps:
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
                for batch in loader:
                    if step >= self.max_steps:
                        break
                    image = batch["image"].to(self.device)
                    labels = self._draw_labels(image.shape[0], gen).to(self.device)
                    target, conds = split_missing(image, labels)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                        class_labels = labels if self.model.network_config.get("num_class_embeds") else None
                        loss = diffusion.loss(target, conds, class_labels, generator=gen)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    losses.append(float(loss.detach()))
                    if step % self.log_every == 0 or step == self.max_steps:
                        dt = time.time() - t0
                        record = {"step": step, "loss": float(np.mean(losses)), "sec_per_step": dt / len(losses)}
                        self._log(record)
                        losses, t0 = [], time.time()
                    if self.val_dir is not None and (step % self.val_every == 0 or step == self.max_steps):
                        diffusion.network = net
                        val = self.validate()
                        diffusion.network = train_net
                        net.train()
                        if val is not None:
                            self._log({"step": step, **val})
                            if val["val_ssim"] > best:
                                best = val["val_ssim"]
                                self._save_model("model.pt", step, best)
                    if step % self.save_every == 0 or step == self.max_steps:
                        self._save_last(net, optimizer, step, best, gen)
                epoch += 1
        finally:
            diffusion.network = net
        if self.val_dir is None:
            self._save_model("model.pt", step, best)
        self._barrier()
        return {**record, "best_val_ssim": best, "step": step}

    def _draw_labels(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.model.target is not None:
            return torch.full((n,), CONTRASTS.index(self.model.target), dtype=torch.long)
        return torch.randint(0, len(CONTRASTS), (n,), generator=gen)

    def validate(self) -> dict | None:
        """Mean SSIM (data range 1, 3D) of full-volume DDIM samples on up to ``val_cases`` validation cases,
        each with a different missing contrast in turn.  Main process only; the cases are read once."""
        if not self.is_main:
            return None
        from .data.brats import load_case
        from .metrics import ssim
        from .transforms.intensity import PercentileNormalize

        if self._val_volumes is None:
            cases = [c for c in list_cases(self.val_dir, require_missing=False) if c.missing is None]
            self._val_volumes = [{k: v.data for k, v in load_case(c).items()} for c in cases[: self.val_cases]]
        norm = PercentileNormalize(self.model.lower, self.model.upper)
        scores = []
        self.model.network.eval()
        for i, vols in enumerate(self._val_volumes):
            missing = self.model.target or CONTRASTS[i % len(CONTRASTS)]
            pred = synthesize(self.model, {c: v for c, v in vols.items() if c != missing}, missing,
                              steps=self.val_sampling_steps, seed=i, device=self.device)
            truth = np.asarray(norm(vols[missing][None]))[0]
            scores.append(ssim(pred, truth, data_range=1.0))
        return {"val_ssim": float(np.mean(scores)), "val_cases": len(scores)}

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def _gather_generators(self, gen: torch.Generator) -> list[torch.Tensor]:
        state = gen.get_state()
        if not self.distributed:
            return [state]
        import torch.distributed as dist

        states = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def _save_last(self, net, optimizer, step: int, best: float, gen: torch.Generator) -> None:
        gens = self._gather_generators(gen)
        if self.is_main:
            state = {"model": self.model.state(), "optimizer": optimizer.state_dict(), "step": step,
                     "best": best, "generator": gens}
            tmp = self.output_dir / "last.pt.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.output_dir / "last.pt")

    def _save_model(self, name: str, step: int, best: float) -> None:
        if self.is_main:
            self.model.info.update({**self.info, "train_steps": step, "best_val_ssim": best})
            self.model.save(self.output_dir / name)

    def _barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
