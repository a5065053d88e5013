"""The docs check: every command in a ```bash block of README.md and docs/*.md runs as written, or is marked.

A command is a line of a ```bash block (with its ``\\`` continuation lines); a trailing comment may mark it:

- ``# dry-run``: needs a GPU or a real cluster. It runs here with ``DRY_RUN=1``, so its make target must pass
  ``DRY_RUN`` on (``dry_run=true``: the resolved config and the plan, nothing submitted).
- ``# test: tests/test_x.py::test_name``: too long for this check; that test exists and runs the same thing (the
  command's make target, or its entry point, appears in the test's source).
- ``# not-run: <reason>``: cannot run on this machine (an install on a GPU node, a model only the Hub has); the
  reason is required.

Every other command runs as written in a scratch copy of the repository (one per page, so a page's commands run in
order and may use what an earlier one made) with this interpreter as ``PYTHON`` and the Hub offline, and must exit
0. Commands that judge or train are marked slow here; those on ``CLUSTER=slurm-ci`` need the local Slurm cluster.
Every ``make`` command, whatever its mark, must name a target the Makefile has, make variables the Makefile uses, and
``ARGS="key=value …"`` settings its entry point knows, so a renamed option fails here. Plain ``` blocks (output
examples) are not commands.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MAKEFILE = (REPO / "Makefile").read_text()
MARK = re.compile(r"#\s*(dry-run|test:|not-run:)\s*(.*?)\s*$")
# Entry points that judge or train: slow on this 2-core machine, so outside the fast suite.
SLOW = {"launch.judge", "launch.evaluate", "launch.benchmark", "launch.train", "launch.panel", "launch.resubmit",
        "launch.bench", "launch.gpu_check"}
COPIED = ("Makefile", "pyproject.toml", "README.md", "configs", "docs", "judgelm", "launch", "slurm")
LINKED = ("data", "models", "tests")  # large or read-only: the scratch copy links them


@dataclass(frozen=True)
class Command:
    page: str  # relative to the repository
    line: int
    text: str  # as bash gets it, continuation lines included
    mark: str  # "", "dry-run", "test:" or "not-run:"
    arg: str  # the test named by "test:", the reason of "not-run:"

    @property
    def words(self) -> list[str]:
        """The command's words, without its comment and any leading ``VAR=value`` environment."""
        words = shlex.split(self.text.replace("\\\n", " "), comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words.pop(0)
        return words

    @property
    def target(self) -> str | None:
        words = self.words
        return next((w for w in words[1:] if "=" not in w), None) if words[:1] == ["make"] else None

    def make_vars(self) -> dict[str, str]:
        return dict(w.split("=", 1) for w in self.words[1:] if "=" in w) if self.target else {}


def bash_commands(page: Path) -> list[Command]:
    """The commands of ``page``'s ```bash blocks, in order."""
    out, fence, pending, start = [], None, [], 0
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip()[3:].strip()
            continue
        if fence != "bash" or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
            continue
        if not pending:
            start = n
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        mark = MARK.search(line)
        out.append(Command(str(page.relative_to(REPO)), start, "\n".join(pending), mark.group(1) if mark else "",
                           mark.group(2) if mark else ""))
        pending = []
    return out


COMMANDS = [c for page in PAGES for c in bash_commands(page)]


def makefile_recipe(target: str) -> str:
    """The recipe lines of ``target`` (following a recipe that only calls ``$(MAKE) … other``)."""
    m = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)*)", MAKEFILE, re.M)
    assert m, f"the Makefile has no target {target!r}"
    recipe = m.group(1)
    sub = re.search(r"\$\(MAKE\)[^\n]*?\s([a-z][a-z-]*)(?=\s|$)", recipe)
    return recipe + (makefile_recipe(sub.group(1)) if sub else "")


def entry_point(target: str) -> str | None:
    m = re.search(r"-m (launch\.\w+)", makefile_recipe(target))
    return m.group(1) if m else None


