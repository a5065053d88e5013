"""``make bench``: judging throughput against vLLM, JudgeLM's method and the hardware's ceiling; the merge at scale.

    python -m launch.bench [vllm_python=.venv-vllm/bin/python] [models='[tiny,llama-50m]'] [pairs=32]
                           [instructions=4] [repeats=5] [full_new_tokens=128] [merge_units=1000000] ...

For each model and mode (fast: score line only; full: explanation up to N new tokens), in one process:

- against vLLM, on two workloads: PandaLM pairs in both orders, and model evaluation (AlpacaEval's six models
  each judged against the baseline answer, both orders, ``instructions``). Ours with prefix
  sharing off and on, and vLLM (in its own venv, ``launch.vllm_peer``) with prefix caching off and on, on the
  same token ids, interleaved in every repeat;
- reference: JudgeLM's method, one record per ``generate`` call with a keyword stopping criterion
  (``judgelm.inference.reference_method``), on ``reference_pairs`` pairs; compared per token;
- ceiling: a plain forward pass (last-position logits only) over the same sequences (each unit's prompt and the
  tokens ours generated), length-sorted, at the best of a few batch sizes, with no generation at all.

Then the merge of a synthetic store of ``merge_units`` units against computing the same metrics from JudgeLM's
JSONL files, and opening a verdict cache of ``cache_entries`` entries as a shard does. Timings are medians of
``repeats`` runs; the figures, the hardware and the versions go to ``<runs_dir>/bench-<time>/bench.json``.
Nothing here is asserted: timings are reported, not tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from judgelm.config import ConfigError, load_config
from judgelm.data.benchmarks import load_dataset
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.fork_pool import ForkPool
from judgelm.inference.hf import HFEngine
from judgelm.inference.models import encode_with_bos, load_judge, load_tokenizer
from judgelm.inference.reference_method import judge_one_at_a_time
from judgelm.profiles.prompts import build_prompt
from launch.bench_e2e import bench_run, e2e_table
from launch.cli import run_main


def hardware() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}


def cpu_seconds(engine=None) -> float:
    """CPU time of this process and of ``engine``'s forked compute processes, as vLLM's is counted (its whole
    process tree, ``launch.vllm_peer``); not the vLLM peers, which are children of this process too."""
    import psutil

    pool = getattr(engine, "pool", None)
    total = 0.0
    for p in [psutil.Process(), *(psutil.Process(pid) for pid in (pool.pids if pool else []))]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def settle(busy_cores: float = 0.2, window: float = 0.1, limit: float = 5.0) -> float:
    """Wait until the machine is quiet (under ``busy_cores`` cores busy over ``window`` seconds, at most ``limit``
    seconds); the seconds waited. After each request vLLM's processes spin on a full core for about a second while
    they wait for the next one (measured here: 0.5 CPU s per 0.5 s, then nothing); the engine timed next would
    share the machine with that spin, so every timed run starts once it has stopped, whichever engine ran before."""
    import psutil

    t = time.perf_counter()
    while time.perf_counter() - t < limit:
        if psutil.cpu_percent(interval=window) * psutil.cpu_count() / 100 < busy_cores:
            break
    return time.perf_counter() - t


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def load_model(name: str, judge: str):
    """``tiny``: the judge at ``judge``. ``llama-50m``: random weights, that judge's tokenizer, ~50M parameters."""
    if name == "tiny":
        return load_judge(ModelConfig(path=judge))[:3]
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(judge)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=576, intermediate_size=1536, num_hidden_layers=12,
                      num_attention_heads=9, num_key_value_heads=9, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()
    return model, tok, torch.device("cpu")


def pandalm_prompts(tok, pairs: int) -> list[list[int]]:
    recs = load_dataset("pandalm").records[:pairs]
    texts = []
    for r in recs:  # both orders of a pair, adjacent, as the pipeline schedules them
        texts += [build_prompt(r.question, list(r.answers)), build_prompt(r.question, list(r.answers)[::-1])]
    return encode_with_bos(tok, texts)


