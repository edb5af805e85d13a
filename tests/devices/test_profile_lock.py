"""The profile lock: a profile version means one decoding for ever (readings carry `profile=name@version`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devices import lock
from devices.profile import PROFILE_DIR
from jieshui.errors import ProfileError

ROOT = Path(__file__).parents[2]


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    copy = tmp_path / "profiles"
    shutil.copytree(PROFILE_DIR, copy)
    return copy


def test_the_shipped_profiles_are_as_locked() -> None:
    assert lock.problems(lock.versions(), lock.read_lock()) == []
    assert set(lock.read_lock()) >= {"hs-rp55@1", "wx-cw01@1"}


def test_a_changed_profile_with_the_same_version_is_refused(profiles: Path) -> None:
    path = profiles / "hs-rp55.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["quantities"][1]["max"] = 200  # the flow's range: a different decoding of the same registers
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    found = lock.problems(lock.versions(profiles), lock.read_lock())
    assert found == [
        "hs-rp55@1 changed since it was locked: give the changed profile version 2 (readings already "
        "stored keep hs-rp55@1, decoded the old way)"
    ]
    with pytest.raises(ProfileError, match="hs-rp55@1 changed since it was locked"):
        lock.updated_lock(lock.versions(profiles), lock.read_lock())


def test_a_new_version_beside_the_old_one_is_added_and_the_old_entry_kept(profiles: Path) -> None:
    data = yaml.safe_load((profiles / "hs-rp55.yaml").read_text(encoding="utf-8"))
    data["version"] = 2
    data["quantities"][1]["max"] = 200
    (profiles / "hs-rp55-v2.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    current, locked = lock.versions(profiles), lock.read_lock()
    assert lock.problems(current, locked) == ["hs-rp55@2 is not in the lock: run `jieshui profiles lock`"]
    updated = lock.updated_lock(current, locked)
    assert updated["hs-rp55@1"] == locked["hs-rp55@1"]
    assert updated["hs-rp55@2"] != updated["hs-rp55@1"]
    out = profiles / "lock.json"
    lock.write_lock(updated, out)
    assert lock.read_lock(out) == updated


def test_an_old_version_must_keep_its_file(profiles: Path) -> None:
    (profiles / "hs-rp55.yaml").unlink()
    assert lock.problems(lock.versions(profiles), lock.read_lock()) == [
        "hs-rp55@1 is locked but no profile file defines it any more: keep old versions (stored readings "
        "carry hs-rp55@1)"
    ]


def test_comments_and_layout_do_not_count(profiles: Path) -> None:
    path = profiles / "wx-cw01.yaml"
    path.write_text("# reviewed 2026-11-29\n" + path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert lock.problems(lock.versions(profiles), lock.read_lock()) == []


def test_the_command_checks_the_lock() -> None:
    done = subprocess.run([sys.executable, "-m", "jieshui.cli", "profiles", "lock", "--check"],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "profile versions, all as locked" in done.stdout
