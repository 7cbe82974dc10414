"""``python -m polyexp.plugins [GROUP]``: every option of every config group, with its fields.

For each plugin: its name, where it comes from (built in, or the installed package that declares
it), its summary, and each field's type, default and bounds.
"""

from __future__ import annotations

import sys

from polyexp.core.errors import PolyexpError
from polyexp.core.registry import import_plugin_modules
from polyexp.core.settings import GROUPS


def describe(groups: list[str] | None = None) -> str:
    import_plugin_modules()
    lines: list[str] = []
    for registry in GROUPS:
        if groups and registry.group not in groups:
            continue
        lines.append(f"{registry.group}  (choose with {registry.group}=NAME, set fields with "
                     f"{registry.group}.FIELD=VALUE)")
        for plugin in registry:
            asks = f" [asks for {', '.join(plugin.context)}]" if plugin.context else ""
            lines.append(f"  {plugin.name}  [{plugin.source}]{asks}  {plugin.summary}")
            lines += [f"      {p.name}: {p.describe()}" for p in plugin.params]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    groups = sys.argv[1:] if argv is None else argv
    known = {r.group for r in GROUPS}
    unknown = [g for g in groups if g not in known]
    if unknown:
        print(f"unknown group {unknown[0]!r}; groups: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    try:
        print(describe(groups))
    except PolyexpError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
