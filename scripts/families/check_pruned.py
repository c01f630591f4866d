#!/usr/bin/env python3
"""Load a Hugging Face directory written by sdmprune (maybe pruned) in the real transformers and check it.

How to run (a Python with torch (CPU) and transformers 5.x; the test suite does not need it):

    python scripts/families/check_pruned.py DIR [--reference REF.json] [--atol 1e-4] [--json OUT.json]

It
  1. loads DIR with AutoModelForCausalLM. A uniform `intermediate_size` loads as stock transformers does; a
     per-layer list (sdmprune's format for layer-wise pruning, which stock transformers cannot build) is loaded by
     building the model at the largest width and resizing each layer's MLP projections to the checkpoint's shapes
     (gate_proj/up_proj/down_proj, or Phi-3's fused gate_up_proj) before loading the weights strictly;
  2. checks that every tensor in the checkpoint was used, none is missing, and each shape matches the model;
  3. prints per-layer MLP widths and the logits of reference input ids;
  4. compares with DIR/sdmprune-logits.json when present: {"input_ids": [[...], ...], "logits": [[[...]]]} (the
     logits sdmprune computed for those ids, [batch][position][vocab]); exits 1 when the max abs difference is
     above --atol.

Input ids: those of sdmprune-logits.json, else `logits.input_ids` of --reference (a fixture's reference.json),
else the first 16 token ids of the vocabulary after BOS.
--json writes what was found (widths, max abs diff, versions) for recording next to a fixture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM


def checkpoint_shapes(d: Path) -> dict[str, tuple[int, ...]]:
    files = sorted(d.glob("*.safetensors"))
    files = [f for f in files if f.name != "reference.safetensors"]
    if not files:
        sys.exit(f"{d}: no *.safetensors")
    shapes = {}
    for f in files:
        with safe_open(str(f), framework="pt") as g:
            for k in g.keys():
                shapes[k] = tuple(g.get_slice(k).get_shape())
    return shapes


def load_state(d: Path) -> dict[str, torch.Tensor]:
    state = {}
    for f in sorted(d.glob("*.safetensors")):
        if f.name == "reference.safetensors":
            continue
        with safe_open(str(f), framework="pt") as g:
            for k in g.keys():
                state[k] = g.get_tensor(k).float()
    return state


def mlp_widths(model) -> list[int]:
    widths = []
    for layer in model.model.layers:
        mlp = layer.mlp
        if hasattr(mlp, "gate_up_proj"):
            widths.append(mlp.gate_up_proj.out_features // 2)
        else:
            widths.append(mlp.up_proj.out_features)
    return widths


def resize_linear(old: torch.nn.Linear, out_f: int, in_f: int) -> torch.nn.Linear:
    return torch.nn.Linear(in_f, out_f, bias=old.bias is not None, dtype=old.weight.dtype)


def load_model(d: Path):
    raw = json.loads((d / "config.json").read_text())
    im = raw.get("intermediate_size")
    if not isinstance(im, list):
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
        bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | ({"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
        if any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")):
            sys.exit(f"{d}: transformers could not load every weight: {bad}")
        return model.eval(), "stock from_pretrained"
    # Per-layer widths: build at the widest and cut each layer's MLP to its width.
    cfg_dict = dict(raw, intermediate_size=max(im))
    config = AutoConfig.for_model(**cfg_dict)
    model = AutoModelForCausalLM.from_config(config).float()
    for i, layer in enumerate(model.model.layers):
        w, mlp, h = im[i], layer.mlp, config.hidden_size
        if hasattr(mlp, "gate_up_proj"):
            mlp.gate_up_proj = resize_linear(mlp.gate_up_proj, 2 * w, h)
        else:
            mlp.gate_proj = resize_linear(mlp.gate_proj, w, h)
            mlp.up_proj = resize_linear(mlp.up_proj, w, h)
        mlp.down_proj = resize_linear(mlp.down_proj, h, w)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = w
    state = load_state(d)
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        sys.exit(f"{d}: weights do not fit the model: missing {missing}, unexpected {unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.eval(), "per-layer widths (patched MLP sizes)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--reference", help="a fixture's reference.json, for input ids")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--json", help="write the findings here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Path(args.dir)
    shapes = checkpoint_shapes(d)
    model, how = load_model(d)

    params = dict(model.named_parameters())
    for k, shape in shapes.items():
        if k in params and tuple(params[k].shape) != shape:
            sys.exit(f"{d}: {k}: checkpoint shape {shape}, model shape {tuple(params[k].shape)}")
    widths = mlp_widths(model)
    cfg = model.config
    print(f"{d}: {cfg.model_type} ({how}), transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"layers {len(widths)}, hidden {cfg.hidden_size}, vocab {cfg.vocab_size}, intermediate widths {widths}")

    ours_file = d / "sdmprune-logits.json"
    ours = json.loads(ours_file.read_text()) if ours_file.exists() else None
    if ours is not None:
        ids = ours["input_ids"]
    elif args.reference:
        ids = json.loads(Path(args.reference).read_text())["logits"]["input_ids"]
    else:
        bos = cfg.bos_token_id if isinstance(cfg.bos_token_id, int) else 0
        ids = [[bos] + list(range(3, 19))]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids, dtype=torch.long)).logits.float()
    torch.set_printoptions(precision=5, linewidth=150)
    print(f"logits {tuple(logits.shape)}; row 0, last position, first 8: {logits[0, -1, :8]}")
    print(f"greedy next tokens of row 0: {logits[0].argmax(-1).tolist()}")

    found = {"dir": str(d), "model_type": cfg.model_type, "load": how, "intermediate_widths": widths,
             "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
             "input_ids": ids}
    status = 0
    if ours is not None:
        theirs = torch.tensor(ours["logits"], dtype=torch.float32)
        if tuple(theirs.shape) != tuple(logits.shape):
            sys.exit(f"{ours_file}: logits shape {tuple(theirs.shape)}, transformers gives {tuple(logits.shape)}")
        diff = float((theirs - logits).abs().max())
        same_argmax = bool((theirs.argmax(-1) == logits.argmax(-1)).all())
        print(f"sdmprune-logits.json: max abs diff {diff:.3g} (atol {args.atol}), same argmax everywhere: {same_argmax}")
        found["max_abs_diff_vs_sdmprune"] = diff
        found["same_argmax"] = same_argmax
        status = 0 if diff <= args.atol else 1
    else:
        print("no sdmprune-logits.json: nothing to compare")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1) + "\n")
    sys.exit(status)


if __name__ == "__main__":
    main()
