#!/usr/bin/python3
"""Golden files for trainer/golden_test.go, written by PyTorch.

A plain HF-convention Llama written here from the modeling_llama conventions
(RMSNorm, rotate_half RoPE, grouped-query attention with repeat_kv, SwiGLU,
tied or untied head) is run on packed batches laid out as longctx lays them
out (documents masked from each other, RoPE positions restarting at every
document, no loss on a document's last token or on padding), and trained two
steps with torch.optim.AdamW: weight decay on matrices only (not on norms or
embeddings), linear warmup, global-norm clipping with
torch.nn.utils.clip_grad_norm_, gradient accumulation over two micro-batches.

Everything runs in float64 from float32 initial weights, so the goldens are
the exact function to float32 precision and the Go test's tolerance measures
longctx's float32 error alone.

For each case it writes trainer/testdata/golden/<case>/:
  config.json, model.safetensors  the initial weights (F32), read by LoadHF;
  golden.json                      sequences, batch layout, optimizer
                                   settings, per-step loss / lr / grad norm;
  golden.safetensors               logits of the first micro-batch, every
                                   parameter's gradient of the first step's
                                   mean loss, and every parameter after two
                                   optimizer steps (all F32).

Regenerate (Debian's PyTorch; the Go test never needs it):
  apt-get install -y python3-torch libopenblas0
  /usr/bin/python3 trainer/testdata/gen/torch_golden.py
then run `go test ./trainer -run Golden`.
"""

import json
import math
import os
import random
import struct
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden")

SEQ_LEN = 32
BATCH = 2  # sequences per micro-batch
ACCUM = 2  # micro-batches per optimizer step
STEPS = 2

# As a longctx train config (trainer.OptimizerConfig field names).
OPTIMIZER = {
    "lr": 0.01,
    "min_lr": 0.001,
    "schedule": "cosine",
    "warmup_steps": 3,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-8,
    "weight_decay": 0.1,
    "clip_norm": 0.5,
}

CASES = {
    # SmolLM2's layout: GQA 2:1, tied embeddings.
    "tied_gqa": dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, seed=1),
    # Untied head, one kv head shared by both query heads (multi-query).
    "untied_mqa": dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False, seed=2),
}


