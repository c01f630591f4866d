#!/usr/bin/python3
"""PyTorch peer for `npm run bench`: the same computations as sdmprune, on the same shapes and threads.

Run with any python that imports torch: bench/run.ts finds them (SDMPRUNE_PEER_PYTHON, python3 on PATH,
/usr/bin/python3) and runs each twice, with OMP_WAIT_POLICY=ACTIVE and =PASSIVE in the environment (read when
torch loads its OpenMP runtime). PASSIVE is only the default for a bare run: with Debian's OpenBLAS build,
spinning OpenMP threads fight OpenBLAS's own on 2 cores and cost 2.5-3.5x; pip's MKL build may prefer ACTIVE.

Workloads (random weights, untrained; weights N(0, 0.02^2), norms 1 + 0.02 N(0, 1), float32):
  teacher     no-grad forward of one window, then per position top-k logits + log-sum-exp (teacher cache)
  importance  sd-taylor: (1-a) CE + a KL(p_tau || q_s) with p_tau rebuilt from the top-k cache, backward with
              gradients for the MLP weights only, then per layer mean_k |Wg*Gg + Wu*Gu + (Wd*Gd)^T|
  ppl         no-grad forward of batches of --ppl-batch windows (default 4), log-softmax gathered at the next token
  memory      one importance window; peak RSS (VmHWM, reset after set-up) / weight bytes
  profile     self CPU ms per aten op and input shapes over one teacher and one importance window (needs both)
Prints one JSON object on stdout. --device cuda runs the same maths on a GPU (bench/gpu.sh's peer): weights
are drawn on the CPU with the same generator, then moved; every timed unit ends with a device synchronise.
"""
import argparse
import gc
import json
import math
import os
import re
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the driver prints a clear "peer skipped" line
    print(json.dumps({"error": f"torch not importable: {e}"}))
    sys.exit(3)


DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


def blas_name() -> str:
    """pip's wheel links MKL statically and its build config says so (numpy's own OpenBLAS is mapped into the
    process too, unused by torch); Debian's torch is built against the generic libblas.so.3, and which BLAS
    answers is the alternative installed, seen in the maps once a product has run."""
    m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    if m and m.group(1) != "generic":
        return m.group(1)
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    with open("/proc/self/maps") as f:
        libs = sorted({l.split()[-1] for l in f if "blas" in l.lower() and "/" in l and "scipy_openblas" not in l})
    return ", ".join(libs) or "unknown"


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rope_inv_freq(cfg) -> torch.Tensor:
    hd = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        factor, lo, hi, orig = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        lam = 2 * math.pi / inv
        lam_hi, lam_lo = orig / hi, orig / lo
        s = (orig / lam - lo) / (hi - lo)
        smooth = (1 - s) * inv / factor + s * inv
        inv = torch.where(lam < lam_hi, inv, torch.where(lam > lam_lo, inv / factor, smooth))
    return inv


class Llama:
    """HF LlamaForCausalLM maths (rotate-half RoPE, GQA, RMSNorm, SwiGLU), weights in HF [out, in] layout."""

    def __init__(self, cfg, seed=0, scale=0.02):
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
        nH, nKV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

        def w(*shape):
            return (torch.randn(*shape, generator=g) * scale).to(DEVICE)

        def norm():
            return (1 + scale * torch.randn(H, generator=g)).to(DEVICE)

        self.embed = w(V, H)
        self.layers = []
        for _ in range(cfg["num_hidden_layers"]):
            self.layers.append({
                "in_norm": norm(), "q": w(nH * hd, H), "k": w(nKV * hd, H), "v": w(nKV * hd, H), "o": w(H, nH * hd),
                "post_norm": norm(), "gate": w(I, H), "up": w(I, H), "down": w(H, I),
            })
        self.norm = norm()
        self.lm_head = None if cfg["tie_word_embeddings"] else w(V, H)
        self.inv_freq = rope_inv_freq(cfg).to(DEVICE)
        self.masks = {}

    def weight_bytes(self) -> int:
        ts = [self.embed, self.norm] + ([self.lm_head] if self.lm_head is not None else [])
        for lw in self.layers:
            ts += list(lw.values())
        return sum(t.numel() * t.element_size() for t in ts)

    def mlp_params(self):
        return [lw[k] for lw in self.layers for k in ("gate", "up", "down")]

    def rms(self, x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]) * wt

    def rope(self, T):
        key = ("rope", T)
        if key not in self.masks:
            with torch.inference_mode(False):  # normal tensors: the same tables serve autograd later
                self.masks[key] = self._rope(T)
        return self.masks[key]

    def _rope(self, T):
        t = torch.arange(T, dtype=torch.float64, device=DEVICE)
        emb = torch.outer(t, self.inv_freq)
        emb = torch.cat([emb, emb], -1)
        mask = torch.full((T, T), float("-inf"), device=DEVICE).triu(1)
        return (emb.cos().float(), emb.sin().float(), mask)

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def trunk(self, ids):
        c = self.cfg
        B, T = ids.shape
        nH, nKV, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        grp = nH // nKV
        cos, sin, mask = self.rope(T)
        h = F.embedding(ids, self.embed)  # [B, T, H]
        for lw in self.layers:
            x = self.rms(h, lw["in_norm"])
            q = F.linear(x, lw["q"]).view(B, T, nH, hd).transpose(1, 2)
            k = F.linear(x, lw["k"]).view(B, T, nKV, hd).transpose(1, 2)
            v = F.linear(x, lw["v"]).view(B, T, nKV, hd).transpose(1, 2)
            q = q * cos + self.rot(q) * sin
            k = k * cos + self.rot(k) * sin
            # GQA without materialising repeated K/V: the grp query heads of a kv head share its keys.
            q = q.reshape(B, nKV, grp * T, hd)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
            s = (s.view(B, nKV, grp, T, T) + mask).view(B, nKV, grp * T, T)
            ctx = torch.matmul(torch.softmax(s, -1), v).view(B, nH, T, hd)
            h = h + F.linear(ctx.transpose(1, 2).reshape(B, T, nH * hd), lw["o"])
            x = self.rms(h, lw["post_norm"])
            h = h + F.linear(F.silu(F.linear(x, lw["gate"])) * F.linear(x, lw["up"]), lw["down"])
        return h

    def head(self, h):
        return F.linear(self.rms(h, self.norm), self.embed if self.lm_head is None else self.lm_head)


