"""Our loop: the run() of tests/apps/cwdm/test_cwdm.py::test_resume_reaches_the_same_weights (CWDMTrainer, save_every=6)."""
import argparse, logging, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=12); p.add_argument("--out", required=True)
p.add_argument("--phase", default="run"); p.add_argument("--data", default=str(Path(__file__).parent / "data"))
p.add_argument("--distributed", action="store_true"); p.add_argument("--save-every", type=int, default=6)
p.add_argument("--log-every", type=int, default=6)
p.add_argument("--dummy-loss", action="store_true")
a = p.parse_args()
from medfusion.apps.cwdm.model import CWDMModel
from medfusion.apps.cwdm.train import BraTSTrainingSet, CWDMTrainer
from stcommon import TINY
logging.basicConfig(stream=sys.stdout, level=logging.INFO)
torch.manual_seed(0)
model = CWDMModel.create(TINY)
data = BraTSTrainingSet(a.data, patch_size=(8, 8, 8), divisor=model.divisor, seed=0)
t = CWDMTrainer(model, data, a.out, max_steps=a.iters, lr=1e-3, save_every=a.save_every, log_every=a.log_every, device="cpu", seed=0,
                distributed=a.distributed)
import time, json
from medfusion.apps.cwdm.train import cwdm_loss
trace = []
def timed(*args, **kw):
    trace.append({"t": time.perf_counter(), "c": time.process_time()})
    if a.dummy_loss:  # framework overhead only: no network forward
        return next(args[0].network.parameters()).sum() * args[1]["image"].mean()
    return cwdm_loss(*args, **kw)
t.loss_fn = timed
t.run()
with open(Path(a.out) / f"trace_{a.phase}_rank{t.rank}.json", "w") as f:
    json.dump(trace, f)
if t.is_main:
    torch.save(model.network.state_dict(), Path(a.out) / f"weights_{a.phase}.pt")
if a.distributed:
    import torch.distributed as dist; dist.destroy_process_group()