class Ceiling:
    """The fastest plain forward pass over exactly these sequences (each unit's prompt plus what it generated).

    Sequences are length-sorted and grouped ``rows`` at a time, right-padded and mask-free (the cheapest way to run
    them), with logits only at the last position; no generation loop at all. The groups are shared by as many
    forked processes as the engine judges with (``cpu_processes``), so the ceiling uses the cores ours uses.
    """

    def __init__(self, model, processes: int):
        self.model = model
        self.pool = ForkPool(self.forward, processes - 1) if processes > 1 else None

    @torch.inference_mode()
    def forward(self, group: list[list[int]]) -> None:
        x = torch.full((len(group), len(group[0])), 0, dtype=torch.long)
        for r, seq in enumerate(group):
            x[r, : len(seq)] = torch.tensor(seq)
        self.model(input_ids=x, logits_to_keep=1)

    def run(self, order: list[list[int]], rows: int) -> None:
        groups = [order[i: i + rows] for i in range(0, len(order), rows)]
        if self.pool is None:
            for g in groups:
                self.forward(g)
        else:
            self.pool.map(self.forward, groups)

    def measure(self, sequences: list[list[int]], repeats: int) -> dict:
        """The best of a few group sizes, timed again ``repeats`` times."""
        order = sorted(sequences, key=len, reverse=True)
        self.run(order, 4)  # warm-up
        trials = {rows: median_time(lambda rows=rows: self.run(order, rows), 2)[0] for rows in (1, 4, 16)}
        rows = min(trials, key=trials.get)
        t, _ = median_time(lambda: self.run(order, rows), repeats)
        tokens = sum(len(x) for x in sequences)
        return {"tokens_per_s": tokens / t, "rows": rows, "seconds": t,
                "processes": 1 if self.pool is None else self.pool.processes}


def model_eval_prompts(tok, raw_dir: Path, n_instructions: int, max_tokens: int) -> list[list[int]]:
    """Model evaluation as AlpacaEval does it: each of the six models' answers (``output_2``) judged against the
    baseline answer (``output_1``, the same for every model), both orders, for the first ``n_instructions``
    instructions whose prompts all fit in ``max_tokens``. Units come record by record, the two orders adjacent,
    as the pipeline schedules them."""
    models = sorted(d.name for d in raw_dir.iterdir() if (d / "annotations.json").exists())
    answers = {m: {a["instruction"]: a for a in json.loads((raw_dir / m / "annotations.json").read_text())}
               for m in models}
    out: list[list[int]] = []
    for question in answers[models[0]]:
        if not all(question in answers[m] for m in models):
            continue
        texts = []
        for m in models:
            a = answers[m][question]
            texts += [build_prompt(question, [a["output_1"], a["output_2"]]),
                      build_prompt(question, [a["output_2"], a["output_1"]])]
        ids = encode_with_bos(tok, texts)
        if max(len(x) for x in ids) <= max_tokens:
            out += ids
            if len(out) == 2 * len(models) * n_instructions:
                break
    return out


def generation_prompts(tok, questions: Path, n: int) -> list[list[int]]:
    """Answer generation as ``make generate`` does it, at the engine level: MT-Bench's first turns in a plain chat
    format, both engines given the same ids and generating up to ``generate_new_tokens`` (decode-bound: batching,
    the KV cache and finished rows leaving the batch are what counts)."""
    turns = [json.loads(line)["turns"][0] for line in questions.read_text().splitlines() if line.strip()][:n]
    return encode_with_bos(tok, [f"USER: {q}\nASSISTANT:" for q in turns])


@contextlib.contextmanager
def vllm_peers(python: str | None, model, tok, model_dir: str | None, threads: int):
    """Two vLLM engines in vLLM's venv, prefix caching off and on, loaded with this model (saved to a temporary
    directory when it has none), or none without ``python``. vLLM computes on as many cores as ours (by default
    it keeps one core of this 2-core machine for its scheduler and computes on the other)."""
    if not python:
        yield {}
        return
    from launch.vllm_peer import Peer

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(str(c) for c in range(threads)))
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is None:
            model_dir = tmp
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        log = (Path(tmp) / "vllm.log").open("w")
        peers = {"vllm": Peer(python, stderr=log), "vllm_cached": Peer(python, stderr=log)}
        try:
            for key, peer in peers.items():
                r = peer.request(load={"model": {"path": model_dir, "dtype": "float32"},
                                       "engine": {"backend": "vllm", "prefix_sharing": key == "vllm_cached"}})
                print(f"  vLLM loaded in {r['load_s']:.0f} s ({key})", flush=True)
            peers["versions"] = {**r["versions"], "VLLM_CPU_OMP_THREADS_BIND": os.environ["VLLM_CPU_OMP_THREADS_BIND"]}
            yield peers
        finally:
            for key in ("vllm", "vllm_cached"):
                peers[key].close()