def teacher_entry(model, window, topk):
    with torch.inference_mode():
        ids = torch.tensor([window], device=DEVICE)
        logits = model.head(model.trunk(ids))[0]  # [T, V]
        lse = torch.logsumexp(logits, -1)
        if topk == "full":
            return logits.clone(), None, lse
        top = torch.topk(logits, topk, -1)
        return top.values.clone(), top.indices.clone(), lse


def teacher_probs(entry, V, tau):
    vals, idx, _ = entry
    p = torch.softmax(vals / tau, -1)
    if idx is None:
        return p
    dense = torch.zeros(vals.shape[0], V, device=DEVICE)
    dense.scatter_(1, idx, p)
    return dense


def importance_window(model, window, entry, alpha, tau, acc):
    V = model.cfg["vocab_size"]
    T = len(window)
    params = model.mlp_params()
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    ids = torch.tensor([window], device=DEVICE)
    logits = model.head(model.trunk(ids))[0]
    logq = torch.log_softmax(logits, -1)
    ce = F.nll_loss(logq[:-1], ids[0, 1:])
    loss = ce
    if alpha > 0:
        p_t = teacher_probs(entry, V, tau)
        kd = F.kl_div(logq, p_t, reduction="sum") / T
        loss = (1 - alpha) * ce + alpha * kd
    loss.backward()
    with torch.no_grad():
        for l, lw in enumerate(model.layers):
            s = lw["gate"] * lw["gate"].grad + lw["up"] * lw["up"].grad + (lw["down"] * lw["down"].grad).t()
            acc[l] += s.abs().mean(1).double()
    for p in params:
        p.grad = None
        p.requires_grad_(False)
    return float(loss)


