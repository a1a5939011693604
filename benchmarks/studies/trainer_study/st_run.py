"""One (part of a) tiny cWDM run on monai.engines.SupervisedTrainer.

python st_run.py --mode natural|exact [--ablate gen,items,order,skip] --iters 12 [--stop 6] --out DIR [--resume]
Writes DIR/weights_<phase>.pt (network state_dict), DIR/trace_<phase>.json (per-iteration loss, RNG digest, time).
Under torchrun: DDP over gloo (CPU).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["natural", "exact"], required=True)
p.add_argument("--ablate", default="")
p.add_argument("--iters", type=int, default=12)
p.add_argument("--stop", type=int, default=None)
p.add_argument("--out", required=True)
p.add_argument("--resume", action="store_true")
p.add_argument("--phase", default="run")
p.add_argument("--data", default=str(Path(__file__).parent / "data"))
p.add_argument("--quiet", action="store_true")
p.add_argument("--decollate", type=int, default=1)
p.add_argument("--save-every", type=int, default=6)
p.add_argument("--dummy-loss", action="store_true")
args = p.parse_args()
ablate = set(filter(None, args.ablate.split(",")))

from monai.data import DataLoader as MonaiDataLoader  # noqa: E402
from monai.engines import SupervisedTrainer  # noqa: E402
from monai.handlers import CheckpointLoader, CheckpointSaver, StatsHandler, from_engine  # noqa: E402
from monai.utils import set_determinism  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

from medfusion.apps.cwdm.model import CWDMModel  # noqa: E402
from medfusion.phantoms.brain_files import write_brats_dataset  # noqa: E402
from medfusion.apps.cwdm.train import BraTSTrainingSet  # noqa: E402
from stcommon import (TINY, CWDMLossInferer, CWDMPrepareBatch, EpochSampler, GeneratorState,  # noqa: E402
                      SeededItems, loss_is_prediction)

if args.dummy_loss:  # framework overhead only: no network forward
    import stcommon

    stcommon.cwdm_loss = lambda model, batch, **kw: next(model.network.parameters()).sum() * batch["image"].mean()
logging.basicConfig(stream=sys.stdout, level=logging.WARNING if args.quiet else logging.INFO)
seed = 0
distributed = "RANK" in os.environ
rank, world = 0, 1
if distributed:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
if rank == 0 and not (Path(args.data) / ".done").exists():
    write_brats_dataset(args.data, 2, shape=(20, 24, 18), seed0=7)
    (Path(args.data) / ".done").touch()
if distributed:
    dist.barrier()

if args.mode == "natural":
    set_determinism(seed=seed)
else:
    torch.manual_seed(seed)
model = CWDMModel.create(TINY)  # same initial weights in every configuration (torch seed 0)
data = BraTSTrainingSet(args.data, patch_size=(8, 8, 8), divisor=model.divisor, seed=seed)
net = model.network
if args.mode == "natural":
    generator = None  # global RNG, as monai.engines.DiffusionPrepareBatch
    if distributed:
        loader = MonaiDataLoader(data, batch_size=1, sampler=DistributedSampler(data, shuffle=True, seed=seed))
    else:
        loader = MonaiDataLoader(data, batch_size=1, shuffle=True)
else:
    torch.manual_seed(seed + rank)  # as our Trainer (nothing below draws from it)
    np.random.seed(seed + rank)
    generator = torch.Generator().manual_seed(seed * 1000 + rank)
    sampler = EpochSampler(len(data), seed, batch_size=1, world_size=world, rank=rank,
                           skip_mid_epoch="skip" not in ablate)
    if "order" in ablate:  # order from the global RNG, like RandomSampler
        sampler.__class__ = type("GlobalOrder", (EpochSampler,), {"__iter__": lambda s: iter(
            [(s.epoch, i) for i in torch.randperm(s.n).tolist()][s.rank::s.world_size])})
    items = SeededItems(data, seed)
    if "items" in ablate:  # the Compose seeded once, as BraTSTrainingSet leaves it
        items.__class__ = type("Unseeded", (SeededItems,), {"__getitem__": lambda s, k: s.dataset[k[1]]})
    loader = DataLoader(items, batch_size=1, sampler=sampler)

train_net = net
if distributed:
    from torch.nn.parallel import DistributedDataParallel

    train_net = DistributedDataParallel(net)
optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)

trace = []


def hook():
    state = generator.get_state() if generator is not None else torch.random.get_rng_state()
    trace.append({"t": time.perf_counter(), "c": time.process_time(), "rng": hashlib.md5(state.numpy().tobytes()).hexdigest()[:8]})


epoch_length = len(loader)
stop = args.stop or args.iters
max_epochs = math.ceil(stop / epoch_length)
trainer = SupervisedTrainer(
    device=torch.device("cpu"), max_epochs=max_epochs, train_data_loader=loader, network=train_net,
    optimizer=optimizer, loss_function=loss_is_prediction, prepare_batch=CWDMPrepareBatch(),
    inferer=CWDMLossInferer(model, generator, hook=hook), optim_set_to_none=True, decollate=bool(args.decollate),
)
save_dict = {"network": net, "optimizer": optimizer, "trainer": trainer}
if args.mode == "exact" and "gen" not in ablate:
    save_dict["noise_generator"] = GeneratorState(generator)  # EXACT
handlers = []
if args.resume:
    handlers.append(CheckpointLoader(load_path=str(out / "last.pt"), load_dict=save_dict, map_location="cpu"))
handlers += [
    StatsHandler(tag_name="train_loss", output_transform=from_engine(["loss"], first=True) if args.decollate else (lambda o: o["loss"]),
                 iteration_log=lambda e, i: i % 10 == 0 or i == stop),
    CheckpointSaver(save_dir=str(out), save_dict=save_dict, save_final=True, final_filename="last.pt",
                    save_interval=args.save_every, epoch_level=False, n_saved=1),
]
for h in handlers:
    h.attach(trainer)
if args.mode == "exact":
    sampler.attach(trainer)  # EXACT (after CheckpointLoader: both on STARTED)
if stop % epoch_length:
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=stop), lambda e: e.terminate())


@trainer.on(__import__("ignite.engine", fromlist=["Events"]).Events.ITERATION_COMPLETED)
def record(engine):
    trace[-1].update(iteration=engine.state.iteration, epoch=engine.state.epoch,
                     loss=float((engine.state.output[0] if isinstance(engine.state.output, list) else engine.state.output)["loss"]))


trainer.run()
if rank == 0:
    torch.save(net.state_dict(), out / f"weights_{args.phase}.pt")
with open(out / f"trace_{args.phase}_rank{rank}.json", "w") as f:
    json.dump(trace, f)
if distributed:
    dist.barrier()
    dist.destroy_process_group()