def compare_engines(model, tok, device, peers: dict, ids: list[list[int]], mode: str, max_new: int,
                    repeats: int) -> dict:
    """Ours with prefix sharing off and on and vLLM with prefix caching off and on, on the same token ids, the four
    interleaved in every repeat; medians of wall time and of CPU time (vLLM's: its whole process tree). On a
    machine shared with other work the CPU time is the steadier measure. vLLM's prefix cache is emptied before each
    of its runs, so it gains only from what the prompts share among themselves, as ours does."""
    units = list(range(len(ids)))
    ours = {key: HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=max_new, prefix_sharing=share))
            for key, share in (("hf", False), ("hf_shared", True))}
    engine = {"mode": mode, "max_new_tokens": max_new}
    runs = {key: [] for key in (*ours, "vllm", "vllm_cached") if key in ours or key in peers}
    for eng in ours.values():
        eng.generate(units[:2], ids[:2])  # warm-up
    for key in runs.keys() - ours.keys():
        peers[key].request(generate={"units": units[:2], "ids": ids[:2], "engine": engine})
    for _ in range(repeats):
        for key in runs:
            settle()
            if key in ours:
                t, cpu = time.perf_counter(), cpu_seconds(ours[key])
                new = sum(len(g.token_ids) for g in ours[key].generate(units, ids))
                runs[key].append((time.perf_counter() - t, cpu_seconds(ours[key]) - cpu, new))
            else:
                r = peers[key].request(generate={"units": units, "ids": ids, "engine": engine,
                                                 "reset_prefix_cache": True})
                runs[key].append((r["seconds"], r["cpu_seconds"], r["new_tokens"]))
    out = {"prompt_tokens": sum(len(x) for x in ids)}
    for key, v in runs.items():
        out[f"{key}_units_per_s"] = len(ids) / statistics.median(x[0] for x in v)
        out[f"{key}_units_per_cpu_s"] = len(ids) / statistics.median(x[1] for x in v)
        out[f"{key}_new_tokens"] = v[-1][2]
    line = ", ".join(f"{key} {out[f'{key}_units_per_s']:.2f} ({out[f'{key}_units_per_cpu_s']:.2f})" for key in runs)
    print(f"    {mode:4s} {len(ids):4d} units: {line} units/s (per CPU second)", flush=True)
    return out


def reference_and_ceiling(model, tok, device, prompts: list[list[int]], n_ref: int, mode: str, max_new: int,
                          repeats: int) -> dict:
    """Ours (default settings) against JudgeLM's one-at-a-time method and against a plain forward pass.

    The baseline is slow, so it judges a subset spread evenly over the prompts (not the first ones, which would
    bias the comparison by prompt length); rates are compared per token processed.
    """
    units = list(range(len(prompts)))
    ref_prompts = [prompts[i] for i in np.linspace(0, len(prompts) - 1, min(n_ref, len(prompts))).round().astype(int)]
    prompt_tokens = sum(len(p) for p in prompts)
    eng = HFEngine(model, tok, device, EngineConfig(mode=mode, max_new_tokens=max_new))
    eng.generate(units[:2], prompts[:2])  # warm-up
    t_ours, gens = median_time(lambda: eng.generate(units, prompts), repeats)
    new_tokens = sum(len(g.token_ids) for g in gens)
    t_ref, ref_out = median_time(lambda: judge_one_at_a_time(model, tok, ref_prompts, max_new, mode == "fast"),
                                 min(repeats, 3))
    ceiling = Ceiling(model, eng.cpu_processes).measure([p + g.token_ids for p, g in zip(prompts, gens)], repeats)
    ours_tps = (prompt_tokens + new_tokens) / t_ours
    ref_tps = (sum(len(p) for p in ref_prompts) + sum(len(x) for x in ref_out)) / t_ref
    print(f"    {mode:4s}: ours {len(prompts) / t_ours:8.2f} units/s, reference {len(ref_prompts) / t_ref:7.2f} "
          f"units/s (x{ours_tps / ref_tps:5.1f} per token), {100 * ceiling['seconds'] / t_ours:5.1f} % of the "
          f"forward ceiling ({new_tokens / len(prompts):.1f} new tokens per unit)", flush=True)
    return {"new_tokens": new_tokens, "mean_new_tokens": new_tokens / len(prompts),
            "ours_s": t_ours, "ours_units_per_s": len(prompts) / t_ours, "ours_tokens_per_s": ours_tps,
            "ours_new_tokens_per_s": new_tokens / t_ours,
            "reference_units": len(ref_prompts), "reference_s": t_ref,
            "reference_units_per_s": len(ref_prompts) / t_ref,
            "reference_new_tokens": sum(len(x) for x in ref_out), "reference_tokens_per_s": ref_tps,
            "ceiling": ceiling, "ceiling_s": ceiling["seconds"],
            "speedup_vs_reference": ours_tps / ref_tps, "fraction_of_ceiling": ceiling["seconds"] / t_ours}


