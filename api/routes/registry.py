"""The registry: districts, communities (application-form fields), facilities, devices and claims, as
the site inventory declares them, filtered to what the caller may see."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api.deps import CtxDep, PrincipalDep, ScopedDep
from api.errors import ApiError
from api.schemas import (
    CatchmentPublic,
    ClaimPublic,
    CommunityDetail,
    CommunitySummary,
    DevicePublic,
    DistrictPublic,
    FacilityPublic,
)
from devices.profile import find_profile
from jieshui.inventory import Community, District

router = APIRouter(tags=["registry"])


def summary(district: District, c: Community) -> CommunitySummary:
    return CommunitySummary(
        id=c.id,
        district=district.id,
        name=c.name,
        name_en=c.name_en,
        street_town=c.street_town,
        residents_committee=c.residents_committee,
        contact=c.contact,
        phone=c.phone,
        postcode=c.postcode,
        address=c.address,
        households=c.households,
        population=c.population,
        application_year=c.application_year,
        benchmark=c.benchmark,
        car_wash_pilot=c.car_wash_pilot,
        parking_spaces=c.parking_spaces,
        green_area_m2=c.green_area_m2,
    )


def devices(c: Community) -> list[DevicePublic]:
    out = []
    for facility, device in c.devices():
        profile = find_profile(device.profile)
        out.append(
            DevicePublic(
                id=device.id,
                facility=facility.id,
                kind=str(profile.kind),
                profile=profile.ref,
                protocol=device.connection.protocol,
                interval_s=device.interval_s(),
                serial_number=device.serial_number,
            )
        )
    return out


def claims(c: Community) -> list[ClaimPublic]:
    return [
        ClaimPublic(
            id=x.id,
            facility=x.facility,
            measure=str(x.measure),
            value=x.value,
            unit=x.unit,
            year=x.year,
            vehicle_class=str(x.vehicle_class) if x.vehicle_class else None,
            note=x.note,
        )
        for x in c.claims
    ]


@router.get("/districts", response_model=list[DistrictPublic])
def list_districts(ctx: CtxDep, principal: PrincipalDep) -> list[DistrictPublic]:
    """Districts with at least one community the caller may see."""
    out = []
    for d in ctx.registry().districts:
        visible = [c.id for c in d.communities if principal.sees(c.id)]
        if visible:
            out.append(DistrictPublic(id=d.id, name=d.name, name_en=d.name_en, communities=visible))
    return out


@router.get("/districts/{district_id}", response_model=DistrictPublic)
def get_district(
    ctx: CtxDep, principal: PrincipalDep, district_id: str = Path(min_length=1, max_length=64)
) -> DistrictPublic:
    for d in list_districts(ctx, principal):
        if d.id == district_id:
            return d
    raise ApiError("district_not_found", district=district_id)


@router.get("/communities", response_model=list[CommunitySummary])
def list_communities(ctx: CtxDep, principal: PrincipalDep) -> list[CommunitySummary]:
    return [summary(d, c) for d, c in ctx.registry().communities() if principal.sees(c.id)]


@router.get("/communities/{community_id}", response_model=CommunityDetail)
def get_community(scoped: ScopedDep) -> CommunityDetail:
    c = scoped.community
    return CommunityDetail(
        **summary(scoped.district, c).model_dump(),
        catchments=[
            CatchmentPublic(
                id=k.id,
                surface=str(k.surface),
                area_m2=k.area_m2,
                runoff_coefficient=k.psi,
                first_flush_mm=k.first_flush_mm,
            )
            for k in c.catchments
        ],
        facilities=[
            FacilityPublic(
                id=f.id,
                kind=str(f.kind),
                name=f.name,
                catchments=list(f.catchments),
                tank_capacity_m3=f.tank_capacity_m3,
                rated_flow_m3h=f.rated_flow_m3h,
                devices=[d.id for d in f.devices],
            )
            for f in c.facilities
        ],
        devices=devices(c),
        claims=claims(c),
    )


@router.get("/communities/{community_id}/devices", response_model=list[DevicePublic])
def list_devices(scoped: ScopedDep) -> list[DevicePublic]:
    return devices(scoped.community)


@router.get("/communities/{community_id}/claims", response_model=list[ClaimPublic])
def list_claims(scoped: ScopedDep) -> list[ClaimPublic]:
    return claims(scoped.community)
