"""The profile lock: the content hash of every profile version ever shipped (devices/profiles.lock.json).

Every reading carries its profile as a tag (`profile=name@version`): it says how the reading was
decoded. That holds only if a version means one decoding for ever, so a profile whose content changes
must get a new version, and the old version's file stays (readings already stored keep it). The lock
makes both rules checkable: `jieshui profiles lock --check` (and a test) fails when a locked version's
content changed or its file is gone; `jieshui profiles lock` records new versions and never rewrites an
existing entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from devices.profile import PROFILE_DIR, load_profile_file
from jieshui.errors import ProfileError

LOCK_FILE = PROFILE_DIR.parent / "profiles.lock.json"


def content_hash(path: Path) -> str:
    """SHA-256 of a profile file's data as parsed (its comments and layout do not count)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def versions(directory: Path = PROFILE_DIR) -> dict[str, str]:
    """`name@version` -> content hash of every profile file (`load_profiles` has validated them)."""
    return {load_profile_file(path).ref: content_hash(path) for path in sorted(directory.glob("*.yaml"))}


def problems(current: Mapping[str, str], locked: Mapping[str, str]) -> list[str]:
    """What breaks the rules, one message per profile version (empty: the lock holds)."""
    out = []
    for ref, digest in sorted(locked.items()):
        if ref not in current:
            out.append(
                f"{ref} is locked but no profile file defines it any more: keep old versions (stored "
                f"readings carry {ref})"
            )
        elif current[ref] != digest:
            version = ref.partition("@")[2]
            out.append(
                f"{ref} changed since it was locked: give the changed profile version {int(version) + 1} "
                f"(readings already stored keep {ref}, decoded the old way)"
            )
    out.extend(
        f"{ref} is not in the lock: run `jieshui profiles lock`" for ref in sorted(set(current) - set(locked))
    )
    return out


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """The lock file's entries ({} when there is none yet)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError(f"profile lock {path}: {exc}") from exc
    return {str(k): str(v) for k, v in data.items()}


def updated_lock(current: Mapping[str, str], locked: Mapping[str, str]) -> dict[str, str]:
    """The lock with new versions added; raise ProfileError if a locked version changed or vanished."""
    broken = [p for p in problems(current, locked) if "is not in the lock" not in p]
    if broken:
        raise ProfileError("; ".join(broken))
    return dict(sorted({**locked, **current}.items()))


def write_lock(entries: Mapping[str, str], path: Path = LOCK_FILE) -> None:
    """Write the lock (sorted, one entry a line)."""
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n", encoding="utf-8")
