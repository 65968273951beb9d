#!/usr/bin/python3
"""Plain-PyTorch reference for the Hugging Face Llama / Qwen2 forward pass.

transformers cannot be installed here, so this file re-states its modeling_llama.py /
modeling_qwen2.py forward in ~150 lines of torch, reading the same config.json and
model.safetensors the TypeScript engine reads. It deliberately shares nothing with the
engine: no KV cache (every step recomputes the whole sequence), attention with repeat_kv
as transformers writes it, the llama3 rope rule as _compute_llama3_parameters writes it.

Usage (Debian's Python, which has torch):
  /usr/bin/python3 llama_reference.py <model folder> <prompt ids, comma separated> <new tokens>
prints JSON {"logits": [[...] per prompt position], "greedy": [ids]} on stdout;
  /usr/bin/python3 llama_reference.py --bench <model folder> <tokens> <threads>
  /usr/bin/python3 llama_reference.py --lora-bench <model folder> <seq> <steps> <threads> <rank>
prints the prefill speed (shared/bench/real-models.ts runs it beside the engine).
"""
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        buf = bytearray(raw[base + begin : base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[entry["dtype"]]) if buf else torch.zeros(0)
        out[name] = t.reshape(entry["shape"]).to(torch.float32)
    return out


def inv_freq(cfg, head_dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    scaling = cfg.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) != "llama3":
        return inv
    factor = scaling["factor"]
    low = scaling["low_freq_factor"]
    high = scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_wavelen = old_len / low
    high_wavelen = old_len / high
    wavelen = 2 * math.pi / inv
    inv_llama = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_llama)


def rms_norm(x, w, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def linear(x, weights, prefix, bias, lora=None):
    y = x @ weights[prefix + ".weight"].T
    if bias:
        y = y + weights[prefix + ".bias"]
    if lora is not None and prefix in lora:
        # PEFT's LoRA: y + (alpha / r) * (x A^T) B^T, A (r, in), B (out, r).
        a, b, scale = lora[prefix]
        y = y + (x @ a.T) @ b.T * scale
    return y


def forward(cfg, weights, ids, lora=None):
    qwen = cfg["model_type"] == "qwen2"
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    eps = cfg["rms_norm_eps"]
    qkv_bias = qwen or cfg.get("attention_bias", False)
    o_bias = (not qwen) and cfg.get("attention_bias", False)
    mlp_bias = (not qwen) and cfg.get("mlp_bias", False)
    T = len(ids)
    x = weights["model.embed_tokens.weight"][torch.tensor(ids)]
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq(cfg, head_dim)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.full((T, T), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        h = rms_norm(x, weights[p + ".input_layernorm.weight"], eps)
        q = linear(h, weights, p + ".self_attn.q_proj", qkv_bias, lora).view(T, n_heads, head_dim).transpose(0, 1)
        k = linear(h, weights, p + ".self_attn.k_proj", qkv_bias).view(T, n_kv, head_dim).transpose(0, 1)
        v = linear(h, weights, p + ".self_attn.v_proj", qkv_bias, lora).view(T, n_kv, head_dim).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: each kv head serves n_heads / n_kv consecutive query heads.
        rep = n_heads // n_kv
        k = k[:, None].expand(n_kv, rep, T, head_dim).reshape(n_heads, T, head_dim)
        v = v[:, None].expand(n_kv, rep, T, head_dim).reshape(n_heads, T, head_dim)
        scores = q @ k.transpose(1, 2) / math.sqrt(head_dim) + causal
        attn = torch.softmax(scores, dim=-1, dtype=torch.float32) @ v
        attn = attn.transpose(0, 1).reshape(T, n_heads * head_dim)
        x = x + linear(attn, weights, p + ".self_attn.o_proj", o_bias)
        h = rms_norm(x, weights[p + ".post_attention_layernorm.weight"], eps)
        gate = linear(h, weights, p + ".mlp.gate_proj", mlp_bias)
        up = linear(h, weights, p + ".mlp.up_proj", mlp_bias)
        x = x + linear(torch.nn.functional.silu(gate) * up, weights, p + ".mlp.down_proj", mlp_bias)
    x = rms_norm(x, weights["model.norm.weight"], eps)
    head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    return x @ head.T


def bench(folder, tokens, threads):
    """Prefill speed: one forward pass over `tokens` positions, best of three, as JSON."""
    import time

    torch.set_num_threads(threads)
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    weights = read_safetensors(f"{folder}/model.safetensors")
    ids = [(i * 7919) % cfg["vocab_size"] for i in range(tokens)]
    best = float("inf")
    with torch.no_grad():
        forward(cfg, weights, ids[:8])
        for _ in range(3):
            start = time.perf_counter()
            forward(cfg, weights, ids)
            best = min(best, time.perf_counter() - start)
    json.dump({"prefillTokensPerSec": tokens / best, "threads": threads, "torch": torch.__version__}, sys.stdout)


def lora_bench(folder, seq, steps, threads, rank):
    """LoRA training speed: rank-r adapters on q_proj and v_proj (alpha 2r), Adam, batch 1 of
    `seq` tokens, next-token cross-entropy; one warm-up step, then `steps` timed, as JSON."""
    import time

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    weights = read_safetensors(f"{folder}/model.safetensors")
    lora = {}
    for i in range(cfg["num_hidden_layers"]):
        for proj in ("q_proj", "v_proj"):
            w = weights[f"model.layers.{i}.self_attn.{proj}.weight"]
            a = (torch.randn(rank, w.shape[1]) / math.sqrt(w.shape[1])).requires_grad_()
            b = torch.zeros(w.shape[0], rank, requires_grad=True)
            lora[f"model.layers.{i}.self_attn.{proj}"] = (a, b, 2.0)
    params = [t for a, b, _ in lora.values() for t in (a, b)]
    opt = torch.optim.Adam(params, lr=1e-3)
    ids = [(i * 7919) % cfg["vocab_size"] for i in range(seq + 1)]
    target = torch.tensor(ids[1:])

    def step():
        loss = torch.nn.functional.cross_entropy(forward(cfg, weights, ids[:-1], lora), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    json.dump({"loraTrainTokensPerSec": steps * seq / seconds, "threads": threads, "torch": torch.__version__}, sys.stdout)


def main():
    if sys.argv[1] == "--bench":
        bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if sys.argv[1] == "--lora-bench":
        lora_bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
        return
    folder, prompt, new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    weights = read_safetensors(f"{folder}/model.safetensors")
    ids = [int(t) for t in prompt.split(",")]
    with torch.no_grad():
        logits = forward(cfg, weights, ids)
        greedy = []
        seq = list(ids)
        for _ in range(new_tokens):
            nxt = int(forward(cfg, weights, seq)[-1].argmax())
            greedy.append(nxt)
            seq.append(nxt)
    json.dump({"logits": logits.tolist(), "greedy": greedy}, sys.stdout)


if __name__ == "__main__":
    main()
