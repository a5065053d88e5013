"""``make gpu-check``: everything GPU-side checked in one run of a few minutes, with no downloads.

    python -m launch.gpu_check [shape=7b|tiny] [out=gpu-check.json] [skip='[vllm,train]']

1. the environment: torch, CUDA, GPUs, whether ``flash_attn`` really imports, vLLM, DeepSpeed;
2. a random-weight Llama of the chosen shape (7B by default) built on the GPU, with a BPE tokenizer trained here on
   the PandaLM prompts;
3. the hf engine against JudgeLM's one-at-a-time method on 32 PandaLM prompts (fast mode): identical in fp32 with
   SDPA (required), and the identical fraction in bf16 with SDPA and with flash-attention 2;
4. the engine at its memory-derived batch budget: peak memory, units/s and pairs/s per GPU in fast mode, and the
   same for vLLM when installed, against the reference method's rate in the same run;
5. three DeepSpeed steps with ZeRO-2 and with ZeRO-3 on a ~1B model (NCCL), export, reload, judge 4 prompts;
6. LoRA and QLoRA (bitsandbytes 4-bit, bf16 compute) on a saved random ~1B base: three steps with an in-training
   evaluation, the adapter and merged exports, and the merged model judging 4 prompts as base + adapter does.

Writes ``gpu-check.json`` and prints a table (also written next to it as ``.md``). ``shape=tiny`` runs the same
on a CPU in about a minute, which is how the test suite covers it. Exit status 1 when a required check fails.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from judgelm.config import REPO_ROOT, ConfigError, load_config
from judgelm.data.benchmarks import load_dataset
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.gpu_plan import REFERENCE_SHAPES
from judgelm.inference.hf import HFEngine
from judgelm.inference.models import encode_with_bos, flash_attn_problem, load_judge
from judgelm.inference.reference_method import judge_one_at_a_time
from judgelm.profiles.prompts import build_prompt
from judgelm.train.tokenizer import train_tokenizer
from launch.cli import run_main

SHAPES = {"7b": REFERENCE_SHAPES["7b"],
          "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)}
TRAIN_SHAPES = {"7b": dict(hidden_size=2048, intermediate_size=5632, num_layers=20, num_heads=16),  # ~1.0B
                "tiny": dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4)}
MAX_NEW = 16  # fast mode's limit
COMPARE_PROMPTS = {"7b": 32, "tiny": 4}  # the CPU test suite runs the tiny shape: few prompts
THROUGHPUT_PAIRS = {"7b": 256, "tiny": 4}


def env_report() -> dict:
    cuda = torch.cuda.is_available()
    report = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": [], "python": sys.version.split()[0]}
    for i in range(torch.cuda.device_count() if cuda else 0):
        p = torch.cuda.get_device_properties(i)
        report["gpus"].append({"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                               "capability": f"{p.major}.{p.minor}"})
    if cuda:
        report["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    report["flash_attn"] = flash_attn_problem(torch.device("cuda" if cuda else "cpu"), torch.bfloat16) or "imports"
    for name in ("transformers", "deepspeed", "vllm"):
        try:
            report[name] = __import__(name).__version__
        except Exception as e:  # absent, or present and broken: both are what the operator needs to know
            report[name] = f"unavailable ({type(e).__name__}: {str(e)[:120]})"
    return report


def pandalm_texts(pairs: int) -> list[str]:
    """Both answer orders of the first ``pairs`` PandaLM records, adjacent, as the pipeline schedules them."""
    texts = []
    for r in load_dataset("pandalm").records[:pairs]:
        texts += [build_prompt(r.question, list(r.answers)), build_prompt(r.question, list(r.answers)[::-1])]
    return texts


def random_judge(shape: str, out: Path, device: torch.device):
    """A random-weight Llama built on ``device`` in fp32 with a BPE trained on the prompts, saved to ``out``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = train_tokenizer(pandalm_texts(64), 32000 if shape == "7b" else 2000, 4096)
    tok.save_pretrained(out)
    # Weights wider than the usual 0.02 keep the random model's top logits apart, so a greedy choice is decided by
    # the model, not by rounding, and fp32 outputs must match exactly.
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, initializer_range=0.05,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **SHAPES[shape])
    torch.manual_seed(0)
    with device:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=torch.float32).eval()
    return model, tok


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def compare(model, tok, device, prompts: list[list[int]]) -> dict:
    """The engine against JudgeLM's one-at-a-time ``generate`` on the same prompts: identical fraction and rates."""
    eng = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=MAX_NEW))
    ours, t_ours = timed(lambda: eng.generate(list(range(len(prompts))), prompts))
    ref, t_ref = timed(lambda: judge_one_at_a_time(model, tok, prompts, MAX_NEW, fast=True))
    same = sum(g.token_ids == r for g, r in zip(ours, ref))
    return {"prompts": len(prompts), "identical": same / len(prompts), "engine_units_per_s": len(prompts) / t_ours,
            "reference_units_per_s": len(prompts) / t_ref}


