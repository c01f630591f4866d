#!/usr/bin/env python3
"""Reference fixtures for the model families sdmprune supports, made by the real transformers.

How to run (from the repository root; a Python with torch (CPU) and transformers 5.x, nothing else):

    nice -n 10 python scripts/families/make_fixtures.py [--out test/fixtures/families] [--steps 300] [FAMILY ...]

FAMILY is any of llama, mistral, qwen2, qwen3, gemma3, phi3 (default: all). For each family it

  1. trains a tiny tokenizer of the family's kind on TinyStories (byte-level BPE with the family's pre-tokenizer
     regex for llama/qwen2/qwen3; SentencePiece-style BPE with byte fallback for mistral/gemma3/phi3), vocab 512,
     with the family's BOS/EOS conventions in tokenizer_config.json;
  2. builds a tiny model of the real architecture (hidden 64, GQA 4 query / 2 key-value heads of 16, the family's
     own features switched on: llama3 RoPE scaling, q/k/v biases, q/k norms, sliding/global layers, softcapping,
     fused projections) and trains it a few hundred steps on TinyStories so that its logits mean something;
  3. saves it with save_pretrained in float32 safetensors, and writes reference.json + reference.safetensors
     (logits of a few held-out sequences, per-token log-probs, a perplexity with its protocol, a greedy
     continuation, a tokenizer check), all computed by transformers from the files just written.

It writes test/fixtures/families/<family>/ (see test/fixtures/families/README.md for the exact format). The test
suite never needs Python: the fixtures are committed, this script only regenerates them. Training text is
TinyStories (../shared/data/tinystories/tinystories_valid_first1000.txt, or --data); the last stories of that file
are held out and used only for the references. Runs are deterministic for a given torch build (seeded, one thread).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tinystories" / "tinystories_valid_first1000.txt"

VOCAB = 512
TRAIN_SEQ = 64
REF_SEQ = 48  # > gemma3's sliding window (16), so the window matters in the reference logits
REF_BATCH = 3
PPL_SEQ = 64
PPL_WINDOWS = 12  # at least; whole stories are joined, so a few more
GREEDY_NEW = 20
HELD_OUT = 40  # last stories of the file: never trained on

LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Mixed text the tokenizer check encodes (byte fallback, whitespace runs, digits, contractions, a special token).
TOKENIZER_CHECK = (
    "Once upon a time, Lily's dog didn't run.  It ran   fast!\n\n\tThe end 12345 3.14\n"
    "Größe 東京 我们 😀 x=[1, 2]"
)


# ---------------------------------------------------------------------------------------------------------------
# Families: the tiny config (exactly what is passed to the config class) and the tokenizer conventions.

def family_specs() -> dict[str, dict]:
    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attention_dropout=0.0,
    )
    return {
        # Llama 3.2 style: tied embeddings, llama3 RoPE scaling written as transformers 5 writes it. The scaling's
        # original_max_position_embeddings is shrunk to 32 so that, at these sequence lengths, all three bands of
        # the llama3 rule (kept, smoothed, divided by factor) change the logits.
        "llama": dict(
            config_class="LlamaConfig",
            config=dict(
                common,
                head_dim=16,
                hidden_act="silu",
                rms_norm_eps=1e-5,
                tie_word_embeddings=True,
                attention_bias=False,
                mlp_bias=False,
                rope_parameters=dict(
                    rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=32,
                ),
            ),
            tokenizer=dict(kind="bytelevel", split=LLAMA3_SPLIT, nfc=False, bos="<|begin_of_text|>", eos="<|end_of_text|>",
                           extra=["<|eot_id|>"], template_bos=True, add_bos_token=None,
                           tokenizer_class="PreTrainedTokenizerFast"),
        ),
        # Mistral 7B v0.2+ style: no sliding window, untied, theta 1e6, Llama-2-like SentencePiece BPE tokenizer.
        "mistral": dict(
            config_class="MistralConfig",
            config=dict(
                common,
                head_dim=16,
                hidden_act="silu",
                rms_norm_eps=1e-5,
                tie_word_embeddings=False,
                sliding_window=None,
                rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
            ),
            tokenizer=dict(kind="sentencepiece", prepend=True, specials=["<unk>", "<s>", "</s>"], bos="<s>", eos="</s>",
                           unk="<unk>", template_bos=True, add_bos_token=True, tokenizer_class="LlamaTokenizer"),
        ),
        # Qwen2.5 small style: q/k/v biases (o_proj without), tied, theta 1e6, no BOS.
        "qwen2": dict(
            config_class="Qwen2Config",
            config=dict(
                common,
                hidden_act="silu",
                rms_norm_eps=1e-6,
                tie_word_embeddings=True,
                use_sliding_window=False,
                rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
            ),
            tokenizer=dict(kind="bytelevel", split=QWEN_SPLIT, nfc=True, bos=None, eos="<|endoftext|>",
                           extra=["<|im_start|>", "<|im_end|>"], template_bos=False, add_bos_token=False,
                           tokenizer_class="Qwen2Tokenizer", config_bos="<|endoftext|>"),
        ),
        # Qwen3 small style: q_norm/k_norm, explicit head_dim, no biases, tied.
        "qwen3": dict(
            config_class="Qwen3Config",
            config=dict(
                common,
                head_dim=16,
                hidden_act="silu",
                rms_norm_eps=1e-6,
                tie_word_embeddings=True,
                attention_bias=False,
                use_sliding_window=False,
                rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
            ),
            tokenizer=dict(kind="bytelevel", split=QWEN_SPLIT, nfc=True, bos=None, eos="<|endoftext|>",
                           extra=["<|im_start|>", "<|im_end|>"], template_bos=False, add_bos_token=False,
                           tokenizer_class="Qwen2Tokenizer", config_bos="<|endoftext|>"),
        ),
        # Gemma 3 text (Gemma3ForCausalLM): 4 layers from the sliding_window_pattern rule with pattern 3
        # (sliding, sliding, full, sliding), a window shorter than the reference sequences, separate local/global
        # RoPE bases, query_pre_attn_scalar different from head_dim, final logit softcapping on.
        "gemma3": dict(
            config_class="Gemma3TextConfig",
            config=dict(
                common,
                num_hidden_layers=4,
                head_dim=16,
                hidden_activation="gelu_pytorch_tanh",
                rms_norm_eps=1e-6,
                tie_word_embeddings=True,
                query_pre_attn_scalar=24,
                sliding_window=16,
                layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
                final_logit_softcapping=10.0,  # lower than real Gemma 2 (30) so it bites at these logit sizes
                attn_logit_softcapping=None,
                rope_parameters=dict(
                    full_attention=dict(rope_type="default", rope_theta=1000000.0),
                    sliding_attention=dict(rope_type="default", rope_theta=10000.0),
                ),
            ),
            tokenizer=dict(kind="sentencepiece", prepend=False, specials=["<pad>", "<eos>", "<bos>", "<unk>"], bos="<bos>",
                           eos="<eos>", unk="<unk>", pad="<pad>", template_bos=True, add_bos_token=True,
                           tokenizer_class="GemmaTokenizer"),
        ),
        # Phi-3 style: fused qkv_proj and gate_up_proj, untied, no BOS added (Phi-3's tokenizer_config).
        "phi3": dict(
            config_class="Phi3Config",
            config=dict(
                common,
                hidden_act="silu",
                rms_norm_eps=1e-5,
                tie_word_embeddings=False,
                sliding_window=None,
                original_max_position_embeddings=256,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0),
            ),
            tokenizer=dict(kind="sentencepiece", prepend=True, specials=["<unk>", "<s>", "</s>"], bos="<s>", eos="<|endoftext|>",
                           unk="<unk>", extra=["<|endoftext|>"], template_bos=False, add_bos_token=False,
                           tokenizer_class="LlamaTokenizer"),
        ),
    }


# ---------------------------------------------------------------------------------------------------------------
# Data

def read_stories(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    stories = [s.strip() for s in text.split("<|endoftext|>")]
    return [s for s in stories if len(s) > 0]


# ---------------------------------------------------------------------------------------------------------------
# Tokenizers

def train_bytelevel(spec: dict, texts: list[str]) -> Tokenizer:
    specials = [t for t in [spec["bos"], spec["eos"], *spec.get("extra", [])] if t]
    specials = list(dict.fromkeys(specials))
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    if spec["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec["split"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - len(specials), special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Specials after the learned vocabulary, as Llama 3 and Qwen number them.
    tok.add_special_tokens(specials)
    if spec["template_bos"]:
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(single=f"{spec['bos']} $A", pair=f"{spec['bos']} $A {spec['bos']} $B",
                                          special_tokens=[(spec["bos"], tok.token_to_id(spec["bos"]))]),
        ])
    else:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tok


def train_sentencepiece_bpe(spec: dict, texts: list[str]) -> Tokenizer:
    """SentencePiece-style BPE as Llama 2 / Mistral / Gemma tokenizer.json files have it: pieces with U+2581 for
    spaces, byte tokens <0x00>..<0xFF> for byte fallback right after the control tokens."""
    specials = spec["specials"]
    extra = [t for t in spec.get("extra", []) if t not in specials]
    n_learned = VOCAB - len(specials) - 256 - len(extra)
    trainer_tok = Tokenizer(models.BPE(unk_token=spec["unk"]))
    trainer_tok.normalizer = normalizers.Replace(" ", "\u2581")
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always" if spec["prepend"] else "never")
    trainer = trainers.BpeTrainer(vocab_size=n_learned, special_tokens=[], limit_alphabet=90, show_progress=False)
    trainer_tok.train_from_iterator(texts, trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab: dict[str, int] = {}
    for t in specials:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    for t in extra:
        vocab[t] = len(vocab)
    merges = [m if isinstance(m, list) else m.split(" ") for m in learned["merges"]]
    added = [
        dict(id=vocab[t], content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
        for t in [*specials, *extra]
    ]
    if spec["prepend"]:  # Llama 2 / Mistral / Phi-3 (legacy SentencePiece with the dummy prefix)
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        pre_tokenizer = None
        decoder = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    else:  # Gemma 3
        normalizer = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
        pre_tokenizer = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
        decoder = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    bos = spec["bos"]
    post = None
    if spec["template_bos"]:
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}}}
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post, "decoder": decoder,
        "model": {"type": "BPE", "dropout": None, "unk_token": spec["unk"], "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    return Tokenizer.from_str(json.dumps(tj))


def tokenizer_config(spec: dict, tok: Tokenizer) -> dict:
    cfg: dict = {"tokenizer_class": spec["tokenizer_class"], "clean_up_tokenization_spaces": False,
                 "bos_token": spec["bos"], "eos_token": spec["eos"], "model_max_length": 4096}
    if spec.get("unk"):
        cfg["unk_token"] = spec["unk"]
    if spec.get("pad"):
        cfg["pad_token"] = spec["pad"]
    if spec["add_bos_token"] is not None:
        cfg["add_bos_token"] = spec["add_bos_token"]
        cfg["add_eos_token"] = False
    if spec["kind"] == "sentencepiece" and spec["prepend"]:
        cfg["legacy"] = True
        cfg["add_prefix_space"] = None
    if spec["kind"] == "bytelevel" and spec["tokenizer_class"] == "Qwen2Tokenizer":
        cfg["add_prefix_space"] = False
        cfg["errors"] = "replace"
        cfg["split_special_tokens"] = False
    cfg["added_tokens_decoder"] = {
        str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                  "single_word": False, "special": True}
        for t in sorted({a for a in [spec["bos"], spec["eos"], spec.get("unk"), spec.get("pad"), *spec.get("specials", []),
                                     *spec.get("extra", [])] if a}, key=lambda t: tok.token_to_id(t))
    }
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# Model

def build_config(spec: dict, tok: Tokenizer):
    cls = getattr(transformers, spec["config_class"])
    kw = copy.deepcopy(spec["config"])
    t = spec["tokenizer"]
    bos_name = t["bos"] if t["bos"] else t.get("config_bos")
    kw["bos_token_id"] = tok.token_to_id(bos_name) if bos_name else None
    kw["eos_token_id"] = tok.token_to_id(t["eos"])
    kw["pad_token_id"] = tok.token_to_id(t["pad"]) if t.get("pad") else None
    return cls(**kw), kw


def encode_stream(tok: Tokenizer, stories: list[str], bos_id: int | None, eos_id: int) -> list[int]:
    ids: list[int] = []
    for s in stories:
        if bos_id is not None:
            ids.append(bos_id)
        ids.extend(tok.encode(s, add_special_tokens=False).ids)
        ids.append(eos_id)
    return ids


def train(model, stream: list[int], steps: int, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(stream, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    batch = 16
    for step in range(steps):
        starts = torch.randint(0, len(data) - TRAIN_SEQ - 1, (batch,), generator=g)
        x = torch.stack([data[s:s + TRAIN_SEQ] for s in starts])
        out = model(input_ids=x, labels=x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------------------------
# References (computed from the saved directory, reloaded)

def log_softmax64(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.double(), dim=-1)


@torch.no_grad()
def references(out: Path, spec: dict, held_out: list[str]) -> tuple[dict, dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    model.eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    cfg = model.config

    # The tokenizer check: AutoTokenizer must agree with the raw tokenizer.json (+ BOS as configured).
    with_special = hf_tok(TOKENIZER_CHECK)["input_ids"]
    without = hf_tok(TOKENIZER_CHECK, add_special_tokens=False)["input_ids"]
    raw_ids = raw.encode(TOKENIZER_CHECK, add_special_tokens=False).ids
    if without != raw_ids:
        raise SystemExit(f"{out.name}: AutoTokenizer ({type(hf_tok).__name__}) disagrees with tokenizer.json")
    adds_bos = len(with_special) == len(without) + 1
    if with_special[len(with_special) - len(without):] != without or len(with_special) - len(without) not in (0, 1):
        raise SystemExit(f"{out.name}: unexpected special tokens {with_special[:3]}")
    if adds_bos != bool(spec["tokenizer"]["template_bos"]):
        raise SystemExit(f"{out.name}: AutoTokenizer adds BOS={adds_bos}, the family convention says {spec['tokenizer']['template_bos']}")

    # Held-out sequences of REF_SEQ tokens, encoded as the tokenizer does by default (BOS where it adds one).
    seqs = []
    for s in held_out:
        ids = hf_tok(s)["input_ids"]
        if len(ids) >= REF_SEQ:
            seqs.append(ids[:REF_SEQ])
        if len(seqs) == REF_BATCH:
            break
    x = torch.tensor(seqs, dtype=torch.long)
    logits = model(input_ids=x).logits.float()  # [B, T, V]
    lp = log_softmax64(logits)
    token_lp = lp[:, :-1, :].gather(-1, x[:, 1:, None])[..., 0]  # [B, T-1]
    # Each row alone equals the batch (no padding, no cross-talk): a cheap consistency check of the reference.
    single = model(input_ids=x[:1]).logits.float()
    batch_vs_single = float((single[0] - logits[0]).abs().max())

    # Perplexity, sdmprune's pplFromText protocol.
    start_id = cfg.bos_token_id
    # Held-out stories after those used above, as many as give PPL_WINDOWS windows (stories joined by "\n").
    parts: list[str] = []
    for s in held_out[REF_BATCH + 2:]:
        parts.append(s)
        text = "\n".join(parts)
        content = hf_tok(text, add_special_tokens=False)["input_ids"]
        if len(content) >= PPL_WINDOWS * PPL_SEQ:
            break
    ids = ([start_id] if start_id is not None else []) + content
    n_win = len(ids) // PPL_SEQ
    if n_win < PPL_WINDOWS:
        raise SystemExit(f"{out.name}: held-out text gives only {n_win} windows")
    windows = torch.tensor([ids[k * PPL_SEQ:(k + 1) * PPL_SEQ] for k in range(n_win)], dtype=torch.long)
    wl = log_softmax64(model(input_ids=windows).logits.float())
    wlp = wl[:, :-1, :].gather(-1, windows[:, 1:, None])[..., 0]
    nll = float(-wlp.mean())
    # The same via transformers' own loss, as a check on the reduction.
    hf_loss = float(model(input_ids=windows, labels=windows).loss)

    # Greedy continuation.
    prompt_text = held_out[REF_BATCH + 1].split(".")[0] + "."
    prompt = hf_tok(prompt_text)["input_ids"]
    gen = model.generate(torch.tensor([prompt]), max_new_tokens=GREEDY_NEW, do_sample=False, num_beams=1,
                         min_new_tokens=GREEDY_NEW, eos_token_id=None, pad_token_id=cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else 0)
    new_ids = gen[0, len(prompt):].tolist()
    # Greedy by hand (full forward each step): generate() must agree with the plain argmax rule.
    cur = list(prompt)
    for _ in range(GREEDY_NEW):
        cur.append(int(model(input_ids=torch.tensor([cur])).logits[0, -1].argmax()))
    if cur[len(prompt):] != new_ids:
        raise SystemExit(f"{out.name}: generate() and the argmax loop disagree: {new_ids} vs {cur[len(prompt):]}")

    ref = {
        "family": out.name,
        "model_type": cfg.model_type,
        "architectures": cfg.architectures,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "tokenizers": __import__("tokenizers").__version__, "python": sys.version.split()[0]},
        "dtype": "float32",
        "tokenizer": {
            "class": type(hf_tok).__name__,
            "adds_bos": adds_bos,
            "bos_token_id": hf_tok.bos_token_id,
            "eos_token_id": hf_tok.eos_token_id,
            "check_text": TOKENIZER_CHECK,
            "check_ids": with_special,
            "check_ids_no_special": without,
            "check_decoded": hf_tok.decode(without),
        },
        "logits": {
            "input_ids": seqs,
            "shape": list(logits.shape),
            "file": "reference.safetensors",
            "tensor": "logits",
            "batch_vs_single_max_abs": batch_vs_single,
            "max_abs": float(logits.abs().max()),
        },
        "token_logprobs": [[float(v) for v in row] for row in token_lp],
        "perplexity": {
            "protocol": (
                f"ids = [config.bos_token_id] + tokenizer(text, add_special_tokens=False).input_ids (no start token "
                f"when bos_token_id is null); non-overlapping windows of {PPL_SEQ} ids from the start, remainder dropped; "
                f"each window is one independent sequence (only the first starts with the start token); every window "
                f"contributes its {PPL_SEQ - 1} next-token predictions; ppl = exp(mean NLL over all of them) "
                f"(sdmprune's pplFromText)"
            ),
            "text": text,
            "start_token_id": start_id,
            "seq_len": PPL_SEQ,
            "ids": ids,
            "windows": n_win,
            "tokens": n_win * (PPL_SEQ - 1),
            "dropped_tokens": len(ids) - n_win * PPL_SEQ,
            "nll": nll,
            "ppl": math.exp(nll),
            "hf_loss": hf_loss,
        },
        "greedy": {"prompt_text": prompt_text, "prompt_ids": prompt, "new_ids": new_ids,
                   "new_text": hf_tok.decode(new_ids), "rule": "argmax of the last position's logits, "
                   f"{GREEDY_NEW} tokens, EOS does not stop"},
    }
    tensors = {"logits": logits.contiguous(), "token_logprobs": token_lp.float().contiguous()}
    return ref, tensors


# Config fields whose neglect a loader could get away with on a careless test: the max logit change when each is
# ignored, so that a test tolerance can be judged against it.
PERTURBATIONS = {
    "llama": {
        "rope_parameters.rope_type=default (llama3 scaling ignored)":
            lambda c: c["rope_parameters"].update(rope_type="default") or [c["rope_parameters"].pop(k) for k in
                ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")],
        "rope_theta=10000, no scaling (rope_parameters not read at all)":
            lambda c: c.update(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    },
    "gemma3": {
        "sliding_window ignored (every layer global)": lambda c: c.update(layer_types=["full_attention"] * c["num_hidden_layers"]),
        "final_logit_softcapping ignored": lambda c: c.update(final_logit_softcapping=None),
        "query_pre_attn_scalar=head_dim": lambda c: c.update(query_pre_attn_scalar=c["head_dim"]),
        "local RoPE base = global base": lambda c: c["rope_parameters"]["sliding_attention"].update(rope_theta=1000000.0),
    },
    "mistral": {"rope_theta=10000": lambda c: c["rope_parameters"].update(rope_theta=10000.0)},
    "qwen2": {"rope_theta=10000": lambda c: c["rope_parameters"].update(rope_theta=10000.0)},
    "qwen3": {"rope_theta=10000": lambda c: c["rope_parameters"].update(rope_theta=10000.0)},
    "phi3": {"rope_theta=500000": lambda c: c["rope_parameters"].update(rope_theta=500000.0)},
}


@torch.no_grad()
def sensitivity(out: Path, spec: dict, x: torch.Tensor, logits: torch.Tensor) -> dict:
    res = {}
    base = json.loads((out / "config.json").read_text())
    for label, edit in PERTURBATIONS.get(out.name, {}).items():
        c = copy.deepcopy(base)
        edit(c)
        with tempfile.TemporaryDirectory() as d:
            for f in ("model.safetensors",):
                os.symlink(out / f, Path(d) / f)
            (Path(d) / "config.json").write_text(json.dumps(c))
            m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            res[label] = float((m(input_ids=x).logits.float() - logits).abs().max())
    return {"what": "max |logits - reference| over the reference inputs when transformers runs the same weights with "
                    "this config change", "max_abs_logit_change": res}


def transformers4_config(config_json: dict) -> dict:
    """The same model's config.json as transformers 4.x wrote it (and as most Hub checkpoints still are): RoPE as
    top-level rope_theta / rope_scaling; Gemma 3 with rope_local_base_freq and sliding_window_pattern instead of
    per-layer-type rope_parameters and layer_types."""
    c = dict(config_json)
    rp = c.pop("rope_parameters")
    if c["model_type"] == "gemma3_text":
        full, local = rp["full_attention"], rp["sliding_attention"]
        c["rope_theta"] = full["rope_theta"]
        c["rope_local_base_freq"] = local["rope_theta"]
        scaling = {k: v for k, v in full.items() if k != "rope_theta"}
        # The layer kinds must follow from the rule: layer i is global iff (i + 1) % pattern == 0.
        kinds = c.pop("layer_types")
        c.pop("_sliding_window_pattern", None)
        pattern = next(p for p in range(1, len(kinds) + 2)
                       if all((k == "full_attention") == ((i + 1) % p == 0) for i, k in enumerate(kinds)))
        c["sliding_window_pattern"] = pattern
    else:
        c["rope_theta"] = rp["rope_theta"]
        scaling = {k: v for k, v in rp.items() if k not in ("rope_theta", "partial_rotary_factor")}
        if "partial_rotary_factor" in rp:
            c["partial_rotary_factor"] = rp["partial_rotary_factor"]
    c["rope_scaling"] = scaling if scaling.get("rope_type", "default") != "default" else None
    c.pop("dtype", None)
    c["torch_dtype"] = "float32"
    c["transformers_version"] = "4.57.6"
    return c


@torch.no_grad()
def write_t4(out: Path, ref: dict, logits: torch.Tensor) -> dict:
    """Write config.t4.json and prove transformers loads it to the very same model (bit-identical logits)."""
    t4 = transformers4_config(json.loads((out / "config.json").read_text()))
    (out / "config.t4.json").write_text(json.dumps(t4, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as d:
        os.symlink(out / "model.safetensors", Path(d) / "model.safetensors")
        shutil.copy(out / "config.t4.json", Path(d) / "config.json")
        m4 = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        l4 = m4(input_ids=torch.tensor(ref["logits"]["input_ids"])).logits.float()
    diff = float((l4 - logits).abs().max())
    if diff != 0.0:
        raise SystemExit(f"{out.name}: config.t4.json gives different logits (max abs diff {diff})")
    res = {"file": "config.t4.json", "max_abs_diff_vs_config_json": diff,
           "rope_parameters_as_loaded": m4.config.rope_parameters}
    if hasattr(m4.config, "layer_types"):
        res["layer_types_as_loaded"] = m4.config.layer_types
    return res


def make_family(name: str, spec: dict, stories: list[str], out_root: Path, steps: int) -> dict:
    t0 = time.time()
    torch.manual_seed(0)
    random.seed(0)
    train_stories, held_out = stories[:-HELD_OUT], stories[-HELD_OUT:]
    t = spec["tokenizer"]
    tok = train_bytelevel(t, train_stories) if t["kind"] == "bytelevel" else train_sentencepiece_bpe(t, train_stories)
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB, (name, tok.get_vocab_size(with_added_tokens=True))
    config, kw = build_config(spec, tok)
    torch.manual_seed(1)
    model = transformers.AutoModelForCausalLM.from_config(config).float()
    bos_id = tok.token_to_id(t["bos"]) if t["bos"] else None
    stream = encode_stream(tok, train_stories, bos_id, tok.token_to_id(t["eos"]))
    losses = train(model, stream, steps, seed=2)

    out = out_root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_root))
    tmp.chmod(0o755)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(t, tok), indent=2, ensure_ascii=False) + "\n")
    # generation_config.json only repeats token ids; drop it so the fixture is config + weights + tokenizer.
    (tmp / "generation_config.json").unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)

    ref, tensors = references(out, spec, held_out)
    ref["config_kwargs"] = kw
    ref["training"] = {"steps": steps, "batch": 16, "seq_len": TRAIN_SEQ, "optimizer": "AdamW lr 3e-3 wd 0.01, cosine, 20 warm-up",
                       "train_stories": len(train_stories), "held_out_stories": HELD_OUT,
                       "first_loss": losses[0], "last_loss_mean10": sum(losses[-10:]) / 10}

    ref["config_t4"] = write_t4(out, ref, tensors["logits"])

    ref["sensitivity"] = sensitivity(out, spec, torch.tensor(ref["logits"]["input_ids"]), tensors["logits"])
    save_file(tensors, str(out / "reference.safetensors"), metadata={"format": "pt"})
    (out / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: loss {losses[0]:.3f} -> {ref['training']['last_loss_mean10']:.3f}, ppl {ref['perplexity']['ppl']:.4f} "
          f"({ref['perplexity']['windows']} windows), greedy '{ref['greedy']['new_text']}', {time.time() - t0:.0f}s", flush=True)
    return ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("families", nargs="*", help="families to make (default: all)")
    ap.add_argument("--out", default=str(ROOT / "test" / "fixtures" / "families"))
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--t4-only", action="store_true", help="only (re)write config.t4.json of existing fixtures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    specs = family_specs()
    names = args.families or list(specs)
    for n in names:
        if n not in specs:
            raise SystemExit(f"unknown family {n!r}; known: {', '.join(specs)}")
    stories = read_stories(Path(args.data))
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    for n in names:
        if args.t4_only:
            from safetensors.torch import load_file
            ref_file = out_root / n / "reference.json"
            ref = json.loads(ref_file.read_text())
            ref["config_t4"] = write_t4(out_root / n, ref, load_file(str(out_root / n / "reference.safetensors"))["logits"])
            ref_file.write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
            print(f"{n}: config.t4.json gives identical logits")
            continue
        make_family(n, specs[n], stories, out_root, args.steps)


if __name__ == "__main__":
    main()