def ppl_batch(model, windows, chunk_floats=1 << 22):
    """Head in row chunks of ~4 M logits, as sdmprune does: one [4*128, 32000] block is 65 MB, above glibc's
    32 MiB mmap threshold, so unchunked every logits-sized temporary is a fresh mmap whose page faults made
    the peer 3-4x slower per token at batch 4 than at batch 2."""
    with torch.inference_mode():
        ids = torch.tensor(windows, device=DEVICE)
        B, T = ids.shape
        V = model.cfg["vocab_size"]
        h = model.trunk(ids).reshape(B * T, -1)
        tgt = torch.cat([ids[:, 1:], ids[:, :1]], 1).reshape(-1)  # last position of a row: dropped below
        keep = (torch.arange(B * T, device=DEVICE) % T) != T - 1
        rows = max(1, chunk_floats // V)
        rows -= rows % 32 if rows >= 32 else 0  # sdmprune's rounding (CausalLM logitChunkRows): 128 rows at V = 32000
        nll = 0.0
        for r0 in range(0, B * T, rows):
            z = model.head(h[r0:r0 + rows])
            lp = torch.log_softmax(z, -1).gather(-1, tgt[r0:r0 + rows, None])[:, 0]
            nll -= float(lp[keep[r0:r0 + rows]].sum())
        return nll


def matmul_gflops(M, K, N, reps=5):
    a, b = torch.randn(M, K, device=DEVICE), torch.randn(K, N, device=DEVICE)
    for _ in range(2):
        torch.mm(a, b)
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return 2 * M * N * K / ts[len(ts) // 2] / 1e9


def rate(secs, tokens_per_unit):
    """Best (fastest unit; used for ratios: interference only slows a unit down), median and mean tokens/s."""
    s = sorted(secs)
    return {"units": len(s), "tokensPerUnit": tokens_per_unit, "best": tokens_per_unit / s[0],
            "median": tokens_per_unit / s[len(s) // 2], "mean": tokens_per_unit * len(s) / sum(s)}


def windows_for(cfg, n, T, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (n, T), generator=g).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="HF-style config JSON (string)")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--windows", type=int, default=4, help="timed windows per workload (after one warm-up)")
    ap.add_argument("--tasks", default="matmul,teacher,importance,ppl")
    ap.add_argument("--ppl-batch", type=int, default=4, help="windows per ppl batch (sdmprune: perplexity's batchSize)")
    ap.add_argument("--alpha", type=float, default=0.4)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--topk", default="64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.config)
    topk = "full" if a.topk == "full" else int(a.topk)
    tasks = a.tasks.split(",")
    if "profile" in tasks and "importance" not in tasks:
        ap.error("--tasks profile needs importance too (it profiles one teacher and one importance window)")
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "seq": a.seq, "device": a.device}
    if DEVICE.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(DEVICE)
    out["blas"] = blas_name()
    if "matmul" in tasks:
        T, H, I, V = a.seq, cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
        shapes = [(T, H, H), (T, H, I), (T, I, H), (T, H, V), (1024, 1024, 1024)]
        out["matmul"] = {f"{m}x{k}x{n}": matmul_gflops(m, k, n) for m, k, n in shapes}
    t0 = time.perf_counter()
    model = Llama(cfg)
    out["build_s"] = time.perf_counter() - t0
    out["weightBytes"] = model.weight_bytes()
    T = a.seq
    n = a.windows
    wins = windows_for(cfg, n + 1, T, 1)
    if "memory" in tasks:
        entry = teacher_entry(model, wins[0], topk)
        acc = [torch.zeros(cfg["intermediate_size"], dtype=torch.float64, device=DEVICE) for _ in model.layers]
        gc.collect()
        base = vm_rss()
        reset_peak()
        t0 = time.perf_counter()
        importance_window(model, wins[0], entry, a.alpha, a.temperature, acc)
        out["memory"] = {"path": "torch autograd, grads of gate/up/down only", "seconds": time.perf_counter() - t0, "rssBefore": base, "peakRss": vm_hwm(),
                         "ratio": vm_hwm() / out["weightBytes"]}
        print(json.dumps(out))
        return
    entries = None
    if "teacher" in tasks or "importance" in tasks:
        teacher_entry(model, wins[0], topk)  # warm-up
        entries, secs = [], []
        sync()
        for w in wins[1:]:
            t0 = time.perf_counter()
            entries.append(teacher_entry(model, w, topk))
            sync()
            secs.append(time.perf_counter() - t0)
        out["teacher"] = rate(secs, T)
    if "importance" in tasks:
        acc = [torch.zeros(cfg["intermediate_size"], dtype=torch.float64, device=DEVICE) for _ in model.layers]
        importance_window(model, wins[1], entries[0], a.alpha, a.temperature, acc)  # warm-up
        acc = [torch.zeros_like(x) for x in acc]
        secs = []
        sync()
        for w, e in zip(wins[1:], entries):
            t0 = time.perf_counter()
            loss = importance_window(model, w, e, a.alpha, a.temperature, acc)
            sync()
            secs.append(time.perf_counter() - t0)
        out["importance"] = dict(rate(secs, T), loss=loss)
    if "profile" in tasks and entries:
        # Self CPU time per aten op over one teacher window and one importance window (torch.profiler), to set
        # beside bench/profile-detail.ts's kernel table of the same passes.
        from torch.profiler import ProfilerActivity, profile as tprofile
        out["profile"] = {}
        acc = [torch.zeros(cfg["intermediate_size"], dtype=torch.float64, device=DEVICE) for _ in model.layers]
        for name, fn in (("teacher", lambda: teacher_entry(model, wins[1], topk)),
                         ("importance", lambda: importance_window(model, wins[1], entries[0], a.alpha, a.temperature, acc))):
            t0 = time.perf_counter()
            with tprofile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                fn()
            wall = time.perf_counter() - t0
            rows = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)[:25]
            out["profile"][name] = {"wall_ms": wall * 1e3, "top": [[e.key, str(e.input_shapes), e.count, e.self_cpu_time_total / 1e3] for e in rows]}
    if "ppl" in tasks:
        B = a.ppl_batch
        pw = windows_for(cfg, B * (n + 1), T, 2)
        ppl_batch(model, pw[:B])  # warm-up
        secs, nll = [], 0.0
        sync()
        for b in range(B, len(pw), B):
            t0 = time.perf_counter()
            nll += ppl_batch(model, pw[b:b + B])
            sync()
            secs.append(time.perf_counter() - t0)
        out["ppl"] = dict(rate(secs, B * T), nll=nll / (n * B * (T - 1)), batch=B)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
