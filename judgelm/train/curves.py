"""The run's curves where users look for them: TensorBoard event files under the run, Weights & Biases on request.

Rank 0 writes; every other rank gets a writer that does nothing. TensorBoard (``torch.utils.tensorboard``, the
``tensorboard`` package's format) is on by default in ``<run>/tensorboard`` (``tensorboard --logdir runs/``). A
resumed run restarts its event file at the resumed step (``purge_step``), so the steps redone after the last
checkpoint replace the ones logged before the interruption instead of doubling them. W&B is imported only when
``report_to`` names it; its run id is derived from the run name so a requeued job continues the same W&B run, and
``wandb.mode=offline`` writes under ``<run>/wandb`` without any network call (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

from judgelm.config import ConfigError
from judgelm.train.config import TrainConfig


class Curves:
    """``log(step, {"train/loss": ...})`` to every configured sink; ``close()`` flushes them."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, enabled: bool, start_step: int):
        self.sinks: list = []
        if not enabled:
            return
        if "tensorboard" in cfg.report_to:
            from torch.utils.tensorboard import SummaryWriter

            # Steps after the checkpoint were logged by the attempt that stopped; they are redone.
            purge = start_step + 1 if start_step else None
            self.sinks.append(SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge))
        if "wandb" in cfg.report_to:
            self.sinks.append(_wandb_run(cfg, run_dir))

    def log(self, step: int, scalars: dict[str, float | None]) -> None:
        values = {k: float(v) for k, v in scalars.items() if v is not None}
        for sink in self.sinks:
            if hasattr(sink, "add_scalar"):
                for k, v in values.items():
                    sink.add_scalar(k, v, step)
                sink.flush()
            else:
                sink.log(values, step=step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close() if hasattr(sink, "add_scalar") else sink.finish()
        self.sinks = []


def _wandb_run(cfg: TrainConfig, run_dir: Path):
    try:
        import wandb
    except ImportError:
        raise ConfigError("report_to names wandb, which is not installed: pip install wandb "
                           "(or pip install -e .[wandb])") from None
    run_id = hashlib.sha1(f"{run_dir.resolve()}".encode()).hexdigest()[:16]
    return wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity or None, name=cfg.run, id=run_id,
                      resume="allow", dir=str(run_dir), config=asdict(cfg), mode=cfg.wandb.mode or None)