@cache
def settings_of(module: str) -> str:
    """An entry point's ``--help`` (its settings with their defaults), from its own ``main``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert importlib.import_module(module).main(["--help"]) == 0
    return out.getvalue()


def check_settings(module: str, args: list[str], where: str) -> None:
    for arg in args:
        key, sep, value = arg.partition("=")
        assert sep, f"{where}: '{arg}' is not key=value"
        if module == "launch.train":  # it takes its settings with or without the issue's ``train.`` prefix
            key = key.removeprefix("train.")
        if (REPO / "configs" / key).is_dir():  # a config group: cluster=NAME
            assert (REPO / "configs" / key / f"{value}.yaml").is_file(), f"{where}: no configs/{key}/{value}.yaml"
        else:
            assert f"  {key}=" in settings_of(module), f"{where}: {module} has no setting {key!r}"


def check_statically(c: Command) -> None:
    """The options a command names still exist: make target and variables, entry-point settings."""
    where = f"{c.page}:{c.line}"
    words = c.words
    if c.target:
        makefile_recipe(c.target)
        for name in c.make_vars():
            assert f"$({name})" in MAKEFILE or f"origin {name}" in MAKEFILE, \
                f"{where}: the Makefile uses no variable {name}"
        module = entry_point(c.target)
        if module and "ARGS" in c.make_vars():
            check_settings(module, shlex.split(c.make_vars()["ARGS"]), where)
    elif words[:2] == ["python", "-m"] and words[2].startswith("launch."):
        check_settings(words[2], [w for w in words[3:] if not w.startswith("-")], where)


@cache
def scratch_repo(page: str, root: Path) -> Path:
    """A copy of the repository for one page's commands: what they write stays there."""
    dest = root / page.replace("/", "_")
    dest.mkdir(parents=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    for name in LINKED:
        (dest / name).symlink_to(REPO / name)
    return dest


def run(c: Command, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    # As in an activated venv: `python`, `judgelm` and `make`'s PYTHON are this interpreter's.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, "PATH": path, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(["bash", "-c", c.text], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=1800)


def named_test_source(spec: str, where: str) -> str:
    """The source of the test ``tests/test_x.py::test_name``."""
    path, _, name = spec.partition("::")
    assert (REPO / path).is_file(), f"{where}: no test file {path}"
    text = (REPO / path).read_text()
    for f in ast.walk(ast.parse(text)):
        if isinstance(f, ast.FunctionDef) and f.name == name:
            return ast.get_source_segment(text, f) or ""
    raise AssertionError(f"{where}: no test {spec}")


def essential_parts(c: Command) -> list[str]:
    """What a test must name to stand for ``c``: its make target or its entry point (``launch.status`` or
    ``status``), else the program it runs."""
    names = [x for x in (c.target, program(c)) if x]
    return [*names, *(n.rpartition(".")[2].replace("-", "_") for n in names)] or c.words[:1]


def program(c: Command) -> str | None:
    """The entry point a command runs: its make target's, or the module of ``python -m``."""
    if c.target:
        return entry_point(c.target)
    words = c.words
    return words[2] if words[:2] == ["python", "-m"] and len(words) > 2 else None


def own_marks(c: Command) -> set[str]:
    marks = set()
    if not c.mark and program(c) in SLOW and "DRY_RUN" not in c.make_vars():
        marks.add("slow")
    if not c.mark and c.make_vars().get("CLUSTER") == "slurm-ci":
        marks |= {"slurm", "slow"}
    return marks


def marks_of(c: Command) -> set[str]:
    """A command's own marks, and those of the earlier commands of its page that made the run it names
    (``RUN=name`` or ``runs/name``): a run the fast suite never judged cannot be followed there."""
    makers = [m for m in COMMANDS[:COMMANDS.index(c)] if m.page == c.page and m.make_vars().get("RUN")
              and re.search(rf"(RUN=|runs/){re.escape(m.make_vars()['RUN'])}\b", c.text)]
    return own_marks(c).union(*map(own_marks, makers))


@pytest.fixture(scope="session")
def scratch_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs")


@pytest.mark.parametrize("c", [pytest.param(c, id=f"{c.page}:{c.line}",
                                             marks=[getattr(pytest.mark, m) for m in sorted(marks_of(c))])
                               for c in COMMANDS])
def test_documented_command(c: Command, scratch_root, request):
    check_statically(c)
    where = f"{c.page}:{c.line}"
    if c.mark == "not-run:":
        assert c.arg, f"{where}: '# not-run:' needs a reason"
        return
    if c.mark == "test:":
        source = named_test_source(c.arg, where)
        essential = essential_parts(c)
        assert any(e in source for e in essential), f"{where}: {c.arg} does not run {' or '.join(essential)}"
        return
    if "slurm" in marks_of(c):
        request.getfixturevalue("slurm_cluster")
    env = {}
    if c.mark == "dry-run":
        assert c.target and "DRY_RUN" in makefile_recipe(c.target), \
            f"{where}: '# dry-run' needs a make target that passes DRY_RUN on"
        env["DRY_RUN"] = "1"
    out = run(c, scratch_repo(c.page, scratch_root), **env)
    said = out.stdout + out.stderr
    assert out.returncode == 0, f"{where}: `{c.text}` exited {out.returncode}:\n{said[-3000:]}"
    assert "Traceback (most recent call last)" not in said, f"{where}:\n{said[-3000:]}"


def test_the_check_finds_commands_on_every_page():
    assert {c.page for c in COMMANDS} == {str(p.relative_to(REPO)) for p in PAGES}


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_every_docs_page_starts_with_its_commands(page):
    lines = [x for x in page.read_text().splitlines() if x.strip()]
    assert lines[0].startswith("# ") and lines[1] == "```bash", f"{page.name}: the title, then a ```bash block"


def test_readme_is_short_and_starts_with_the_two_set_up_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first = bash_commands(REPO / "README.md")[:2]
    assert [c.target for c in first] == ["judge", "test"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: link to {target}: no such file"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", dest.read_text(), re.M)
                assert anchor in {slug(h) for h in headings}, f"{page.name}: link to {target}: no such heading"


def test_pages_named_in_code_and_docs_exist():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if (src.suffix not in (".py", ".md", ".yaml", ".toml", ".sh") and src.name != "Makefile"
                or name.startswith(("data/", "tests/golden/")) or not src.is_file()):
            continue  # shipped data and golden files quote other projects' paths
        for page in re.findall(r"docs/([\w-]+\.md)", src.read_text(errors="replace")):
            assert (REPO / "docs" / page).is_file(), f"{name} names docs/{page}, which is missing"


def test_make_help_prints_the_command_table():
    out = subprocess.run(["make", "-s", "help", f"PYTHON={sys.executable}"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    readme = (REPO / "README.md").read_text()
    rows = [line for line in readme.split("## Commands", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| `make")]
    assert rows and all(row in out.stdout for row in rows)
