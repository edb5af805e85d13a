"""Load and validate device profiles (`devices/profiles/*.yaml`) into pydantic models.

Profiles are data, not code: a new meter model is a new file. A profile is referenced from the site
inventory by `name` or `name@version`; `DeviceKind` names the InfluxDB measurement its readings go to.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jieshui.errors import ProfileError

PROFILE_DIR = Path(__file__).parent / "profiles"


class DeviceKind(StrEnum):
    """What a device is; also the name of the InfluxDB measurement its readings are stored in."""

    RAINWATER_SYSTEM = "rainwater_system"  # harvesting controller: rain gauge, tank, treatment, supply
    RIVER_PUMP = "river_pump"
    CAR_WASH = "car_wash"
    WATER_METER = "water_meter"  # a potable or make-up water meter (e.g. the community master meter)


class LocalText(BaseModel):
    """A text users read, in both languages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Profile(BaseModel):
    """One device model: identity and kind (register maps and payloads come with the collector)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: int = Field(ge=1)
    kind: DeviceKind
    vendor: str
    model: str
    description: LocalText

    @property
    def ref(self) -> str:
        """`name@version`, the provenance tag of every reading decoded with this profile."""
        return f"{self.name}@{self.version}"


@cache
def load_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Load every profile in `directory`, keyed by `name@version` and by `name` (latest version)."""
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            profile = Profile.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ProfileError(f"profile {path}: {exc}") from exc
        if profile.ref in profiles:
            raise ProfileError(f"profile {path}: {profile.ref} is defined twice")
        profiles[profile.ref] = profile
        latest = profiles.get(profile.name)
        if latest is None or latest.version < profile.version:
            profiles[profile.name] = profile
    return profiles


def find_profile(ref: str) -> Profile:
    """Resolve `name` or `name@version`; raise ProfileError listing the known names if absent."""
    profiles = load_profiles()
    if ref in profiles:
        return profiles[ref]
    known = ", ".join(sorted(k for k in profiles if "@" not in k))
    raise ProfileError(f"unknown device profile {ref!r}; known profiles: {known}")
