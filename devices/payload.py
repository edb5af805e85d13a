"""MQTT payloads as pydantic models built from a profile's schema: the collector validates with them,
the simulators' payloads are tested against them, and docs/devices.md shows their JSON Schema.

A payload maps to quantities by `quantity = json value * scale`; metadata keys (sequence number, event
type) are validated but are not quantities.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, create_model

from devices.profile import Profile, find_profile

_TYPES: dict[str, Any] = {
    # strict float takes JSON integers too, and refuses booleans, strings, NaN and infinities
    "number": Annotated[StrictFloat, Field(allow_inf_nan=False)],
    "integer": StrictInt,
    "string": StrictStr,
    "boolean": StrictBool,
}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@cache
def payload_model(profile_ref: str) -> type[BaseModel]:
    """The pydantic model of a profile's MQTT payload (refused: missing keys, wrong types, extras)."""
    return model_for(find_profile(profile_ref))


_MODELS: dict[str, tuple[Profile, type[BaseModel]]] = {}


def model_for(profile: Profile) -> type[BaseModel]:
    """`payload_model` of this very profile, built once: the collector validates with the profile it
    was given (before, a profile not in devices/profiles was looked up by name, a ProfileError)."""
    cached = _MODELS.get(profile.ref)
    if cached is not None and cached[0] is profile:
        return cached[1]
    model = _build(profile)
    _MODELS[profile.ref] = (profile, model)
    return model


def _build(profile: Profile) -> type[BaseModel]:
    if profile.mqtt is None:
        raise ValueError(f"profile {profile.ref} has no MQTT payload")
    fields: dict[str, Any] = {}
    schema = profile.mqtt
    if schema.timestamp_key is not None:
        ts_type: Any = StrictStr if schema.timestamp_format == "iso8601" else _TYPES["number"]
        fields[schema.timestamp_key] = (
            ts_type,
            Field(description=f"device time ({schema.timestamp_format})"),
        )
    for f in schema.fields:
        annotation: Any = Literal[tuple(f.values)] if f.values else _TYPES[f.type]
        constraints: dict[str, Any] = {}
        if f.quantity is not None:
            q = profile.quantity[f.quantity]
            # The range is the quantity's, expressed in the payload's unit.
            if q.min is not None:
                constraints["ge"] = q.min / f.scale
            if q.max is not None:
                constraints["le"] = q.max / f.scale
            constraints["description"] = f"{q.description.en} [{q.unit}] (x{f.scale:g})"
        if f.required:
            fields[f.key] = (annotation, Field(**constraints))
        else:
            fields[f.key] = (annotation | None, Field(default=None, **constraints))
    name = "Payload_" + profile.name.replace("-", "_")
    return create_model(name, __base__=_Payload, **fields)


def payload_to_quantities(profile: Profile, payload: BaseModel) -> dict[str, float | int | bool | str]:
    """The quantities a validated payload carries, in the profile's units."""
    assert profile.mqtt is not None  # noqa: S101 (payload_model refuses such profiles)
    out: dict[str, float | int | bool | str] = {}
    for f in profile.mqtt.fields:
        if f.quantity is None:
            continue
        value = getattr(payload, f.key)
        if value is None:
            continue
        q = profile.quantity[f.quantity]
        if q.type == "float":
            out[f.quantity] = float(value) * f.scale
        elif q.type == "int":
            out[f.quantity] = int(value)
        else:
            out[f.quantity] = value
    return out