def engine_at_budget(model, tok, device, prompts: list[list[int]]) -> dict:
    """Fast mode at the memory-derived batch budget: peak memory and units/s per GPU."""
    eng = HFEngine(model, tok, device, EngineConfig(mode="fast", max_new_tokens=MAX_NEW))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _, t = timed(lambda: eng.generate(list(range(len(prompts))), prompts))
    row = {"batch_tokens": eng.cfg.batch_tokens, "units": len(prompts), "units_per_s": len(prompts) / t,
           "pairs_per_s": len(prompts) / 2 / t}
    if device.type == "cuda":
        row.update(peak_gb=round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
                   gpu_gb=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return row


def vllm_rate(model_dir: Path, prompts: list[list[int]]) -> dict:
    """vLLM on the same weights (saved in bf16) and prompts, fast mode."""
    from judgelm.inference.vllm_engine import VLLMEngine

    eng = VLLMEngine(ModelConfig(path=str(model_dir), dtype="bfloat16"), EngineConfig(backend="vllm", mode="fast"))
    eng.generate([0], prompts[:1])  # warm-up: CUDA graphs, prefix cache
    _, t = timed(lambda: eng.generate(list(range(len(prompts))), prompts))
    return {"units": len(prompts), "units_per_s": len(prompts) / t, "pairs_per_s": len(prompts) / 2 / t}


def train_overrides(shape: str, stage: int, work: Path, data: Path) -> list[str]:
    s = TRAIN_SHAPES[shape]
    return ["size=tiny", f"run=zero{stage}", f"runs_dir={work}", "export_dir=null", "backend=deepspeed",
            f"deepspeed_config=configs/deepspeed/zero{stage}.json", f"data.train_files=[{data}]", "epochs=1",
            "global_batch=4", "micro_batch=4", "log_every=1", "model.scratch.vocab_size=4096",
            *(f"model.scratch.{k}={v}" for k, v in s.items())]


def deepspeed_roundtrip(shape: str, stage: int, work: Path) -> dict:
    """Three ZeRO steps in a fresh process (its own process group: NCCL on a GPU), export, reload, judge 4."""
    source = REPO_ROOT / "data" / "tiny_train" / "judgelm_tiny_train.jsonl"
    data = work / "train.jsonl"
    data.write_text("".join(source.read_text().splitlines(keepends=True)[:12]))  # 3 global batches of 4
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "judgelm.train", *train_overrides(shape, stage, work, data)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"training exited {proc.returncode}: {proc.stderr[-1500:]}")
    run = work / f"zero{stage}"
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    judge = load_judge(ModelConfig(path=str(run / "model")))
    prompts = encode_with_bos(judge.tokenizer, pandalm_texts(2))
    gens = HFEngine(judge.model, judge.tokenizer, judge.device, EngineConfig(mode="fast")).generate(
        list(range(4)), prompts)
    started = next(line for line in (run / "train.log").read_text().splitlines() if "deepspeed on" in line)
    return {"steps": len(steps), "losses": [round(r["loss"], 4) for r in steps], "log": started.split(": ", 1)[1],
            "export_dtype": judge.runtime.dtype, "judged": sum(len(g.token_ids) > 0 for g in gens)}


