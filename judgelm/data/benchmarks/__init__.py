"""Benchmarks shipped with the project, each converted into ``Record``s with its own label convention.

``load_dataset(spec)`` is the one entry point the pipeline uses. ``spec`` is one of:

- a benchmark name from ``BENCHMARKS`` (``pandalm``, ``llmbar``, ...), or ``name:ARG`` for one that needs a
  local path (``judgelm_val:/data/JudgeLM``, whose data is not shipped);
- a path to a JudgeLM-format JSON/JSONL file, or ``generic:MAPPING.yaml`` (or just the ``.yaml`` path) for the
  user's own data described by a mapping file (``judgelm.data.benchmarks.generic``);
- several of those joined by ``+``, each optionally limited to its first N records per subset with ``@N``
  (``pandalm@20+llmbar@5``): a suite judged in one run (``judgelm.data.benchmarks.suites``).

Every record's ``subset`` starts with its benchmark's name (``llmbar/Natural``, ``rewardbench/hep-go``), which is how
the merge finds the benchmark, and so its protocol, of every verdict in a mixed store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from judgelm.data.benchmarks.files import DATA_DIR
from judgelm.data.benchmarks.judgebench import load_judgebench
from judgelm.data.benchmarks.judgelm_val import load_judgelm_val
from judgelm.data.benchmarks.llmbar import load_llmbar, load_mtbench_human
from judgelm.data.benchmarks.pandalm import load_pandalm
from judgelm.data.benchmarks.prometheus import load_prometheus
from judgelm.data.benchmarks.rewardbench import load_rewardbench
from judgelm.data.records import Loaded, load_records

GENERIC_PREFIX = "generic:"


@dataclass(frozen=True)
class Benchmark:
    """A shipped benchmark: its loader, where its data lies, which prompt mode it needs and how it is scored.

    Adding one is a loader module plus one row of ``BENCHMARKS``. ``protocol`` names the scoring in
    ``judgelm.scoring.protocols``; ``mode`` is the ``prompt.mode`` its records must be judged with.
    """

    name: str
    loader: Callable[[Path, bool], Loaded]
    data: str  # below data/benchmarks/; empty for a benchmark whose data the user gives as ``name:PATH``
    protocol: str
    mode: str = "pair"
    needs_arg: str = ""  # what ``name:ARG`` must give, for benchmarks whose data is not shipped
    description: str = ""

    def __call__(self, skip_invalid: bool = False, arg: str | None = None) -> Loaded:
        if self.needs_arg and not arg:
            raise ValueError(f"benchmark '{self.name}' needs {self.needs_arg}: use '{self.name}:PATH'")
        if arg and not self.needs_arg:
            raise ValueError(f"benchmark '{self.name}' takes no argument (got '{arg}')")
        return self.loader(Path(arg) if arg else DATA_DIR / self.data, skip_invalid)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("pandalm", load_pandalm, "pandalm/testset-v1.json", "judgelm",
              description="PandaLM test set: 999 pairs, human majority vote, ties"),
    Benchmark("llmbar", load_llmbar, "llmbar", "llmbar",
              description="LLMBar Natural (100) and Adversarial Neighbor/GPTInst/GPTOut/Manual (319), no ties"),
    Benchmark("mtbench_human", load_mtbench_human, "llmbar", "llmbar",
              description="200 MT-Bench pairs with human expert majority labels (LLMBar's processed set)"),
    Benchmark("judgebench", load_judgebench, "judgebench", "judgebench",
              description="JudgeBench: 620 pairs with objectively correct labels, GPT-4o and Claude-3.5 responses"),
    Benchmark("rewardbench", load_rewardbench, "rewardbench", "rewardbench",
              description="RewardBench filtered: 2,985 chosen/rejected pairs in Chat, Chat Hard, Safety, Reasoning"),
    Benchmark("prometheus", load_prometheus, "prometheus", "correlation", mode="single",
              description="Prometheus absolute grading: 640 answers on MT-Bench and Vicuna-bench, GPT-4 1-5 scores"),
    Benchmark("judgelm_val", load_judgelm_val, "", "judgelm",
              needs_arg="the directory holding JudgeLM-100K's val files",
              description="JudgeLM val: 5,000 pairs, GPT-4 judgements with and without reference (not shipped)"),
)}


def benchmark_of(subset: str) -> str:
    """The benchmark a record belongs to, from its ``subset`` (``llmbar/Natural`` → ``llmbar``)."""
    return subset.split("/", 1)[0]


def absolute_spec(spec: str) -> str:
    """``spec`` with a file path (plain or after ``generic:``) made absolute, so that jobs starting in another
    directory (the run's frozen code copy) read the same file. Benchmark names and suites are returned as given."""
    prefix = GENERIC_PREFIX if spec.startswith(GENERIC_PREFIX) else ""
    path = Path(spec[len(prefix):])
    return prefix + str(path.resolve()) if path.exists() else spec


def load_dataset(spec: str, skip_invalid: bool = False) -> Loaded:
    """Records of a benchmark, a file, or a ``+``-joined suite of them (see the module docs)."""
    from judgelm.data.benchmarks.suites import is_combined, load_combined

    if is_combined(spec):
        return load_combined(spec, skip_invalid)
    if spec.startswith(GENERIC_PREFIX):
        from judgelm.data.benchmarks.generic import load_generic
        return load_generic(spec[len(GENERIC_PREFIX):], skip_invalid)
    name, _, arg = spec.partition(":")
    if name in BENCHMARKS:
        return BENCHMARKS[name](skip_invalid, arg or None)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"'{spec}' is neither a benchmark ({', '.join(sorted(BENCHMARKS))}) nor a file")
    if path.suffix in (".yaml", ".yml"):
        from judgelm.data.benchmarks.generic import load_generic
        return load_generic(path, skip_invalid)
    return load_records(path, skip_invalid)
