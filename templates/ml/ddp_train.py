"""PyTorch DDP training of a small character-level transformer, launched by torchrun on every node.

  torchrun --nnodes=$SPAWN_WORLD_SIZE --node_rank=$SPAWN_RANK --nproc_per_node=<gpus> ddp_train.py
  python ddp_train.py --smoke        # random text, a tiny model, a few steps, no download

Parameters (SPAWN_PARAMS_FILE): lr, steps, batch_size, seq_len, d_model, layers, data (a text file,
relative to the workdir). Rank 0 checkpoints every `checkpoint_every` steps; every rank resumes
from it. Metrics: step, loss, tokens_per_s. Output: model.pt.
"""

import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

import spawn_task

SMOKE = spawn_task.smoke()
p = spawn_task.params(
    {
        "lr": 3e-4,
        "steps": 20 if SMOKE else 2000,
        "batch_size": 8 if SMOKE else 64,
        "seq_len": 32 if SMOKE else 256,
        "d_model": 32 if SMOKE else 384,
        "layers": 2 if SMOKE else 6,
        "data": "data.txt",
        "checkpoint_every": 10 if SMOKE else 200,
        "seed": 0,
    }
)

distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
device = spawn_task.device()
if distributed:
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
if device.type == "cuda":
    torch.cuda.set_device(device)
world = dist.get_world_size() if distributed else 1
rank = spawn_task.rank()

if SMOKE:
    text = bytes(torch.randint(32, 127, (4096,), generator=torch.Generator().manual_seed(p["seed"])).tolist())
else:
    text = open(p["data"], "rb").read()
data = torch.tensor(list(text), dtype=torch.long)


class CharTransformer(nn.Module):
    def __init__(self, d_model: int, layers: int, seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(256, d_model)
        self.pos = nn.Parameter(torch.zeros(seq_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, max(1, d_model // 64), 4 * d_model, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, 256)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len), persistent=False)

    def forward(self, x):
        h = self.embed(x) + self.pos[: x.shape[1]]
        return self.head(self.blocks(h, mask=self.mask[: x.shape[1], : x.shape[1]], is_causal=True))


torch.manual_seed(p["seed"])
model = CharTransformer(p["d_model"], p["layers"], p["seq_len"]).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=p["lr"])
start = 0
state = spawn_task.load_checkpoint(map_location=device)
if state:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start = state["step"]
ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else model

generator = torch.Generator().manual_seed(p["seed"] * 1000 + rank)
t0, tokens = time.time(), 0
for step in range(start + 1, p["steps"] + 1):
    idx = torch.randint(0, len(data) - p["seq_len"] - 1, (p["batch_size"],), generator=generator)
    x = torch.stack([data[i : i + p["seq_len"]] for i in idx]).to(device)
    y = torch.stack([data[i + 1 : i + 1 + p["seq_len"]] for i in idx]).to(device)
    loss = nn.functional.cross_entropy(ddp(x).reshape(-1, 256), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    tokens += x.numel() * world
    if step % 10 == 0 or step == p["steps"]:
        value = loss.detach()
        if distributed:
            dist.all_reduce(value, op=dist.ReduceOp.AVG if device.type == "cuda" else dist.ReduceOp.SUM)
            if device.type != "cuda":
                value /= world
        spawn_task.metric(step=step, loss=round(value.item(), 5), tokens_per_s=round(tokens / (time.time() - t0)))
        if not math.isfinite(value.item()):
            raise SystemExit("loss is not finite")
    if rank == 0 and (step % p["checkpoint_every"] == 0 or step == p["steps"]):
        spawn_task.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step})

if rank == 0:
    torch.save(model.state_dict(), spawn_task.output_dir() / "model.pt")
if distributed:
    dist.barrier()
    dist.destroy_process_group()