def adapter_roundtrip(shape: str, method: str, work: Path) -> dict:
    """Three LoRA/QLoRA steps on a random base saved here, an evaluation, both exports; merged vs base + adapter."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from judgelm.train.adapters import qlora_problem

    if method == "qlora" and qlora_problem():
        return {"skipped": qlora_problem()}
    s = TRAIN_SHAPES[shape]
    tok = train_tokenizer(pandalm_texts(64), 4096, 4096)
    base = work / "base"
    tok.save_pretrained(base)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=s["hidden_size"], intermediate_size=s["intermediate_size"],
                      num_hidden_layers=s["num_layers"], num_attention_heads=s["num_heads"],
                      max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(base)
    source = REPO_ROOT / "data" / "tiny_train" / "judgelm_tiny_train.jsonl"
    data = work / "train.jsonl"
    data.write_text("".join(source.read_text().splitlines(keepends=True)[:16]))  # 3 batches of 4 + 4 held out
    gpus = "1" if torch.cuda.is_available() else "0"
    args = ["size=tiny", f"run={method}", f"runs_dir={work}", "export_dir=null", f"method={method}",
            f"model.path={base}", f"data.train_files=[{data}]", "data.holdout=4", "epochs=1", "global_batch=4",
            "micro_batch=4", "log_every=1", "eval_every=2", f"resources.gpus_per_node={gpus}"]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "judgelm.train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"training exited {proc.returncode}: {proc.stderr[-1500:]}")
    run = work / method
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = json.loads((run / "metrics.json").read_text())["evals"]
    verdicts = []
    for path in (run / "model", run / "adapter"):
        judge = load_judge(ModelConfig(path=str(path)))
        prompts = encode_with_bos(judge.tokenizer, pandalm_texts(2))
        gens = HFEngine(judge.model, judge.tokenizer, judge.device, EngineConfig(mode="fast")).generate(
            list(range(4)), prompts)
        verdicts.append([g.text for g in gens])
        del judge
    same = sum(a == b for a, b in zip(*verdicts)) / 4  # bf16 weights: rounding may flip a near-tie of a random model
    trained = next(line for line in (run / "train.log").read_text().splitlines() if f"method {method}" in line)
    return {"steps": len(steps), "losses": [round(r["loss"], 4) for r in steps], "evals": len(evals),
            "trainable": trained.split(": ", 1)[1], "merged_identical": same}


def run_part(results: dict, name: str, fn, *args) -> None:
    """One check; a failure is recorded with its reason and the others still run."""
    t = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as e:  # the check reports every failure rather than stopping at the first
        results[name] = {"error": f"{type(e).__name__}: {str(e)[:800]}", "trace": traceback.format_exc()[-3000:]}
    results[name]["seconds"] = round(time.perf_counter() - t, 1)


def judging_checks(results: dict, shape: str, work: Path, skip: set[str]) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (model, tok), t = timed(lambda: random_judge(shape, work / "judge", device))
    results["model"] = {"shape": shape, "params": sum(p.numel() for p in model.parameters()), "device": str(device),
                        "built_s": round(t, 1)}
    compare_prompts = encode_with_bos(tok, pandalm_texts(COMPARE_PROMPTS[shape] // 2))
    run_part(results, "fp32_sdpa", compare, model, tok, device, compare_prompts)
    model.to(torch.bfloat16)
    run_part(results, "bf16_sdpa", compare, model, tok, device, compare_prompts)
    problem = flash_attn_problem(device, torch.bfloat16)
    if problem:
        results["bf16_fa2"] = {"skipped": problem}
    else:
        model.set_attn_implementation("flash_attention_2")
        run_part(results, "bf16_fa2", compare, model, tok, device, compare_prompts)
        model.set_attn_implementation("sdpa")
    many = encode_with_bos(tok, pandalm_texts(THROUGHPUT_PAIRS[shape]))
    run_part(results, "hf_at_budget", engine_at_budget, model, tok, device, many)
    vllm_problem = "needs CUDA" if device.type != "cuda" else None
    if "vllm" in skip or vllm_problem or str(results["env"]["vllm"]).startswith("unavailable"):
        results["vllm"] = {"skipped": "skip=[vllm]" if "vllm" in skip else vllm_problem or results["env"]["vllm"]}
    else:
        model.save_pretrained(work / "judge")  # next to its tokenizer
        del model  # vLLM sizes its cache from the memory free when it starts
        gc.collect()
        torch.cuda.empty_cache()
        run_part(results, "vllm", vllm_rate, work / "judge", many)


def table(r: dict) -> str:
    def cell(part: dict, key: str, fmt: str = "{:.2f}") -> str:
        if "skipped" in part or "error" in part:
            return part.get("skipped") or "ERROR " + part["error"][:80]
        return fmt.format(part[key])

    env, gpus = r["env"], r["env"]["gpus"]
    hw = f"{len(gpus)} × {gpus[0]['name']} ({gpus[0]['memory_gb']} GB)" if gpus else "CPU only"
    lines = [f"gpu-check ({r['model']['shape']} random Llama, {r['model']['params'] / 1e6:,.0f}M params) on {hw}",
             f"torch {env['torch']}, CUDA {env['cuda']}, flash_attn: {env['flash_attn']}, "
             f"DeepSpeed {env['deepspeed']}, vLLM {env['vllm']}", "",
             "| check | result |", "| --- | --- |"]
    for name, label in (("fp32_sdpa", "fp32 SDPA identical to one-at-a-time (must be 1)"),
                        ("bf16_sdpa", "bf16 SDPA identical fraction"), ("bf16_fa2", "bf16 FA2 identical fraction")):
        lines.append(f"| {label} | {cell(r[name], 'identical')} |")
    ref = r["bf16_sdpa"].get("reference_units_per_s")
    lines.append(f"| reference method (bf16), units/s | {ref:.2f} |" if ref else "| reference method | n/a |")
    b = r["hf_at_budget"]
    lines.append(f"| hf engine at budget {b.get('batch_tokens', '?')} tokens, units/s (pairs/s) | "
                 f"{cell(b, 'units_per_s')} ({cell(b, 'pairs_per_s')}) |")
    if "peak_gb" in b:
        lines.append(f"| peak GPU memory at that budget | {b['peak_gb']} of {b['gpu_gb']} GB |")
    v = r["vllm"]
    lines.append(f"| vLLM, units/s (pairs/s) | {cell(v, 'units_per_s')}"
                 + ("" if "skipped" in v or "error" in v else f" ({cell(v, 'pairs_per_s')})") + " |")
    for stage in (2, 3):
        d = r.get(f"zero{stage}", {"skipped": "skip=[train]"})
        ok = cell(d, "steps", "{} steps") + ("" if "steps" not in d else f", losses {d['losses']}, export "
                                             f"{d['export_dtype']}, judged {d['judged']}/4, {d['log']}")
        lines.append(f"| DeepSpeed ZeRO-{stage}: train, export, reload, judge | {ok} |")
    for method in ("lora", "qlora"):
        d = r.get(method, {"skipped": "skip=[train]"})
        ok = cell(d, "steps", "{} steps") + ("" if "steps" not in d else f", {d['evals']} evaluations, "
                                             f"trainable {d['trainable']}, merged model's verdicts identical "
                                             f"to base + adapter's: {d['merged_identical']:.2f}")
        lines.append(f"| {method.upper()}: train, evaluate, export adapter + merged | {ok} |")
    return "\n".join(lines)


def failed(r: dict) -> list[str]:
    bad = [k for k, v in r.items() if isinstance(v, dict) and "error" in v]
    if r["fp32_sdpa"].get("identical") != 1.0:
        bad.append("fp32_sdpa not identical")

    return bad


@dataclass
class GpuCheckConfig:
    shape: str = "7b"
    """The judge's shape: ``7b`` (random weights, built on the GPU) or ``tiny`` (any device, for tests)."""
    out: str = "gpu-check.json"
    """Where the results go (and the table, beside it as ``.md``)."""
    skip: list[str] = field(default_factory=list)
    """Parts to leave out: ``vllm``, ``train``."""