def bench_model(name: str, args, score_line_tokens: float | None) -> tuple[list[dict], dict | None]:
    """For one model, fast then full mode: ours against vLLM on every workload, then against JudgeLM's method and
    the forward ceiling on PandaLM. Returns the rows and vLLM's versions.

    A model with random weights never writes the newline that ends a score line, so in fast mode it would always
    run to the limit; it is capped at ``score_line_tokens``, the trained tiny judge's mean score-line length
    measured in the same run.
    """
    model, tok, device = load_model(name, args.judge)
    tiny = name == "tiny"
    workloads = {"pandalm": pandalm_prompts(tok, args.pairs if tiny else args.pairs_big)}
    if args.alpaca_eval and Path(args.alpaca_eval).is_dir():
        workloads["model-eval"] = model_eval_prompts(tok, Path(args.alpaca_eval), args.instructions if tiny
                                                     else args.instructions_big, args.max_prompt_tokens)
    repeats = args.repeats if tiny else min(args.repeats, 3)  # the 50M model takes minutes per repeat on a CPU
    n_ref = 2 * (args.reference_pairs if tiny else args.reference_pairs_big)
    head = {"model": name, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}
    rows = []
    print(f"  {name}:", flush=True)
    with vllm_peers(args.vllm_python, model, tok, args.judge if tiny else None, torch.get_num_threads()) as peers:
        for mode in ("fast", "full"):
            max_new = args.full_new_tokens if mode == "full" else 16
            if mode == "fast" and not tiny and score_line_tokens:
                max_new = max(1, round(score_line_tokens))
            for workload, ids in workloads.items():
                row = {**head, "mode": mode, "workload": workload, "max_new_tokens": max_new, "units": len(ids),
                       **compare_engines(model, tok, device, peers, ids, mode, max_new, repeats)}
                if workload == "pandalm":
                    row.update(reference_and_ceiling(model, tok, device, ids, n_ref, mode, max_new, repeats))
                rows.append(row)
        if args.questions and Path(args.generation_questions).is_file():
            ids = generation_prompts(tok, Path(args.generation_questions), args.questions if tiny
                                     else args.questions_big)
            rows.append({**head, "mode": "generate", "workload": "generation",
                         "max_new_tokens": args.generate_new_tokens, "units": len(ids),
                         **compare_engines(model, tok, device, peers, ids, "full", args.generate_new_tokens,
                                           repeats)})
        versions = peers.get("versions")
    return rows, versions


