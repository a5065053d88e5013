"""The trained model as a plain Hugging Face directory: ``from_pretrained(dir)`` for model and tokenizer.

Under ZeRO-3 the weights are gathered layer by layer onto rank 0 first. A LoRA run exports its adapter too
(``judgelm.train.adapters``). Directories are written next to their destination and renamed into place, so a
reader never sees half an export.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from judgelm.train import distributed
from judgelm.train.adapters import is_peft, merge_adapter, save_adapter


def replace_dir(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``; an existing ``final`` is moved aside first and deleted after."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)


def export_model(backend, tokenizer, out: Path, is_main: bool, adapter_out: Path | None = None,
                 base_path: str = "") -> None:
    """Collective: every rank must call it (ZeRO-3 gathers the weights). With adapters, ``adapter_out`` gets the
    adapter and ``out`` the weights merged into the base (``base_path``)."""
    state = backend.full_state_dict()
    if is_main:
        model = backend.unwrapped()
        if is_peft(model):
            written(adapter_out, lambda tmp: save_adapter(model, state, tokenizer, tmp, base_path))
            written(out, lambda tmp: merge_adapter(adapter_out, tmp))
        else:
            def save_full(tmp: Path) -> None:
                model.config.use_cache = True  # training turned it off; generation wants it
                model.config.dtype = next(iter(state.values())).dtype
                model.save_pretrained(tmp, state_dict=state)  # safetensors
                tokenizer.save_pretrained(tmp)
            written(out, save_full)
    distributed.barrier()


def written(final: Path, write) -> None:
    """``write(tmp)`` into a directory beside ``final``, then moved into place."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    replace_dir(tmp, final)


def publish(src: Path, dst: Path) -> None:
    """Copy an export to where consumers look for it (e.g. ``artifacts/tiny-judge``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    written(dst, lambda tmp: shutil.copytree(src, tmp))

