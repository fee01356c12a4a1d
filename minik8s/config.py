"""Where clients find the apiservers.

In order: an explicit list (--server a,b,c), the MINIK8S_SERVERS variable,
then the config file named by MINIK8S_CONFIG or ~/.minik8s/config, which
`minik8s local-up` and `make up` write. The file is YAML:

    servers: ["127.0.0.1:6443", "127.0.0.1:6444", "127.0.0.1:6445"]
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml


class ConfigError(Exception):
    pass


def default_path() -> Path:
    return Path(os.environ.get("MINIK8S_CONFIG") or Path.home() / ".minik8s" / "config")


def split_servers(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def servers(flag: str | None = None) -> list[str]:
    """The apiserver endpoints to use; ConfigError naming what to do if none."""
    if flag:
        return split_servers(flag)
    if os.environ.get("MINIK8S_SERVERS"):
        return split_servers(os.environ["MINIK8S_SERVERS"])
    path = default_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"no apiserver given: use --server, set MINIK8S_SERVERS, or start a "
                          f"cluster with `make up` (which writes {path})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    found = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(found, list) or not found or not all(isinstance(s, str) for s in found):
        raise ConfigError(f"{path}: servers: must be a non-empty list of host:port strings")
    return found


def write(path: Path, server_list: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"servers": server_list}))
    path.chmod(0o600)
