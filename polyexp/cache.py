"""``python -m polyexp.cache [info|clear] [DIR]``: show or empty the trajectory cache.

The cache itself is ``polyexp.run.trajectory_cache``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from polyexp.run.trajectory_cache import TrajectoryCache, cache_dir


def describe_entry(path: Path, meta: dict[str, Any]) -> str:
    """Several lines: an entry's key, size and date, then the config, code, libraries and platform it was made with."""
    lines = [f"{path.stem}  {path.stat().st_size / 1e6:.1f} MB  {meta.get('created', '?')}"]
    if "error" in meta:
        return "\n".join([*lines, f"  {meta['error']}"])
    made_with = meta.get("made_with", {})
    config = made_with.get("config", {})
    groups = " ".join(f"{k}={v.get('name')}" for k, v in config.items() if isinstance(v, dict))
    settings = " ".join(f"{k}={v}" for k, v in config.items() if not isinstance(v, dict) and v is not None)
    lines.append(f"  config: {groups} {settings}".rstrip())
    for kind in ("libraries", "platform"):
        lines.append(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in made_with.get(kind, {}).items()))
    code = made_with.get("code", {})
    lines.append(f"  code: {len(code)} modules, " + ", ".join(f"{m} {h[:8]}" for m, h in code.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m polyexp.cache [info|clear] [DIR]``: show or empty the trajectory cache."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "info"
    root = cache_dir(args[1] if len(args) > 1 else None)
    cache = TrajectoryCache(root)
    if command == "clear":
        print(f"removed {cache.clear()} files from {cache.folder}")
    elif command == "info":
        entries = cache.entries()
        size = sum(path.stat().st_size for path, _ in entries)
        print(f"{cache.folder}: {len(entries)} trajectories, {size / 1e6:.1f} MB")
        for path, meta in entries:
            print(describe_entry(path, meta))
    else:
        print("usage: python -m polyexp.cache [info|clear] [DIR]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
