#!/usr/bin/env python3
"""Reference training/inference throughput of the Commons model's architecture in PyTorch on CPU.

The same network as the project's reference config (shared/src/model/config.ts
REFERENCE_CONFIG): a Hugging Face Llama decoder (RMSNorm, rotary positions in the
rotate_half layout, SwiGLU with intermediate ceil(8C/3) rounded up to 8, no biases, untied
head) on the 65-character tinyshakespeare vocabulary, trained with Adam, so tokens/s compare
side by side with the tfjs trainer in one run (shared/bench/run.ts). Needs Debian's
python3-torch (and libopenblas0-pthread, or PyTorch falls back to the slow reference BLAS).
Prints one JSON object.

  /usr/bin/python3 torch_llama_train_bench.py --data ../shared/data/tinyshakespeare.txt
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--ctx", type=int, default=64)
p.add_argument("--dim", type=int, default=128)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
text = open(a.data, encoding="utf-8").read()
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
V, T, C, L, H, B = len(chars), a.ctx, a.dim, a.layers, a.heads, a.batch
D = C // H
I = math.ceil(8 * C / 3 / 8) * 8
EPS = 1e-5

inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
emb = torch.cat([freqs, freqs], dim=-1)
COS, SIN = emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([-x2, x1], dim=-1)


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(), RMSNorm()
        self.q, self.k, self.v, self.o = (nn.Linear(C, C, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False)
        self.down = nn.Linear(I, C, bias=False)
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def forward(self, x):
        b, t, _ = x.shape
        h = self.n1(x)
        q, k, v = [z(h).view(b, t, H, D).transpose(1, 2) for z in (self.q, self.k, self.v)]
        cos, sin = COS[:t], SIN[:t]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(D) + self.mask[:t, :t], dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(b, t, C))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.blocks = nn.Sequential(*[Block() for _ in range(L)])
        self.norm, self.head = RMSNorm(), nn.Linear(C, V, bias=False)

    def forward(self, idx, tgt):
        logits = self.head(self.norm(self.blocks(self.embed(idx))))
        return F.cross_entropy(logits.view(-1, V), tgt.view(-1))


def batch():
    ix = torch.randint(len(data) - T - 1, (B,))
    return torch.stack([data[i : i + T] for i in ix]), torch.stack(
        [data[i + 1 : i + T + 1] for i in ix]
    )


model = Llama()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def step():
    x, y = batch()
    loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(a.warmup):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    last = step()
train_s = time.perf_counter() - t0
with torch.no_grad():
    x, y = batch()
    model(x, y)
    t0 = time.perf_counter()
    for _ in range(5):
        model(x, y)
    fwd_s = time.perf_counter() - t0

print(json.dumps({
    "runtime": f"torch {torch.__version__}",
    "threads": torch.get_num_threads(),
    "params": sum(q.numel() for q in model.parameters()),
    "config": {"vocab": V, "ctx": T, "dim": C, "layers": L, "heads": H, "intermediate": I, "batch": B},
    "trainTokensPerSec": a.steps * B * T / train_s,
    "forwardTokensPerSec": 5 * B * T / fwd_s,
    "finalLoss": last,
}))
