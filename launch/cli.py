"""The one command-line convention of every entry point: ``key=value`` settings, ``--help``, one-line errors.

A user's mistake (an unknown setting, a value of the wrong type, a missing file, a bad record) ends with one line
on stderr that says what and where, and exit code 2; ctrl-C ends with exit code 130 and the entry point's own
advice on how to continue. ``JUDGELM_DEBUG=1`` lets the traceback through, for bug reports.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import logging
import os
import sys
import textwrap
from collections.abc import Callable

from judgelm.config import ConfigError
from judgelm.data.records import RecordError
from judgelm.rundir import Fault, environment_fault

USER_ERRORS = (ConfigError, RecordError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout, force=True)


def field_docs(schema: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and its bases), as the source writes it."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError):
            continue
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def settings_help(schema: type, prefix: str = "") -> list[str]:
    """One line per setting, nested dataclasses as ``a.b``, with its default and its docstring."""
    lines = []
    docs = field_docs(schema)
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        if dataclasses.is_dataclass(default):
            lines += settings_help(type(default), f"{prefix}{f.name}.")
            continue
        lines.append(f"  {prefix}{f.name}={default!s}".ljust(38) + f" {docs.get(f.name, '')}".rstrip())
    return lines


def run_main(main: Callable[[list[str]], int], doc: str | None, schema: type | None = None,
             argv: list[str] | None = None) -> int:
    """Run an entry point's ``main(argv)`` under the convention above. A ``KeyboardInterrupt`` raised with a
    message (how to continue what was interrupted) has it printed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(textwrap.dedent(doc or "").strip())
        if schema is not None:
            print("\nsettings (key=value):\n" + "\n".join(settings_help(schema)))
        return 0
    setup_logging()
    try:
        return main(argv)
    except USER_ERRORS as e:
        if os.environ.get("JUDGELM_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (Fault, OSError, MemoryError) as e:  # not the user's mistake, but the message is the whole story
        cause = str(e) if isinstance(e, Fault) else environment_fault(e)
        if cause is None or os.environ.get("JUDGELM_DEBUG") == "1":
            raise
        print(f"error: {cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\ninterrupted. {e}".rstrip(), file=sys.stderr)
        return 130


def exit_now(rc: int) -> None:
    """End an entry point's process with ``rc`` without tearing the interpreter down: unloading zarr, scipy and
    their threads takes seconds (more on a loaded machine) after everything is written, flushed and waited for."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(rc)
