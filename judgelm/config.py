"""Loading typed configs: a dataclass schema, YAML files from ``configs/``, and ``key=value`` overrides.

Each entry point has one schema (a dataclass whose fields carry their docstrings). YAML files fill it, a
``group=name`` argument picks a file from a config group (``cluster=slurm-ci`` loads
``configs/cluster/slurm-ci.yaml`` into the ``cluster`` field), and ``a.b=value`` overrides any field. OmegaConf
checks every key and type against the schema, so a typo fails at once with the key's name instead of being
ignored on a cluster an hour later.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that cannot be used, named by its key."""


def load_config(schema: type[T], base: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                groups: tuple[str, ...] = ()) -> T:
    """Build a typed config from ``schema``, the ``base`` YAML file, group selections and overrides.

    ``groups`` names the fields that are config groups: an override ``name=value`` for such a field (no dot)
    loads ``configs/<name>/<value>.yaml`` into it before the other overrides apply.
    """
    cfg = OmegaConf.structured(schema)
    if base is not None:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(base))
    plain = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        if key in groups:
            path = CONFIG_DIR / key / f"{value}.yaml"
            if not path.is_file():
                choices = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
                raise ConfigError(f"no {key} config '{value}' (choices: {', '.join(choices)})")
            cfg = OmegaConf.merge(cfg, {key: OmegaConf.load(path)})
        else:
            plain.append(item)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(plain))
    except Exception as e:  # omegaconf's errors name the key; keep that message, drop the traceback noise
        raise ConfigError(str(e).split("\n")[0]) from None
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_hash(cfg: Any) -> str:
    """A short, stable fingerprint of a resolved config, shown in Slurm comments and run summaries."""
    return hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:12]


def from_yaml(schema: type[T], path: str | Path) -> T:
    """Read back a resolved config saved with ``to_yaml`` (e.g. a run's ``config.yaml``)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path)))  # type: ignore
