"""The trained model as a plain Hugging Face directory: ``from_pretrained(dir)`` for model and tokenizer.

Under ZeRO-3 the weights are gathered layer by layer onto rank 0 first. Directories are written next to their
destination and renamed into place, so a reader never sees half an export.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from judgelm.train import distributed


def replace_dir(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``; an existing ``final`` is moved aside first and deleted after."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)


def export_model(backend, tokenizer, out: Path, is_main: bool) -> None:
    """Collective: every rank must call it (ZeRO-3 gathers the weights)."""
    state = backend.full_state_dict()
    if is_main:
        model = backend.unwrapped()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        dtype = next(iter(state.values())).dtype
        model.config.use_cache = True  # training turned it off; generation wants it
        model.config.dtype = dtype
        model.save_pretrained(tmp, state_dict=state)  # safetensors
        tokenizer.save_pretrained(tmp)
        replace_dir(tmp, out)
    distributed.barrier()


def publish(src: Path, dst: Path) -> None:
    """Copy an export to where consumers look for it (e.g. ``artifacts/tiny-judge``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    replace_dir(tmp, dst)