def gpu_check(argv: list[str]) -> int:
    args = load_config(GpuCheckConfig, None, argv)
    skip = set(args.skip)
    if skip - {"vllm", "train"} or args.shape not in SHAPES:
        raise ConfigError(f"shape must be one of {', '.join(sorted(SHAPES))} and skip a list of vllm, train; got "
                          f"shape={args.shape} skip={args.skip}")
    started = time.perf_counter()
    results: dict = {"env": env_report()}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        judging_checks(results, args.shape, Path(tmp), skip)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for stage in () if "train" in skip else (2, 3):
            (Path(tmp) / f"ds{stage}").mkdir()
            run_part(results, f"zero{stage}", deepspeed_roundtrip, args.shape, stage, Path(tmp) / f"ds{stage}")
        for method in () if "train" in skip else ("lora", "qlora"):
            (Path(tmp) / method).mkdir()
            run_part(results, method, adapter_roundtrip, args.shape, method, Path(tmp) / method)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["table"] = table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(results["table"] + "\n")
    print(results["table"] + f"\n\n{results['seconds']} s; written to {out} and {out.with_suffix('.md')}")
    bad = failed(results)
    if bad:
        print(f"FAILED: {', '.join(bad)} (details in {out})", file=sys.stderr)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    return run_main(gpu_check, __doc__, GpuCheckConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
