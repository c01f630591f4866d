#!/usr/bin/env python3
"""Run lm-evaluation-harness 0.4 on local copies of ../shared/data and write a per-item fixture.

The task YAMLs are lm-eval's own (read from the installed package at run time) with only the data loading
changed: `dataset_path: json` + `dataset_kwargs.data_files` pointing at local files, and only the split that is
evaluated (the others would make the loader look for files that do not exist). doc_to_text, doc_to_target,
doc_to_choice, process_docs, metric_list and the Python helpers (hellaswag/utils.py,
winogrande/preprocess_winogrande.py) are lm-eval's, unchanged.

The local files are the shared data rewritten in the Hugging Face schema lm-eval's YAMLs expect (PIQA with its
label file joined, ARC/OBQA choices as {text: [...], label: [...]}, BoolQ labels as 0/1). HellaSwag exists only in
llama.cpp's text format: ctx_a / ctx_b are recovered as the text before / after the last sentence end (the same
rule as sdmprune's src/eval/tasks/hellaswag.ts, written again here), so lm-eval's own process_docs builds the
query; the rule is checked against the original jsonl's first rows in test/tasks.test.ts.

Output: NAME.samples.jsonl.gz (one JSON line per item, the format of `sdmprune eval --log-samples`; `zcat` it to
diff), plus NAME.meta.json with versions,
settings and lm-eval's aggregated metrics. Token ids come from the same HFLM object (_encode_pair /
loglikelihood's empty-context rule), before left truncation.

Usage (see scripts/lm-eval/README.md):
  python scripts/lm-eval/reference.py --model DIR --name NAME --limit 50 --data ../shared/data --out test/fixtures/lm-eval
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import sys
import tempfile

import yaml

TASKS = ["arc_challenge", "arc_easy", "boolq", "hellaswag", "lambada_openai", "openbookqa", "piqa", "winogrande"]


# ----------------------------------------------------------------------------- local data in the HF schema

def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def ai2(rows, stem_key):
    out = []
    for r in rows:
        q = r["question"]
        out.append({
            "id": r["id"],
            stem_key: q["stem"],
            "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
            "answerKey": r["answerKey"],
        })
    return out


SENTENCE_END = re.compile(r"[.!?][\"')\]]* ")
ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]*$")


def hellaswag_split(line):
    """activity_label: ctx_a ctx_b -> (activity_label, ctx_a, ctx_b); ctx_b follows the last sentence end."""
    if ": " not in line:
        return "", line, ""
    label, ctx = line.split(": ", 1)
    if ENDS_SENTENCE.search(ctx):
        return label, ctx, ""
    ends = list(SENTENCE_END.finditer(ctx))
    if not ends:
        return label, "", ctx
    cut = ends[-1].end()
    return label, ctx[: cut - 1], ctx[cut:]


def hellaswag_rows(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = []
    for i in range(len(lines) // 6):
        ctx_line, gold, *endings = lines[i * 6: i * 6 + 6]
        label, ctx_a, ctx_b = hellaswag_split(ctx_line)
        rows.append({"ind": i, "activity_label": label, "ctx_a": ctx_a, "ctx_b": ctx_b,
                     "ctx": ctx_a + (" " + ctx_b if ctx_b else ""), "endings": endings, "label": gold.strip()})
    return rows


def local_data(data, out):
    """Write the HF-schema files; returns {task: (split, path)}."""
    files = {}

    def put(task, split, rows):
        p = os.path.join(out, f"{task}.{split}.jsonl")
        write_jsonl(p, rows)
        files[task] = (split, p)

    piqa = read_jsonl(os.path.join(data, "piqa", "valid.jsonl"))
    with open(os.path.join(data, "piqa", "valid-labels.lst"), encoding="utf-8") as f:
        labels = [int(x) for x in f.read().split()]
    put("piqa", "validation", [{**r, "label": labels[i]} for i, r in enumerate(piqa)])
    put("arc_easy", "test", ai2(read_jsonl(os.path.join(data, "arc", "ARC-Easy-Test.jsonl")), "question"))
    put("arc_challenge", "test", ai2(read_jsonl(os.path.join(data, "arc", "ARC-Challenge-Test.jsonl")), "question"))
    put("openbookqa", "test", ai2(read_jsonl(os.path.join(data, "openbookqa", "Main", "test.jsonl")), "question_stem"))
    boolq = read_jsonl(os.path.join(data, "boolq", "val.jsonl"))
    put("boolq", "validation", [{"question": r["question"], "passage": r["passage"], "idx": r["idx"],
                                 "label": {"true": 1, "false": 0}[r["label"]]} for r in boolq])
    put("hellaswag", "validation", hellaswag_rows(os.path.join(data, "hellaswag", "hellaswag_val_full.txt")))
    put("winogrande", "validation", read_jsonl(os.path.join(data, "winogrande", "dev.jsonl")))
    put("lambada_openai", "test", read_jsonl(os.path.join(data, "lambada", "lambada_test.jsonl")))
    return files


# ----------------------------------------------------------------------------- task YAMLs: lm-eval's, data loading changed

class Fn(str):
    """A `!function module.name` tag, kept as written."""


def fn_constructor(loader, node):
    return Fn(loader.construct_scalar(node))


def fn_representer(dumper, data):
    return dumper.represent_scalar("!function", str(data))


class Loader(yaml.SafeLoader):
    pass


class Dumper(yaml.SafeDumper):
    pass


Loader.add_constructor("!function", fn_constructor)
Dumper.add_representer(Fn, fn_representer)

TASK_YAML = {
    "arc_challenge": "arc/arc_challenge.yaml",
    "arc_easy": "arc/arc_easy.yaml",
    "boolq": "super_glue/boolq/default.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "lambada_openai": "lambada/lambada_openai.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "piqa": "piqa/piqa.yaml",
    "winogrande": "winogrande/default.yaml",
}
DATA_KEYS = ("dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split", "test_split", "fewshot_split")


def load_task_yaml(tasks_root, rel):
    path = os.path.join(tasks_root, rel)
    with open(path, encoding="utf-8") as f:
        cfg = yaml.load(f, Loader=Loader)
    if "include" in cfg:
        base = load_task_yaml(tasks_root, os.path.join(os.path.dirname(rel), cfg.pop("include")))
        base.update(cfg)
        cfg = base
    return cfg


def write_task_yamls(tasks_root, files, out):
    for task, rel in TASK_YAML.items():
        orig = load_task_yaml(tasks_root, rel)
        cfg = {k: v for k, v in orig.items() if k not in DATA_KEYS and k != "tag"}
        split, path = files[task]
        cfg["dataset_path"] = "json"
        cfg["dataset_kwargs"] = {"data_files": {split: path}}
        cfg[f"{split}_split"] = split
        with open(os.path.join(out, f"{task}.yaml"), "w", encoding="utf-8") as f:
            yaml.dump(cfg, f, Dumper=Dumper, sort_keys=False, allow_unicode=True)
        # the !function helpers live next to the YAML in lm-eval: copy them unchanged
        src_dir = os.path.join(tasks_root, os.path.dirname(rel))
        for name in os.listdir(src_dir):
            if name.endswith(".py"):
                shutil.copy(os.path.join(src_dir, name), os.path.join(out, name))


# ----------------------------------------------------------------------------- run and export

def encode(lm, context, continuation):
    """HFLM.loglikelihood's tokenization of one request."""
    if context == "":
        cont = lm.tok_encode(continuation, add_special_tokens=False)
        if lm.prefix_token_id != cont[0]:
            return [lm.prefix_token_id], cont
        return cont[:1], cont[1:]
    return lm._encode_pair(context, continuation)