def synthetic_store(path: Path, n_units: int, rng, checksums: bool = True) -> tuple[np.ndarray, object, np.ndarray]:
    """A judged store of ``n_units`` units (PandaLM-like pairs in both orders, 2 % parse failures, 64 shards), with
    chunk checksums or (as stores were before them) without; returns the ground-truth scores, the unit plan and the
    verdict scores it holds."""
    from judgelm.data.records import Record
    from judgelm.judging.store import ChunkVerdicts, VerdictStore
    from judgelm.judging.units import plan_units

    gt = rng.integers(1, 11, (n_units // 2, 2))
    records = [Record(question_id=i, question="q", answers=("a", "b"), gt_scores=(float(a), float(b)))
               for i, (a, b) in enumerate(gt.tolist())]
    plan = plan_units(records)
    scores = rng.integers(1, 11, (len(plan), 2)).astype(np.float32)
    scores[rng.random(len(plan)) < 0.02] = np.nan  # some parse failures
    store = VerdictStore.create(path, records, plan, 2, chunk_units=16384, attrs={"n_shards": 64},
                                checksums=checksums)
    del records
    for c in range(store.n_chunks):
        sl = store.chunk_slice(c)
        n = sl.stop - sl.start
        store.write_chunk(c, ChunkVerdicts(scores=scores[sl], status=np.isnan(scores[sl, 0]).astype(np.int8),
                                           text=[""] * n, prompt_tokens=np.zeros(n), new_tokens=np.zeros(n),
                                           truncated=np.zeros(n, bool)), attempt=0)
    return gt, plan, scores


def bench_merge(n_units: int, repeats: int) -> dict:
    """Merge of a synthetic store vs the same metrics from JudgeLM's three JSONL files."""
    from judgelm.judging.store import VerdictStore
    from judgelm.results.merge import compute_metrics
    from judgelm.scoring.judgelm_files import metrics_from_judgelm_files

    with tempfile.TemporaryDirectory() as tmp:
        for name, checksums in (("s.zarr", True), ("plain.zarr", False)):  # the same store, the second as before
            gt, plan, scores = synthetic_store(Path(tmp) / name, n_units, np.random.default_rng(0), checksums)
        # with and without checksums interleaved, in wall and CPU time: on a shared machine the load moves
        times: dict[str, list[tuple[float, float]]] = {"s.zarr": [], "plain.zarr": []}
        for _ in range(repeats):
            for name in times:
                t, cpu = time.perf_counter(), time.process_time()
                m = compute_metrics(VerdictStore(Path(tmp) / name))
                times[name].append((time.perf_counter() - t, time.process_time() - cpu))
        (t_merge, cpu_merge), (t_plain, cpu_plain) = ([statistics.median(x) for x in zip(*times[k])] for k in times)
        t_verify, _ = median_time(lambda: VerdictStore(Path(tmp) / "s.zarr").verify(), repeats)
        t_same, same_store = median_time(lambda: judgelm_metrics_from_store(Path(tmp) / "s.zarr"), repeats)

        def text(s):
            return "garbled" if np.isnan(s[0]) else f"{int(s[0])} {int(s[1])}"
        paths = {k: Path(tmp) / f"{k}.jsonl" for k in ("gt", "seq", "rev")}
        with open(paths["gt"], "w") as f:
            for i, (a, b) in enumerate(gt.tolist()):
                f.write(json.dumps({"question_id": i, "text": f"{a} {b}\nexplanation"}) + "\n")
        for key, order in (("seq", 0), ("rev", 1)):
            idx = np.flatnonzero(plan.order == order)
            with open(paths[key], "w") as f:
                for i, u in enumerate(idx):
                    f.write(json.dumps({"question_id": i, "pred_text": text(scores[u])}) + "\n")
        t_jsonl, j = median_time(lambda: metrics_from_judgelm_files(paths["gt"], paths["seq"], paths["rev"]),
                                 max(1, repeats - 1))
    keys = ("agreement", "precision", "recall", "f1", "consistency")
    ours = m["groups"]["without_reference"]
    same = all(abs(ours[k] - j[k]) < 1e-12 and abs(same_store[k] - j[k]) < 1e-12 for k in keys)
    print(f"  merge of {n_units} units: full merge {t_merge:.2f} s, {cpu_merge:.2f} s CPU ({t_plain:.2f} s, "
          f"{cpu_plain:.2f} s CPU without chunk checksums; make verify {t_verify:.2f} s); "
          f"JudgeLM's metrics from the store {t_same:.3f} s, "
          f"from JudgeLM's JSONL files {t_jsonl:.2f} s (x{t_jsonl / t_same:.0f}); same metrics: {same}", flush=True)
    return {"units": n_units, "merge_s": t_merge, "merge_cpu_s": cpu_merge, "merge_s_without_checksums": t_plain,
            "merge_cpu_s_without_checksums": cpu_plain, "verify_s": t_verify,
            "judgelm_metrics_from_store_s": t_same, "jsonl_s": t_jsonl,
            "speedup_same_metrics": t_jsonl / t_same, "speedup_full_merge": t_jsonl / t_merge, "same_metrics": same}


_MERGE_ALONE = """
import json, sys, time
from judgelm.judging.store import VerdictStore
from judgelm.results.merge import compute_metrics

def status_mb(key):  # this process's own figures (getrusage's peak would include the parent's, from before exec)
    return int(next(x for x in open("/proc/self/status") if x.startswith(key)).split()[1]) / 1024

before = status_mb("VmRSS")
t = time.perf_counter()
m = compute_metrics(VerdictStore(sys.argv[1]))
print(json.dumps({"merge_s": time.perf_counter() - t, "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM"),
                  "agreement": m["groups"]["without_reference"]["agreement"]}))
"""


def bench_merge_scale(n_units: int) -> dict:
    """The full merge of a synthetic store of ``n_units`` units in a process of its own: seconds, and memory at
    its peak beyond what the process held once its imports were done (bounded by a window, not the store)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.zarr"
        t = time.perf_counter()
        synthetic_store(path, n_units, np.random.default_rng(1))
        build_s = time.perf_counter() - t
        disk_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2 ** 20
        out = subprocess.run([sys.executable, "-c", _MERGE_ALONE, str(path)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(units=n_units, store_mb=round(disk_mb, 1), build_s=build_s,
             merge_memory_mb=round(r["peak_rss_mb"] - r["rss_before_mb"], 1))
    print(f"  merge of a {n_units:,}-unit store ({disk_mb:.0f} MB on disk, built in {build_s:.0f} s): "
          f"{r['merge_s']:.2f} s, {r['merge_memory_mb']:.0f} MB beyond the imports", flush=True)
    return r


def bench_cache(n_entries: int, per_file: int = 256, lookups: int = 2048) -> dict:
    """Opening a verdict cache of ``n_entries`` fast-mode verdicts (written by the real writer, ``per_file`` to a
    file as committed chunks write them) the way a shard opens it, then one chunk's worth of lookups."""
    from judgelm.judging.verdict_cache import Entry, VerdictCache

    decoding = {"mode": "fast", "max_new_tokens": 16}
    with tempfile.TemporaryDirectory() as tmp:
        writer = VerdictCache(Path(tmp), "judge", decoding)
        for start in range(0, n_entries, per_file):
            for i in range(start, min(n_entries, start + per_file)):
                writer.stage(writer.key([i, 17, 4, 9]), Entry(f"{i % 10} {(i * 7) % 10}\n", [23, 7 + i % 3, 12, 2]))
            writer.flush()
            writer.flushed.clear()  # a writer keeps what it wrote; this one writes for others
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.jsonl"))
        t, cpu = time.perf_counter(), time.process_time()
        cache = VerdictCache.open(tmp, "judge", decoding)
        open_s, open_cpu_s = time.perf_counter() - t, time.process_time() - cpu
        probe = np.random.default_rng(0).integers(0, 2 * n_entries, lookups)  # half of them are misses
        t = time.perf_counter()
        hits = sum(cache.get(cache.key([int(i), 17, 4, 9])) is not None for i in probe)
        lookup_s = time.perf_counter() - t
    out = {"entries": len(cache), "files": -(-n_entries // per_file), "bytes": size, "open_s": open_s,
           "open_cpu_s": open_cpu_s, "lookups": lookups, "hits": hits, "lookup_us": 1e6 * lookup_s / lookups}
    print(f"  verdict cache of {out['entries']:,} entries ({out['files']} files, {size / 2**20:.0f} MiB): opened in "
          f"{open_s:.2f} s ({open_cpu_s:.2f} s CPU), {out['lookup_us']:.0f} µs per lookup", flush=True)
    return out


def judgelm_metrics_from_store(path: Path) -> dict:
    """Only JudgeLM's metrics, straight from the store's arrays: what the JSONL route computes, nothing more."""
    from judgelm.data.verdicts import win_array
    from judgelm.judging.store import VerdictStore
    from judgelm.scoring.metrics import judgelm_metrics

    store = VerdictStore(path)
    order, record, scores = store.units("order"), store.units("record"), store.verdicts("scores")
    seq, rev = order == 0, order == 1  # one reference mode here: the two orders of a record are adjacent
    return judgelm_metrics(store.records("label")[record[seq]].astype(np.int64), win_array(scores[seq]),
                           win_array(scores[rev]))


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def vllm_table(rows: list[dict]) -> str:
    """Ours against vLLM: units per second of wall time (per CPU second); × is ours / vLLM for each."""
    lines = ["| model | workload | mode | units | ours, sharing off | vLLM, caching off | × wall (CPU) | "
             "ours, sharing on | vLLM, caching on | × wall (CPU) |", "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(r: dict, key: str) -> str:
        return f"{r.get(f'{key}_units_per_s', 0):.2f} ({r.get(f'{key}_units_per_cpu_s', 0):.2f})"

    def times(r: dict, ours: str, peer: str) -> str:
        return (f"{ratio(r[f'{ours}_units_per_s'], r.get(f'{peer}_units_per_s'))} "
                f"({ratio(r[f'{ours}_units_per_cpu_s'], r.get(f'{peer}_units_per_cpu_s'))})")

    for r in rows:
        new = r["hf_shared_new_tokens"] / r["units"]
        lines.append(f"| {r['model']} ({r['params_m']}M) | {r['workload']} | {r['mode']} (≤{r['max_new_tokens']}, "
                     f"mean {new:.1f} new) | {r['units']} | {cell(r, 'hf')} | {cell(r, 'vllm')} | "
                     f"{times(r, 'hf', 'vllm')} | {cell(r, 'hf_shared')} | {cell(r, 'vllm_cached')} | "
                     f"{times(r, 'hf_shared', 'vllm_cached')} |")
    return "\n".join(lines)


def table(rows: list[dict], merge: dict | None, cache: dict | None = None, scale: list[dict] = ()) -> str:
    head = ("| model | mode | units | ours units/s | ours tok/s | reference tok/s | × reference (per token) | "
            "ceiling tok/s (best rows) | % of ceiling |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in (r for r in rows if "ceiling" in r):
        c = r["ceiling"]
        lines.append(f"| {r['model']} ({r['params_m']}M) | {r['mode']} (≤{r['max_new_tokens']}, mean "
                     f"{r['mean_new_tokens']:.1f} new) | {r['units']} | "
                     f"{r['ours_units_per_s']:.2f} | {r['ours_tokens_per_s']:.0f} | "
                     f"{r['reference_tokens_per_s']:.0f} | "
                     f"{r['speedup_vs_reference']:.1f} | {c['tokens_per_s']:.0f} ({c['rows']} rows) | "
                     f"{100 * r['fraction_of_ceiling']:.1f} |")
    if merge:
        lines.append(f"\nStore of {merge['units']:,} units: full merge (every metric, bootstrap intervals, benchmark "
                     f"protocols) {merge['merge_s']:.2f} s; JudgeLM's metrics from the store "
                     f"{merge['judgelm_metrics_from_store_s']:.3f} s vs from JudgeLM's JSONL files "
                     f"{merge['jsonl_s']:.2f} s (× {merge['speedup_same_metrics']:.0f}; "
                     f"× {merge['speedup_full_merge']:.1f} for the full merge); "
                     f"identical: {merge['same_metrics']}; chunk checksums: the full merge "
                     f"{merge['merge_cpu_s']:.2f} s CPU with them, {merge['merge_cpu_s_without_checksums']:.2f} s "
                     f"without; make verify {merge['verify_s']:.2f} s")
    for r in scale:
        lines.append(f"\nStore of {r['units']:,} units ({r['store_mb']:.0f} MB on disk) merged alone: "
                     f"{r['merge_s']:.2f} s, {r['merge_memory_mb']:.0f} MB beyond the imports")
    if cache:
        lines.append(f"\nVerdict cache of {cache['entries']:,} entries in {cache['files']:,} files "
                     f"({cache['bytes'] / 2**20:.0f} MiB): opened in {cache['open_s']:.2f} s "
                     f"({cache['open_cpu_s']:.2f} s CPU), {cache['lookup_us']:.0f} µs per lookup")
    return "\n".join(lines)


@dataclass
class BenchConfig:
    models: list[str] = field(default_factory=lambda: ["tiny", "llama-50m"])
    """Models to time: ``tiny`` (the tiny judge) and ``llama-50m`` (a random-weight 50M Llama)."""
    judge: str = "models/tiny-judge"
    """The ``tiny`` model (and the 50M model's tokenizer)."""
    pairs: int = 32
    """PandaLM pairs judged by the engine (× 2 orders), tiny model."""
    reference_pairs: int = 8
    """Pairs judged by JudgeLM's one-at-a-time method."""
    pairs_big: int = 12
    """``pairs`` for the 50M model."""
    reference_pairs_big: int = 4
    """``reference_pairs`` for the 50M model."""
    full_new_tokens: int = 128
    """Generation limit in full mode."""
    repeats: int = 5
    """Timings are medians over this many repeats."""
    merge_units: int = 1_000_000
    """Units of the synthetic store merged against JudgeLM's JSONL route (with and without chunk checksums); 0 skips
    it."""
    merge_scale: list[int] = field(default_factory=lambda: [1_000_000, 10_000_000])
    """Stores merged alone in a fresh process for time and memory (empty: none)."""
    cache_entries: int = 1_000_000
    """Entries of the synthetic verdict cache opened; 0 skips the cache benchmark."""
    threads: int = 0
    """torch threads of this process; 0 leaves torch's default."""
    runs_dir: str = "runs"
    """Where ``bench-<time>/bench.json`` goes."""
    vllm_python: str = ""
    """The Python of vLLM's venv (``make vllm-env``); empty: no vLLM rows."""
    alpaca_eval: str = "data/evaluation/alpaca_eval"
    """AlpacaEval's ``<model>/annotations.json`` files, for the model-evaluation workload."""
    instructions: int = 4
    """AlpacaEval instructions (× 6 models × 2 orders)."""
    instructions_big: int = 2
    """``instructions`` for the 50M model."""
    max_prompt_tokens: int = 1536
    """Model-evaluation instructions must fit in this."""
    generation_questions: str = "data/evaluation/mt_bench/question.jsonl"
    """Questions of the generation workload (their first turns)."""
    questions: int = 32
    """Answers generated per repeat in the generation workload, tiny model (0: no generation rows)."""
    questions_big: int = 8
    """``questions`` for the 50M model."""
    generate_new_tokens: int = 256
    """Generation limit of the generation workload (answers of a few hundred tokens)."""
    e2e: list[str] = field(default_factory=lambda: ["judge", "evaluate"])
    """End-to-end rows: these default commands (``judge``, ``evaluate``) against their engine alone."""
    e2e_repeats: int = 2
    """Runs of each end-to-end command (each against the engine alone, interleaved)."""
    e2e_args: list[str] = field(default_factory=list)
    """Settings added to the end-to-end commands (``data.limit=100``); empty: their defaults, as users run them."""


def bench(argv: list[str]) -> int:
    args = load_config(BenchConfig, None, argv)
    if args.vllm_python and not os.access(args.vllm_python, os.X_OK):
        raise ConfigError(f"vllm_python={args.vllm_python} is not an executable; run `make vllm-env`")
    if args.threads:
        torch.set_num_threads(args.threads)
    hw = hardware()
    print(f"hardware: {hw}", flush=True)
    e2e = []
    for kind in args.e2e:
        print(f"  end to end: make {kind}", flush=True)
        e2e.append(bench_run(kind, args.e2e_repeats, args.e2e_args))
    rows: list[dict] = []
    for name in args.models:
        score_line = next((r["mean_new_tokens"] for r in rows if r["model"] == "tiny" and r["mode"] == "fast"
                           and r["workload"] == "pandalm"), None)
        model_rows, versions = bench_model(name, args, score_line)
        rows += model_rows
        hw["vllm"] = versions or hw.get("vllm")
    merge = bench_merge(args.merge_units, args.repeats) if args.merge_units else None
    scale = [bench_merge_scale(n) for n in args.merge_scale]
    cache = bench_cache(args.cache_entries) if args.cache_entries else None
    out_dir = Path(args.runs_dir) / time.strftime("bench-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True)
    report = {"hardware": hw, "args": asdict(args), "end_to_end": e2e, "engine": rows, "merge": merge,
              "merge_scale": scale, "cache": cache}
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print((e2e_table(e2e) + "\n\n" if e2e else "") + vllm_table(rows) + "\n\n" + table(rows, merge, cache, scale))
    print(f"\nwritten: {out_dir / 'bench.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(bench, __doc__, BenchConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
