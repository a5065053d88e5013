"""The package's folders are the pipeline's stages, and imports flow one way through them.

Every import inside ``judgelm`` (module level, inside functions and under ``TYPE_CHECKING`` alike) may name only its
own stage or an earlier one, the library never imports the launcher, no two modules import each other through any
chain, and the merge, status, report and launchers start without torch.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The data flow: what goes in, how a judge is asked, the model that answers, running it and storing the verdicts,
# the numbers computed from them, the files a run ends with; training reuses all of it. ``cli`` sits on top.
STAGES = ("judgelm.config", "judgelm.rundir", "judgelm.data", "judgelm.profiles", "judgelm.inference",
          "judgelm.judging", "judgelm.generation", "judgelm.scoring", "judgelm.results", "judgelm.train",
          "judgelm.cli")
ROOT_MODULES = {"__init__.py", "config.py", "rundir.py", "cli.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``judgelm``/``launch`` module ``path`` imports, resolved to absolute names."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
            out.update(n if (REPO / n.replace(".", "/")).with_suffix(".py").exists()
                       or (REPO / n.replace(".", "/")).is_dir() else base for n in names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("judgelm", "launch")}


def stage(module: str) -> int:
    matches = [i for i, s in enumerate(STAGES) if module == s or module.startswith(s + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no stage: add its folder to STAGES in {Path(__file__).name}")
    return matches[-1]


MODULES = {module_name(p): p for p in sorted((REPO / "judgelm").rglob("*.py"))}
GRAPH = {m: imports_of(p) for m, p in MODULES.items()}


def test_root_holds_a_handful_of_modules():
    assert {p.name for p in (REPO / "judgelm").glob("*.py")} <= ROOT_MODULES


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "judgelm"))
def test_imports_flow_one_way(module):
    late = sorted(i for i in GRAPH[module] if i.startswith("launch") or stage(i) > stage(module))
    assert not late, f"{module} imports a later stage: {late}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over module imports; a package's ``__init__`` re-exporting its own
    modules is not a cycle, so edges from a module to its own package are left out."""
    graph = {m: {i for i in deps if i in MODULES and not m.startswith(i + ".")} for m, deps in GRAPH.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


# The launchers too: a local run's worker imports torch while its launcher waits, and on Slurm the launcher runs
# on a login node; torch in the launcher was 1.3 of make evaluate's 2.2 s of imports.
@pytest.mark.parametrize("module", ["judgelm", "judgelm.results.merge", "judgelm.results.report",
                                    "launch.status", "launch.report", "launch.judge", "launch.evaluate",
                                    "launch.generate"])
def test_reading_a_run_needs_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} loads torch"


# scipy.optimize and scipy.stats took 0.6 of the 2.1 s make evaluate spent before submitting; the launcher imports
# them in the background while the shards run (launch.submission.RunKind.close_ready).
@pytest.mark.parametrize("module", ["launch.judge", "launch.evaluate"])
def test_a_launcher_submits_before_importing_scipys_solvers(module):
    code = f"import sys, {module}; print(sorted(m for m in ('scipy.optimize', 'scipy.stats') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"importing {module} loads {out.stdout.strip()}"


def test_a_local_workers_result_unpickles_without_torch():
    """When a local run ends its launcher reads the worker's result (``ShardResult``s, as a shard returns them):
    that import of torch (and transformers) was 1.2 s of every local run's close."""
    from judgelm.judging.shard import ShardResult
    blob = pickle.dumps([ShardResult(shard=0, units_total=4, units_done=4, units_judged=4, interrupted=False)])
    code = f"import pickle, sys; pickle.loads({blob!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
