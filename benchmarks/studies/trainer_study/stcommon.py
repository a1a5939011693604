"""The tiny cWDM training of tests/apps/cwdm/test_cwdm.py, on MONAI's SupervisedTrainer (a one-off study; see README.md).

Two configurations:
  natural - what a MONAI user writes: set_determinism, DataLoader(shuffle=True) (DistributedSampler under DDP),
            the dataset's Compose seeded once, diffusion noise from the global RNG (MONAI's own
            DiffusionPrepareBatch does the same), CheckpointSaver/CheckpointLoader over network+optimizer+trainer.
  exact   - the extra pieces that make a resumed run equal an uninterrupted one (marked EXACT below).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from monai.engines import SupervisedTrainer
from monai.engines.utils import PrepareBatch
from monai.inferers import Inferer
from monai.utils import CommonKeys

from medfusion.apps.cwdm.train import cwdm_loss

TINY = {"spatial_dims": 3, "n_conditions": 3, "num_class_embeds": 4, "channels": [8, 16], "num_res_blocks": 1,
        "norm_num_groups": 8, "num_head_channels": 8}


# ---- the adaptation every configuration needs -----------------------------------------------------------------
class CWDMPrepareBatch(PrepareBatch):
    """Batch dict -> (image on device, no target); the diffusion noising happens in the loss 'inferer'."""

    def __call__(self, batchdata, device=None, non_blocking=False, **kwargs):
        image = batchdata["image"].to(device=device, non_blocking=non_blocking, **kwargs)
        return image, image  # SupervisedTrainer wants a pair; the target is unused


class CWDMLossInferer(Inferer):
    """engine.inferer(inputs, network) -> the cWDM loss (cwdm_loss), with the engine's (maybe DDP) network."""

    def __init__(self, model, generator=None, precision="float32", hook=None):
        self.model, self.generator, self.precision, self.hook = model, generator, precision, hook

    def __call__(self, inputs, network, *args, **kwargs):
        plain = self.model.diffusion.network
        self.model.diffusion.network = network
        try:
            if self.hook is not None:
                self.hook()
            return cwdm_loss(self.model, {"image": inputs}, generator=self.generator, device=inputs.device,
                             precision=self.precision)
        finally:
            self.model.diffusion.network = plain


def loss_is_prediction(pred, target):  # SupervisedTrainer calls loss_function(pred, target)
    return pred


# ---- EXACT: the extra pieces a bit-exact resume needs ----------------------------------------------------------
class GeneratorState:  # EXACT
    """The noise generator (one per DDP process) as an object ignite's Checkpoint can save and load."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self):
        states = [self.generator.get_state()]
        if dist.is_available() and dist.is_initialized():
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, self.generator.get_state())
        return {"states": states}

    def load_state_dict(self, state):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.generator.set_state(state["states"][rank % len(state["states"])])


class SeededItems(Dataset):  # EXACT
    """dataset[(epoch, i)]: item i with its random transforms seeded by (seed, epoch, i)."""

    def __init__(self, dataset, seed=0):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        self.dataset.set_random_state(seed=(self.seed * 1_000_003 + epoch * 10_007 + i) % 2**32)
        return self.dataset[i]


class EpochSampler(Sampler):  # EXACT
    """(epoch, i) keys in an order seeded by (seed, epoch), split among DDP processes; `attach` keeps the epoch
    in step with the engine and, on a mid-epoch resume, skips the batches the saved run had already done."""

    def __init__(self, n, seed=0, batch_size=1, world_size=1, rank=0, skip_mid_epoch=True):
        self.n, self.seed, self.batch_size, self.world_size, self.rank = n, seed, batch_size, world_size, rank
        self.epoch, self.skip, self.skip_mid_epoch = 0, 0, skip_mid_epoch

    def __len__(self):
        return -(-self.n // self.world_size)

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        order = order.tolist()
        total = len(self) * self.world_size
        order = (order + order[: total - self.n])[self.rank::self.world_size]
        items, self.skip = [(self.epoch, i) for i in order][self.skip:], 0
        return iter(items)

    def attach(self, engine):
        from ignite.engine import Events

        def started(e):  # after CheckpointLoader (attached earlier, also on STARTED)
            if self.skip_mid_epoch:
                self.skip = (e.state.iteration % e.state.epoch_length) * self.batch_size

        def epoch_started(e):
            self.epoch = e.state.epoch - 1

        engine.add_event_handler(Events.STARTED, started)
        engine.add_event_handler(Events.EPOCH_STARTED, epoch_started)
