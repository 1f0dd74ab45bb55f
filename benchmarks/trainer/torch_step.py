#!/usr/bin/python3
"""PyTorch side of benchmarks/trainer: one model shape's training steps, or
sgemm peak. Prints one JSON object on stdout; progress goes to stderr.

A plain HF-convention Llama (RMSNorm, rotate_half RoPE, grouped-query
attention with repeat_kv, SwiGLU, tied head), float32, AdamW with global-norm
clipping, on random tokens (one document per sequence). The benchmark
(go run ./benchmarks/trainer) starts it once per shape so peak RSS is the
shape's own; run by hand:

  OMP_WAIT_POLICY=passive /usr/bin/python3 benchmarks/trainer/torch_step.py \
      --model '{"vocab_size":8192,"hidden_size":128,...}' --batch 8 --seq 256 --steps 3
  /usr/bin/python3 benchmarks/trainer/torch_step.py --sgemm 2048x576x1536,4096x4096x4096

--attn-chunk N computes attention N queries at a time, each chunk
checkpointed (its scores are recomputed in the backward pass), and the loss
the same way, so 16k tokens fit; --recompute checkpoints every layer.
Needs Debian's python3-torch and libopenblas0 (without OpenBLAS, torch runs
on the reference BLAS at a few GFLOP/s).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def blas_libraries():
    """The BLAS shared objects this process mapped (OpenBLAS or not)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "blas" in os.path.basename(p).lower():
                libs.add(os.path.realpath(p))
    return sorted(libs)


def sgemm(shapes, repeats):
    out = []
    for s in shapes:
        m, k, n = (int(x) for x in s.split("x"))
        a, b = torch.randn(m, k), torch.randn(k, n)
        best = math.inf
        for _ in range(repeats + 1):  # the first warms up
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
        out.append({"shape": s, "gflops": 2 * m * k * n / best / 1e9, "best_s": best})
        print("sgemm %s: %.1f GFLOP/s" % (s, out[-1]["gflops"]), file=sys.stderr)
    return out


class Llama(torch.nn.Module):
    def __init__(self, c, attn_chunk, recompute):
        super().__init__()
        self.c, self.attn_chunk, self.recompute = c, attn_chunk, recompute
        h, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
        H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        D = h // H
        std = c.get("initializer_range", 0.02)
        P = lambda *shape: torch.nn.Parameter(torch.randn(*shape) * std)
        self.embed = P(V, h)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            L = torch.nn.Module()
            L.n1, L.n2 = torch.nn.Parameter(torch.ones(h)), torch.nn.Parameter(torch.ones(h))
            L.q, L.k, L.v, L.o = P(H * D, h), P(Hkv * D, h), P(Hkv * D, h), P(h, H * D)
            L.gate, L.up, L.down = P(I, h), P(I, h), P(h, I)
            self.layers.append(L)
        self.norm = torch.nn.Parameter(torch.ones(h))
        if not c.get("tie_word_embeddings", True):
            self.head = P(V, h)
        self.inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2).float() / D))

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"]))

    @staticmethod
    def rope(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin

    def attention(self, q, k, v):
        """q [B, H, S, D], k, v [B, H, S, D] (kv repeated): causal."""
        S, D = q.shape[2], q.shape[3]
        scale = 1 / math.sqrt(D)

        def chunk(q, k, v, start):
            Sq, Sk = q.shape[2], k.shape[2]
            att = (q @ k.transpose(2, 3)) * scale
            mask = torch.ones(Sq, Sk, dtype=torch.bool).tril(start)  # query start+i sees keys <= start+i
            att = att.masked_fill(~mask, float("-inf"))
            return att.softmax(-1) @ v

        if not self.attn_chunk or self.attn_chunk >= S:
            return chunk(q, k, v, 0)
        outs = []
        for s in range(0, S, self.attn_chunk):
            e = min(S, s + self.attn_chunk)
            outs.append(checkpoint(chunk, q[:, :, s:e], k[:, :, :e], v[:, :, :e], s, use_reentrant=False))
        return torch.cat(outs, 2)

    def block(self, L, x, cos, sin):
        c = self.c
        B, S, _ = x.shape
        H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        D = c["hidden_size"] // H
        h = self.rms(x, L.n1)
        q = (h @ L.q.T).view(B, S, H, D).transpose(1, 2)
        k = (h @ L.k.T).view(B, S, Hkv, D).transpose(1, 2)
        v = (h @ L.v.T).view(B, S, Hkv, D).transpose(1, 2)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
        o = self.attention(q, k, v).transpose(1, 2).reshape(B, S, H * D)
        x = x + o @ L.o.T
        h = self.rms(x, L.n2)
        return x + (F.silu(h @ L.gate.T) * (h @ L.up.T)) @ L.down.T

    def loss(self, ids, targets):
        B, S = ids.shape
        x = F.embedding(ids, self.embed)
        freqs = torch.arange(S).float()[:, None] * self.inv_freq
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        for L in self.layers:
            if self.recompute:
                x = checkpoint(self.block, L, x, cos, sin, use_reentrant=False)
            else:
                x = self.block(L, x, cos, sin)
        x = self.rms(x, self.norm)
        head = getattr(self, "head", self.embed)

        def chunk_loss(xc, tc):
            return F.cross_entropy((xc @ head.T).reshape(-1, head.shape[0]), tc.reshape(-1), reduction="sum")

        if not self.attn_chunk or self.attn_chunk >= S:
            return chunk_loss(x, targets) / targets.numel()
        total = 0
        for s in range(0, S, self.attn_chunk):
            e = min(S, s + self.attn_chunk)
            total = total + checkpoint(chunk_loss, x[:, s:e], targets[:, s:e], use_reentrant=False)
        return total / targets.numel()


def train(args):
    c = json.loads(args.model)
    torch.manual_seed(0)
    model = Llama(c, args.attn_chunk, args.recompute)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() == 2 and p is not model.embed]
    no_decay = [p for p in params if not (p.dim() == 2 and p is not model.embed)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(1)
    times, losses = [], []
    for step in range(args.steps + 1):  # the first step warms up and is not timed
        ids = torch.randint(0, c["vocab_size"], (args.batch, args.seq + 1), generator=g)
        t = time.perf_counter()
        loss = model.loss(ids[:, :-1], ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t
        losses.append(loss.item())
        if step > 0:
            times.append(dt)
        print("torch step %d/%d: loss %.4f, %.2f s%s" % (step + 1, args.steps + 1, losses[-1], dt,
                                                        " (warm-up)" if step == 0 else ""), file=sys.stderr)
    mean = sum(times) / len(times)
    return {
        "tokens_per_s": args.batch * args.seq / mean,
        "step_s": times,
        "losses": losses,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model config as JSON (HF LlamaConfig field names)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn-chunk", type=int, default=0, help="queries per attention/loss chunk (0 = whole sequence)")
    ap.add_argument("--recompute", action="store_true", help="checkpoint every layer")
    ap.add_argument("--sgemm", help="comma-separated MxKxN shapes: measure sgemm instead of training")
    ap.add_argument("--repeats", type=int, default=5, help="sgemm: best of this many")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.sgemm:
        res = {"sgemm": sgemm(args.sgemm.split(","), args.repeats)}
    elif args.model:
        res = train(args)
    else:
        ap.error("--model or --sgemm is required")
    res.update(torch_version=torch.__version__, threads=torch.get_num_threads(), blas=blas_libraries(),
               omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
