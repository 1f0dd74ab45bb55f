# Independent float32 port of HF transformers' RoPE init functions (modeling_rope_utils.py),
# following torch's scalar semantics (python scalars become float32 operands), with a
# correctly rounded float32 pow. Writes hf_float32.json: the uint32 bits of every inv_freq,
# d = 64, six bases, factor 8 with L0 2048 and factor 6 with L0 3000 (a factor that is not a
# power of two, so the order of float32 operations shows); dynamic at L = 16384 / 20000.
# Regenerate: python3 hf_float32.py > hf_float32.json  (needs numpy)
import numpy as np, math, json, sys
from decimal import Decimal, getcontext
getcontext().prec = 60
def crpow(b, e):  # correctly rounded float32 pow, elementwise
    b = float(np.float32(b))
    return np.array([np.float32(float(Decimal(b) ** Decimal(float(x)))) for x in e], dtype=np.float32)
f32 = np.float32
def default(base, d):
    e = np.arange(0, d, 2).astype(f32) / f32(d)
    return f32(1.0) / crpow(base, e)
def linear(base, d, s): return default(base, d) / f32(s)
def dynamic(base, d, s, L0, L):
    L = L if L > L0 else L0
    b = base * ((s * L / L0) - (s - 1)) ** (d / (d - 2))
    return default(b, d)
def yarn(base, d, s, L0, bf=32, bs=1):
    att = 0.1 * math.log(s) + 1.0
    def corr(n): return (d * math.log(L0 / (n * 2 * math.pi))) / (2 * math.log(base))
    lo, hi = max(math.floor(corr(bf)), 0), min(math.ceil(corr(bs)), d - 1)
    if lo == hi: hi += 0.001
    pos = crpow(base, np.arange(0, d, 2).astype(f32) / f32(d))
    extra = f32(1.0) / pos
    inter = f32(1.0) / (f32(s) * pos)
    ramp = np.clip((np.arange(d // 2).astype(f32) - f32(lo)) / f32(hi - lo), f32(0), f32(1))
    ef = f32(1) - ramp
    return inter * (f32(1) - ef) + extra * ef, att
def llama3(base, d, s, L0, lo, hi):
    inv = default(base, d)
    lw, hw = L0 / lo, L0 / hi
    wl = f32(2 * math.pi) / inv
    il = np.where(wl > f32(lw), inv / f32(s), inv)
    sm = (f32(L0) / wl - f32(lo)) / f32(hi - lo)
    smoothed = (f32(1) - sm) * il / f32(s) + sm * il
    med = ~(wl < f32(hw)) & ~(wl > f32(lw))
    return np.where(med, smoothed, il)
out = {}
for s, L0, L in [(8, 2048, 16384), (6, 3000, 20000)]:
    for base in [10000, 100000, 130000, 273000, 273768.4, 1e6]:
        k = f"{float(base):.1f} s{s} L0 {L0}"
        out[f"default {k}"] = default(base, 64)
        out[f"linear {k}"] = linear(base, 64, s)
        out[f"yarn {k}"] = yarn(base, 64, s, L0)[0]
        out[f"llama3 {k}"] = llama3(base, 64, s, L0, 1, 4)
        out[f"dynamic {k} L {L}"] = dynamic(base, 64, s, L0, L)
json.dump({k: [int(x) for x in v.astype(f32).view(np.uint32)] for k, v in out.items()}, sys.stdout)
