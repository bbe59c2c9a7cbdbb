"""One settings record per method: a frozen dataclass whose fields carry the default, a
help line and the command-line type, so defaults, CLI flags and JSON params all come
from the same place.

    @dataclass(frozen=True)
    class OcclusionSettings:
        window: int | None = setting(None, "patch side in pixels (default: H // 7)", "positive_int")

`flag_specs(OcclusionSettings)` lists (name, default, help, kind) for the CLI;
`asdict(settings)` is the JSON `params`.
"""
from __future__ import annotations

from dataclasses import field, fields

__all__ = ["setting", "flag_specs"]


def setting(default, help: str, kind: str | None = None):
    """A settings field: default value, help line, and the CLI argument type by name
    (a function of gradscope.cli.args, e.g. 'positive_int'; None: str)."""
    return field(default=default, metadata={"help": help, "kind": kind})


def flag_specs(record) -> list:
    """(name, default, help, kind) of each field of a settings record class."""
    return [(f.name, f.default, f.metadata.get("help", ""), f.metadata.get("kind")) for f in fields(record)]