def param_specs(c):
    """HF names and shapes, in longctx's ParamSpecs order, with decay flags."""
    h, D = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"]
    H, Hkv, I = c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"]
    specs = [("model.embed_tokens.weight", (c["vocab_size"], h), False, False)]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        specs += [
            (p + "input_layernorm.weight", (h,), False, True),
            (p + "self_attn.q_proj.weight", (H * D, h), True, False),
            (p + "self_attn.k_proj.weight", (Hkv * D, h), True, False),
            (p + "self_attn.v_proj.weight", (Hkv * D, h), True, False),
            (p + "self_attn.o_proj.weight", (h, H * D), True, False),
            (p + "post_attention_layernorm.weight", (h,), False, True),
            (p + "mlp.gate_proj.weight", (I, h), True, False),
            (p + "mlp.up_proj.weight", (I, h), True, False),
            (p + "mlp.down_proj.weight", (h, I), True, False),
        ]
    specs.append(("model.norm.weight", (h,), False, True))
    if not c["tie_word_embeddings"]:
        specs.append(("lm_head.weight", (c["vocab_size"], h), True, False))
    return specs


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 tensor). F32, names sorted."""
    header, blobs, off = {}, [], 0
    for name, t in sorted(tensors, key=lambda x: x[0]):
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def make_sequences(rng, vocab, n):
    """Packed sequences: several documents (one of a single token), some padded."""
    seqs = []
    for i in range(n):
        pad = [0, 5, 0, 3, 0, 0, 9, 1][i % 8]
        real = SEQ_LEN - pad
        k = rng.randint(0, 3)
        starts = sorted(rng.sample(range(1, real), k))
        if i == 2:
            starts = [real - 1]  # a one-token document at the end
        if i == 5:
            starts = [7, 8]  # a one-token document in the middle
        toks = [rng.randrange(vocab) for _ in range(SEQ_LEN)]
        seqs.append({"tokens": toks, "starts": [0] + starts, "pad": pad})
    return seqs


def layout(seqs):
    """longctx's packed-batch layout (documents mask each other, positions
    restart per document; padding is one more document whose positions run on
    from the last start; a target counts unless it is padding or in the next
    document)."""
    ids, pos, doc, tgt, wts = [], [], [], [], []
    for s in seqs:
        toks, starts, pad = s["tokens"], s["starts"], s["pad"]
        real = SEQ_LEN - pad
        d, p = [], []
        cur, start = -1, 0
        for i in range(SEQ_LEN):
            if i >= real:
                d.append(len(starts))
            else:
                if cur + 1 < len(starts) and i == starts[cur + 1]:
                    cur, start = cur + 1, i
                d.append(cur)
            p.append(i - start)
        t = [toks[i + 1] if i + 1 < real and d[i + 1] == d[i] else 0 for i in range(SEQ_LEN)]
        w = [1.0 if i + 1 < real and d[i + 1] == d[i] else 0.0 for i in range(SEQ_LEN)]
        ids.append(toks), pos.append(p), doc.append(d), tgt.append(t), wts.append(w)
    return ids, pos, doc, tgt, wts


class Llama(torch.nn.Module):
    def __init__(self, c, weights):
        super().__init__()
        self.c = c
        self.names = [s[0] for s in param_specs(c)]
        self.params = torch.nn.ParameterList([torch.nn.Parameter(w.clone()) for w in weights])
        D = c["hidden_size"] // c["num_attention_heads"]
        self.inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).to(torch.float32) / D))

    def p(self, name):
        return self.params[self.names.index(name)]

    def rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.c["rms_norm_eps"]))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def forward(self, ids, pos, doc):
        c = self.c
        B, S = ids.shape
        H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        D = c["hidden_size"] // H
        x = torch.nn.functional.embedding(ids, self.p("model.embed_tokens.weight"))
        # HF LlamaRotaryEmbedding: float32 angles, then the model dtype.
        freqs = pos.to(torch.float32)[..., None] * self.inv_freq  # [B, S, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype)[:, None], emb.sin().to(x.dtype)[:, None]  # [B, 1, S, D]
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        allowed = causal[None] & (doc[:, :, None] == doc[:, None, :])  # [B, Sq, Sk]
        bias = torch.zeros(B, 1, S, S, dtype=x.dtype).masked_fill(~allowed[:, None], float("-inf"))
        for i in range(c["num_hidden_layers"]):
            L = lambda n: self.p("model.layers.%d.%s" % (i, n))
            h = self.rms(x, L("input_layernorm.weight"))
            q = (h @ L("self_attn.q_proj.weight").T).view(B, S, H, D).transpose(1, 2)
            k = (h @ L("self_attn.k_proj.weight").T).view(B, S, Hkv, D).transpose(1, 2)
            v = (h @ L("self_attn.v_proj.weight").T).view(B, S, Hkv, D).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = k.repeat_interleave(H // Hkv, dim=1)  # repeat_kv
            v = v.repeat_interleave(H // Hkv, dim=1)
            att = (q @ k.transpose(2, 3)) / math.sqrt(D) + bias
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, S, H * D)
            x = x + o @ L("self_attn.o_proj.weight").T
            h = self.rms(x, L("post_attention_layernorm.weight"))
            g = h @ L("mlp.gate_proj.weight").T
            x = x + (torch.nn.functional.silu(g) * (h @ L("mlp.up_proj.weight").T)) @ L("mlp.down_proj.weight").T
        x = self.rms(x, self.p("model.norm.weight"))
        head = self.p("model.embed_tokens.weight") if c["tie_word_embeddings"] else self.p("lm_head.weight")
        return x @ head.T


def lr_at(o, step, total):
    """The schedule longctx documents: linear warmup over warmup_steps
    (step+1)/warmup, then constant or decay to min_lr."""
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    if o["schedule"] == "constant" or total <= o["warmup_steps"]:
        return o["lr"]
    frac = min(1.0, max(0.0, (step - o["warmup_steps"]) / max(1, total - o["warmup_steps"] - 1)))
    if o["schedule"] == "cosine":
        return o["min_lr"] + (o["lr"] - o["min_lr"]) * 0.5 * (1 + math.cos(math.pi * frac))
    return o["lr"] + (o["min_lr"] - o["lr"]) * frac


def run_case(name, spec):
    c = dict(spec)
    seed = c.pop("seed")
    c.update(rope_theta=10000.0, rms_norm_eps=1e-5, initializer_range=0.1, max_position_embeddings=SEQ_LEN)
    torch.manual_seed(seed)
    specs = param_specs(c)
    init = []
    for n, shape, _, norm in specs:
        # Norms near (not at) 1 so a swapped norm weight shows.
        w = 1 + 0.1 * torch.randn(shape) if norm else c["initializer_range"] * torch.randn(shape)
        init.append(w.to(torch.float32))
    rng = random.Random(seed)
    seqs = make_sequences(rng, c["vocab_size"], BATCH * ACCUM * STEPS)
    ids, pos, doc, tgt, wts = layout(seqs)
    T = lambda a, dt: torch.tensor(a, dtype=dt)

    model = Llama(c, [w.to(torch.float64) for w in init]).to(torch.float64)
    decay = [p for p, s in zip(model.params, specs) if s[2]]
    no_decay = [p for p, s in zip(model.params, specs) if not s[2]]
    o = OPTIMIZER
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    per_step = BATCH * ACCUM
    steps, logits0, grads0 = [], None, None
    for step in range(STEPS):
        rows = slice(step * per_step, (step + 1) * per_step)
        logits = model(T(ids[rows], torch.int64), T(pos[rows], torch.int64), T(doc[rows], torch.int64))
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), T(tgt[rows], torch.int64).reshape(-1),
                                                reduction="none")
        w = T(wts[rows], torch.float64).reshape(-1)
        count = w.sum()
        loss = (nll * w).sum() / count
        opt.zero_grad()
        loss.backward()
        if step == 0:
            logits0 = logits[:BATCH].detach()
            grads0 = [p.grad.detach().clone() for p in model.params]
        gnorm = torch.nn.utils.clip_grad_norm_(model.params, o["clip_norm"])
        lr = lr_at(o, step, STEPS)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        steps.append({"loss": loss.item(), "lr": lr, "grad_norm": gnorm.item(), "count": int(count.item())})
        print("%s step %d: loss %.6f  grad norm %.4f (clip %.2f)  lr %.4g  %d targets" %
              (name, step + 1, loss.item(), gnorm.item(), o["clip_norm"], lr, int(count.item())))

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    hf = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "torch_dtype": "float32",
        "attention_bias": False, "mlp_bias": False, "rope_scaling": None, "bos_token_id": 0, "eos_token_id": 0,
    }
    hf.update({k: c[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads", "rope_theta", "rms_norm_eps",
                                 "tie_word_embeddings", "initializer_range", "max_position_embeddings")})
    write_json(os.path.join(d, "config.json"), hf)
    write_safetensors(os.path.join(d, "model.safetensors"), [(s[0], w) for s, w in zip(specs, init)])
    out = [("logits", logits0)]
    out += [("grad." + s[0], g) for s, g in zip(specs, grads0)]
    out += [("step2." + s[0], p) for s, p in zip(specs, model.params)]
    write_safetensors(os.path.join(d, "golden.safetensors"), out)
    write_json(os.path.join(d, "golden.json"), {
        "torch_version": torch.__version__,
        "seq_len": SEQ_LEN, "batch_size": BATCH, "grad_accum": ACCUM, "steps": STEPS,
        "optimizer": OPTIMIZER,
        "sequences": seqs,
        "layout": {"ids": ids, "pos": pos, "doc": doc, "targets": tgt, "weights": wts},
        "step_results": steps,
        "decay": [s[0] for s in specs if s[2]],
    })


def main():
    torch.set_num_threads(1)
    for name, spec in CASES.items():
        run_case(name, spec)
    print("goldens written under", os.path.normpath(OUT))


if __name__ == "__main__":
    sys.exit(main())
