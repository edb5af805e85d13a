"""API errors: a machine-readable code, the HTTP status, and a message in zh-CN or en.

Every 4xx the API sends has the same body, `{"error": {"code", "message", "lang", "details"}}`; the
language comes from `Accept-Language` (zh-CN unless the caller prefers English). One catalogue here, so
the wording of both languages is reviewed in one place.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from jieshui.errors import StoreError
from jieshui.logs import redact

log = logging.getLogger(__name__)

Lang = Literal["zh-CN", "en"]

#: code -> (HTTP status, zh-CN, en). Messages may quote the error's params by name.
ERRORS: dict[str, tuple[int, str, str]] = {
    "unauthenticated": (
        401,
        "缺少或无效的凭据（X-API-Key 或 Bearer 令牌）",
        "missing or invalid credentials (X-API-Key or Bearer token)",
    ),
    "token_expired": (401, "访问令牌已过期，请重新获取", "the access token has expired; request a new one"),
    "key_revoked": (401, "该 API 密钥已被吊销", "this API key has been revoked"),
    "rate_limited": (
        429,
        "认证失败次数过多（{window} 秒内 {failures} 次），请 {retry_after} 秒后再试",
        "too many failed authentications ({failures} within {window} s); try again in {retry_after} s",
    ),
    "forbidden_role": (
        403,
        "角色 {role} 无权执行此操作（需要：{allowed}）",
        "role {role} may not do this (needs: {allowed})",
    ),
    "district_not_found": (404, "未找到区 {district}", "district {district} not found"),
    "community_not_found": (404, "未找到小区 {community}", "community {community} not found"),
    "device_not_found": (
        404,
        "小区 {community} 中未找到设备 {device}",
        "device {device} not found in community {community}",
    ),
    "alert_not_found": (404, "未找到告警 {alert}", "alert {alert} not found"),
    "key_not_found": (404, "未找到 API 密钥 {key}", "API key {key} not found"),
    # evidence: the meter registry (api/routes/meters.py, docs/api.md "Meter registry")
    "not_a_totalizer": (
        422,
        "设备 {device} 的 {quantity} 不是累计量，无法记录换表读数（累计量：{known}）",
        "{quantity} of device {device} is not a totalizer, so no replacement readings apply "
        "(totalizers: {known})",
    ),
    "date_in_future": (
        422,
        "{field} {value} 晚于当前时间 {now}",
        "{field} {value} is later than now ({now})",
    ),
    "replacement_same_meter": (
        422,
        "新表与旧表编号相同（{serial}）：换表须换上另一只水表",
        "the new meter is the old one ({serial}): a replacement installs another meter",
    ),
    "replacement_conflict": (
        422,
        "{time} 时设备 {device} 上登记的水表是 {serial}，不是旧表 {old_serial}",
        "the meter registered on device {device} at {time} is {serial}, not the old meter {old_serial}",
    ),
    "meter_removed": (
        422,
        "水表 {serial} 已于 {removed_at} 从设备 {device} 拆除，不能再登记为在用水表",
        "meter {serial} was removed from device {device} at {removed_at}; "
        "it cannot be the meter in place again",
    ),
    # evidence: signing keys and signatures (api/routes/signing.py, docs/evidence.md)
    "signing_key_not_found": (404, "未找到签名密钥 {fingerprint}", "signing key {fingerprint} not found"),
    "signing_key_exists": (
        409,
        "该公钥已登记（指纹 {fingerprint}，签名人 {signer}，{registered_at}）",
        "this public key is registered already (fingerprint {fingerprint}, signer {signer}, {registered_at})",
    ),
    "invalid_public_key": (422, "公钥无效：{reason_zh}", "invalid public key: {reason_en}"),
    "signature_scope_mismatch": (
        422,
        "签名针对 {doc_community} {doc_year} 年，而非 {community} {year} 年",
        "the signature is for {doc_community} {doc_year}, not {community} {year}",
    ),
    "signing_key_unregistered": (
        422,
        "签名所用的密钥（指纹 {fingerprint}）不在已登记的签名密钥中，签名不可信",
        "the signing key (fingerprint {fingerprint}) is not among the registered signing keys: "
        "the signature cannot be trusted",
    ),
    "signing_key_revoked": (
        422,
        "签名密钥 {fingerprint} 已于 {revoked_at} 吊销，不再接受其签名",
        "signing key {fingerprint} was revoked on {revoked_at}: its signatures are no longer accepted",
    ),
    "signature_invalid": (
        422,
        "签名无法用密钥 {fingerprint}（{signer}）验证：签名文件在签署后被改动"
        "（签名人、小区、年份、内容、时间或哈希），或并非由该密钥签署",
        "the signature does not verify with key {fingerprint} ({signer}): the signature document was altered "
        "after signing (its signer, community, year, artifact, time or hash) or not made with this key",
    ),
    "signer_mismatch": (
        422,
        "签名写明的签名人为「{claimed}」，但密钥 {fingerprint} 登记的签名人是「{registered}」",
        "the signature names the signer {claimed!r}, but key {fingerprint} is registered to {registered!r}",
    ),
    "signature_not_served": (
        422,
        "所签内容（sha256 {signed}）不是本服务为 {community} {year} 年最新一次核验提供的{artifact_zh}"
        "（sha256 {served}）",
        "the signed bytes (sha256 {signed}) are not the {artifact_en} this API serves for the latest "
        "verification of {community} {year} (sha256 {served})",
    ),
    "signed_in_future": (
        422,
        "签名时间 {signed_at} 晚于服务器时间 {now}",
        "the signature's time {signed_at} is later than the server's time {now}",
    ),
    "signature_exists": (
        409,
        "该签名已记录（编号 {id}，{recorded_at}）",
        "this signature is recorded already (#{id}, {recorded_at})",
    ),
    "verification_not_run": (
        404,
        "{community} {year} 年尚未运行核验",
        "verification has not been run for {community} {year}",
    ),
    # the public display pages (api/routes/display.py): one answer for an unknown link and a page
    # that is off; a store that does not answer, without its address
    "display_not_found": (
        404,
        "此链接没有展示页，或该小区的展示页未开启",
        "there is no display page at this link, or the community's display page is turned off",
    ),
    "display_unavailable": (
        503,
        "展示数据暂时无法获取，请稍后再试",
        "the display's figures cannot be fetched now; try again later",
    ),
    "not_found": (404, "路径 {path} 不存在", "path {path} does not exist"),
    "method_not_allowed": (405, "{path} 不支持方法 {method}", "method {method} is not allowed on {path}"),
    "not_acceptable": (406, "无法提供所请求的格式", "the requested format cannot be served"),
    "invalid_request": (422, "请求无效：{fields}", "invalid request: {fields}"),
    "unknown_quantity": (
        422,
        "{scope} 没有计量量 {quantity}（可选：{known}）",
        "{scope} measures no quantity {quantity} (known: {known})",
    ),
    "not_numeric": (
        422,
        "计量量 {quantity} 不是数值，无法聚合",
        "quantity {quantity} is not numeric and cannot be aggregated",
    ),
    "bad_time_range": (
        422,
        "时间范围无效：开始 {start} 须早于结束 {end}，且在 2000–2100 年之间",
        "invalid time range: start {start} must be before end {end}, both within 2000-2100",
    ),
    "too_many_points": (
        422,
        "请求将返回 {points} 个点，超过上限 {limit}；请加大窗口或缩短时间范围",
        "the request would return {points} points, over the limit of {limit}; "
        "use a longer window or a shorter range",
    ),
    "year_out_of_range": (
        422,
        "年份 {year} 超出范围（{first}–{last}）",
        "year {year} is out of range ({first}-{last})",
    ),
    "invalid_communities": (
        422,
        "管理员角色须指定其管辖的小区；未知小区：{unknown}",
        "a manager key needs the communities it manages; unknown: {unknown}",
    ),
    "communities_not_allowed": (
        422,
        "只有 manager 角色的密钥限定小区",
        "only manager keys are scoped to communities",
    ),
    "application_closed": (
        422,
        "{year} 年度申报已于 {deadline} 截止（今天 {today}）",
        "applications for {year} closed on {deadline} (today is {today})",
    ),
    "invalid_form": (
        422,
        "申报表有 {count} 处问题，未保存任何内容",
        "the form has {count} problem(s); nothing was stored",
    ),
    "result_not_allowed": (
        422,
        "不能评定为「{result}」：{reasons}",
        "the result {result} cannot be given: {reasons}",
    ),
    "invalid_cycle": (422, "年度安排无效：{reason}", "invalid cycle: {reason}"),
    "bad_request": (400, "请求无效：{reason}", "bad request: {reason}"),
    "body_not_json": (
        400,
        "请求体不是有效的 JSON（第 {offset} 个字符：{error}）",
        "the request body is not valid JSON (at character {offset}: {error})",
    ),
    "payload_too_large": (
        413,
        "上传内容超过 {limit_mb} MB 的上限",
        "the upload is larger than the limit of {limit_mb} MB",
    ),
    "unsupported_media_type": (
        415,
        "不支持的请求体类型 {media_type}；请以 application/json 发送",
        "unsupported body media type {media_type}; send application/json",
    ),
    "unsupported_grant": (
        400,
        "不支持的授权类型 {grant}（支持 client_credentials 与 password）",
        "unsupported grant type {grant} (client_credentials and password are supported)",
    ),
    "store_unavailable": (
        503,
        "时序数据库暂不可用：{reason}",
        "the time-series store is unavailable: {reason}",
    ),
    "internal_error": (
        500,
        "服务器内部错误（已记录，编号 {ref}）",
        "internal server error (logged as {ref})",
    ),
}


class ErrorDetail(BaseModel):
    """One problem with one part of a request (validation errors list every field)."""

    loc: list[str | int]
    type: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    lang: Lang
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """Raised by routes; rendered by the handler in the caller's language."""

    def __init__(self, code: str, headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.status = ERRORS[code][0]
        self.params = params
        self.headers = headers
        self.details: list[ErrorDetail] = []


def negotiate_lang(accept_language: str | None, default: Lang = "zh-CN") -> Lang:
    """The caller's language from an Accept-Language header: the first of zh*/en by q-value."""
    if not accept_language:
        return default
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, rest = part.strip().partition(";")
        q = 1.0
        if rest.strip().startswith("q="):
            try:
                q = float(rest.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for neg_q, _, tag in sorted(ranked):
        if neg_q >= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return default


def message(code: str, lang: Lang, **params: Any) -> str:
    _, zh, en = ERRORS[code]
    text = zh if lang == "zh-CN" else en
    try:
        return text.format(**params)
    except (KeyError, IndexError):  # a missing parameter must not turn an error into a crash
        return text


def error_response(
    request: Request,
    code: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> JSONResponse:
    lang = negotiate_lang(request.headers.get("accept-language"))
    body = ErrorResponse(
        error=ErrorBody(code=code, message=message(code, lang, **params), lang=lang, details=details or [])
    )
    return JSONResponse(
        body.model_dump(), status_code=ERRORS[code][0], headers={"Content-Language": lang, **(headers or {})}
    )


def _validation_details(exc: RequestValidationError) -> list[ErrorDetail]:
    out = []
    for err in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        out.append(
            ErrorDetail(loc=loc, type=str(err.get("type", "invalid")), message=str(err.get("msg", "")))
        )
    return out


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _method_table(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    """Path pattern -> methods, from the OpenAPI paths (FastAPI 0.165 nests included routers in objects
    that are not `Route`s) and the app's own Starlette routes (/docs, /openapi.json, which also answer
    HEAD; API routes do not); built once."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "method_table", None)
    if table is None:
        table = []
        for path, operations in app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$")
            table.append((pattern, {m.upper() for m in operations if m in _HTTP_METHODS}))
        for route in app.router.routes:
            if isinstance(route, Route) and route.methods:
                table.append((route.path_regex, set(route.methods)))
        app.state.method_table = table
    return table


def _allowed_methods(request: Request) -> str:
    """Every method a route serves at the request's path. Starlette's own `Allow` names only the first
    route matching the path: `Allow: GET` for a DELETE /keys, though POST /keys exists too."""
    methods: set[str] = set()
    for pattern, served in _method_table(request.app):
        if pattern.match(request.url.path):
            methods |= served
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one body and language."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.code, exc.details, exc.headers, **exc.params)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # A body that does not parse is a malformed request (400), not a field (pydantic's location is
        # the character offset: "body.13" would read like a field named 13).
        for err in errors:
            if err.get("type") == "json_invalid":
                loc = list(err.get("loc", ()))
                error = str((err.get("ctx") or {}).get("error", "decode error"))
                return error_response(
                    request, "body_not_json", offset=loc[-1] if len(loc) > 1 else 0, error=error
                )
        # The whole body refused as raw bytes: it came as another media type (a form to a JSON route).
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (media_type == "application/json" or media_type.endswith("+json")) and any(
            tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes | str)
            for err in errors
        ):
            return error_response(request, "unsupported_media_type", media_type=media_type or "(none)")
        details = _validation_details(exc)
        fields = ", ".join(".".join(str(p) for p in d.loc) for d in details) or "?"
        return error_response(request, "invalid_request", details, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            # RFC 9110 requires `Allow` on a 405 (Starlette sets one; this handler used to drop it).
            allow = {"Allow": _allowed_methods(request)}
            return error_response(
                request, "method_not_allowed", headers=allow, method=request.method, path=request.url.path
            )
        if exc.status_code == 404:
            return error_response(request, "not_found", path=request.url.path)
        if exc.status_code == 401:
            return error_response(request, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        # Anything else Starlette raises on its own (400 on a malformed form, ...) is a bad request.
        return error_response(request, "bad_request", reason=str(exc.detail))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.warning("store error on %s %s: %s", request.method, request.url.path, exc)
        # the reason names InfluxDB's URL, which may carry credentials (http://user:password@host)
        reason = redact(str(exc))
        return error_response(request, "store_unavailable", reason=reason, headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.url.path)
        return error_response(request, "internal_error", ref=ref)