def gold(task, sample):
    """The gold the metrics used: the choice index (WinoGrande's is doc_to_text, its target is the continuation)."""
    if task == "lambada_openai":
        return sample["target"]
    if task == "winogrande":
        return {"1": 0, "2": 1}[sample["doc"]["answer"]]
    return int(sample["target"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--name", required=True, help="fixture name (stories260K, demo)")
    ap.add_argument("--data", required=True, help="the shared data folder")
    ap.add_argument("--out", required=True, help="fixture folder")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--bos", choices=["on", "off"], default="on")
    ap.add_argument("--tasks", default=",".join(TASKS))
    args = ap.parse_args()

    import torch
    import transformers
    import lm_eval
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.manual_seed(0)
    tasks = args.tasks.split(",")
    work = tempfile.mkdtemp(prefix="lmeval-ref-")
    try:
        data_out = os.path.join(work, "data")
        yaml_out = os.path.join(work, "tasks")
        os.makedirs(data_out)
        os.makedirs(yaml_out)
        files = local_data(os.path.abspath(args.data), data_out)
        tasks_root = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
        write_task_yamls(tasks_root, files, yaml_out)
        tm = TaskManager(include_path=yaml_out, include_defaults=False)
        lm = HFLM(pretrained=os.path.abspath(args.model), add_bos_token=args.bos == "on", batch_size=args.batch_size,
                  device="cpu", dtype="float32")
        res = simple_evaluate(model=lm, tasks=tasks, limit=args.limit, log_samples=True, task_manager=tm,
                              num_fewshot=0, bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    raw = os.path.join(tempfile.gettempdir(), f"lmeval-ref-{args.name}.raw.json")
    with open(raw, "w", encoding="utf-8") as f:
        json.dump({"samples": res["samples"], "results": res["results"]}, f, default=str)

    lines = []
    for task in tasks:
        for s in sorted(res["samples"][task], key=lambda x: x["doc_id"]):
            if os.environ.get("LMEVAL_REF_DEBUG") and s["doc_id"] == 0:
                print(json.dumps({k: v for k, v in s.items() if k != "doc"}, default=str)[:1500], file=sys.stderr)
            a_ = s["arguments"]
            args_ = [[a["arg_0"], a["arg_1"]] for a in a_.values()] if isinstance(a_, dict) else [[a[0], a[1]] for a in a_]
            enc = [encode(lm, c, x) for c, x in args_]
            resps = [r[0] for r in s["resps"]]
            rec = {
                "task": task,
                "doc_id": s["doc_id"],
                "target": gold(task, s),
                "arguments": args_,
                "context_ids": [list(map(int, c)) for c, _ in enc],
                "continuation_ids": [list(map(int, x)) for _, x in enc],
                "truncated": [max(0, len(c) + len(x) - (lm.max_length + 1)) for c, x in enc],
                "loglikelihoods": [float(r[0]) for r in resps],
                "is_greedy": [bool(r[1]) for r in resps],
            }
            for m in ("acc", "acc_norm", "perplexity"):
                if m in s:
                    rec[m] = float(s[m]) if m == "perplexity" else int(s[m])
            lines.append(json.dumps(rec, ensure_ascii=False))
    os.makedirs(args.out, exist_ok=True)
    # gzip (mtime 0: the same run gives the same bytes) keeps the token ids of 400 items in ~150 KB
    base = os.path.join(args.out, f"{args.name}.samples.jsonl.gz")
    with open(base, "wb") as raw_f, gzip.GzipFile(filename="", mode="wb", fileobj=raw_f, mtime=0, compresslevel=9) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    meta = {
        "model": args.name,
        "lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "settings": {"add_bos_token": args.bos == "on", "limit": args.limit, "batch_size": args.batch_size,
                     "max_length": lm.max_length, "num_fewshot": 0, "dtype": "float32"},
        "results": {t: {k: v for k, v in res["results"][t].items() if k != "alias" and "stderr" not in k} for t in tasks},
    }
    with open(os.path.join(args.out, f"{args.name}.meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta["results"], indent=1))


if __name__ == "__main__":
    sys.exit(main())
