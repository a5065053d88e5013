"""Loading typed configs: a dataclass schema, YAML files from ``configs/``, and ``key=value`` overrides.

Each entry point has one schema (a dataclass whose fields carry their docstrings). YAML files fill it, a
``group=name`` argument picks a file from a config group (``cluster=slurm-ci`` loads
``configs/cluster/slurm-ci.yaml`` into the ``cluster`` field), and ``a.b=value`` overrides any field. OmegaConf
checks every key and type against the schema, so a typo fails at once with the key's name instead of being
ignored on a cluster an hour later.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that cannot be used, named by its key."""


def _explain(e: OmegaConfBaseException, where: str = "") -> ConfigError:
    """OmegaConf's first line plus the key it failed on, as one sentence a user can act on."""
    key = getattr(e, "full_key", None)
    first = str(e).split("\n")[0]
    if type(e).__name__ == "ConfigKeyError":
        first = f"unknown setting '{key}' (see --help for the settings there are)"
    elif key:
        first = f"{key}: {first}"
    return ConfigError(f"{where}{first}")


def group_choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def load_group(group: str, name: str) -> DictConfig:
    """``configs/<group>/<name>.yaml``, or a ``ConfigError`` that lists the choices."""
    path = CONFIG_DIR / group / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise ConfigError(f"no {group} config '{name}' (choices: {', '.join(group_choices(group))})")
    try:
        return OmegaConf.load(path)  # type: ignore[return-value]
    except Exception as e:  # a YAML syntax error in a shipped or user-added profile
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None


def load_config(schema: type[T], base: str | Path | DictConfig | None, overrides: list[str] | tuple[str, ...] = (),
                groups: tuple[str, ...] = ()) -> T:
    """Build a typed config from ``schema``, the ``base`` YAML file, group selections and overrides.

    ``groups`` names the fields that are config groups: an override ``name=value`` for such a field (no dot)
    loads ``configs/<name>/<value>.yaml`` into it before the other overrides apply.
    """
    cfg = OmegaConf.structured(schema)
    plain = []
    try:
        if base is not None:
            cfg = OmegaConf.merge(cfg, base if isinstance(base, DictConfig) else OmegaConf.load(base))
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"'{item}' is not of the form key=value")
            if key in groups:
                cfg = OmegaConf.merge(cfg, {key: load_group(key, value)})
            else:
                plain.append(item)
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(plain))
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise _explain(e) from None


def load_saved(schema: type[T], path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """A config saved with ``to_yaml`` read back into ``schema``; keys of a wider schema (a launcher's) are
    ignored, so the library reads its part of a run's ``config.yaml`` and the launcher all of it.

    Read once per process while the file is unchanged: a local worker runs several shards of a run one after the
    other, and once torch is imported omegaconf takes ~0.14 s to read a run's config (0.03 s before), each time
    with the engine idle. Each caller gets its own copy."""
    st = Path(path).stat()
    return copy.deepcopy(_read_saved(schema, Path(path), tuple(overrides), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=16)
def _read_saved(schema: type[T], path: Path, overrides: tuple[str, ...], mtime_ns: int, size: int) -> T:
    saved, known = OmegaConf.load(path), OmegaConf.structured(schema)
    mine = OmegaConf.masked_copy(saved, [k for k in saved if k in known])
    return load_config(schema, mine, overrides)  # type: ignore[arg-type]


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_hash(cfg: Any) -> str:
    """A short, stable fingerprint of a resolved config, shown in Slurm comments and run summaries."""
    return hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:12]
