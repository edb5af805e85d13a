"""Bad API requests through the real app (tests/api builds it: real influxd, real SQL database, a key
per role): each gets its status, its error code and its message in zh-CN and in English (the language
of Accept-Language), and for an invalid request the location of every invalid part.

Every request comes from an address of its own (a loopback label in the ASGI scope; no traffic leaves
the process), so the API's limit on failed authentications per address never mixes the cases.

Tests at the end state what the API should answer and does not yet (see the report of issue 10): a
405 names the allowed methods, a body that is not JSON is 400, a body of another content type is 415
(and test_application_forms.py: an upload over MAX_FORM_BYTES is 413).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api

C = "/communities/xinjing-6"
S = C + "/series"
D = C + "/devices/rw-controller/series"
#: (case id, method, path, httpx keyword arguments, key of which role, or None for no key)
REQUESTS: list[tuple[str, str, str, dict[str, Any], str | None]] = [
 # auth
 ("no-credentials", "GET", "/me", {}, None),
 ("key-garbage", "GET", "/me", {"headers": {"X-API-Key": "garbage"}}, None),
 ("key-unknown-id", "GET", "/me", {"headers": {"X-API-Key": "jsk_0000000000000000_" + "a" * 43}}, None),
 ("key-wrong-secret", "GET", "/me", {"headers": {"X-API-Key": "WRONGSECRET"}}, None),
 ("key-empty", "GET", "/me", {"headers": {"X-API-Key": ""}}, None),
 ("key-10k-chars", "GET", "/me", {"headers": {"X-API-Key": "jsk_" + "x" * 10000}}, None),
 ("basic-auth", "GET", "/me", {"headers": {"Authorization": "Basic YWRtaW46YWRtaW4="}}, None),
 ("bearer-empty", "GET", "/me", {"headers": {"Authorization": "Bearer "}}, None),
 ("bearer-unknown-token", "GET", "/me", {"headers": {"Authorization": "Bearer jst_" + "b" * 43}}, None),
 ("bearer-no-scheme", "GET", "/me", {"headers": {"Authorization": "jsk_abc"}}, None),
 ("evaluator-creates-key", "POST", "/keys", {"json": {"role": "evaluator"}}, "evaluator"),
 ("manager-runs-verification", "POST", C + "/verifications/2025", {}, "manager"),
 ("manager-reads-audit", "GET", "/audit", {}, "manager"),
 ("manager-other-community", "GET", "/communities/xianxia-xicun", {}, "manager"),
 ("unknown-community", "GET", "/communities/atlantis", {}, "admin"),
 ("unknown-district", "GET", "/districts/atlantis", {}, "admin"),
 ("community-id-too-long", "GET", "/communities/" + "c" * 65, {}, "admin"),
 # series
 ("series-no-quantity", "GET", S, {}, "admin"),
 ("series-unknown-quantity", "GET", S, {"params": {"quantity": "flow_lps"}}, "admin"),
 ("series-quantity-pattern", "GET", S, {"params": {"quantity": "Level%"}}, "admin"),
 ("series-not-numeric", "GET", S, {"params": {"quantity": "vehicle_class"}}, "admin"),
 ("series-device-unknown-quantity", "GET", D, {"params": {"quantity": "wash_l"}}, "admin"),
 ("series-unknown-device", "GET", C + "/devices/ghost/series", {"params": {"quantity": "level_pct"}}, "admin"),
 ("series-window-zero", "GET", S, {"params": {"quantity": "level_pct", "window": "0m"}}, "admin"),
 ("series-window-unit", "GET", S, {"params": {"quantity": "level_pct", "window": "15x"}}, "admin"),
 ("series-window-seven-digits", "GET", S, {"params": {"quantity": "level_pct", "window": "1000000s"}}, "admin"),
 ("series-agg-median", "GET", S, {"params": {"quantity": "level_pct", "agg": "median"}}, "admin"),
 ("series-format-xml", "GET", S, {"params": {"quantity": "level_pct", "format": "xml"}}, "admin"),
 ("series-start-not-a-time", "GET", S, {"params": {"quantity": "level_pct", "start": "yesterday"}}, "admin"),
 ("series-month-13", "GET", S, {"params": {"quantity": "level_pct", "start": "2025-13-01"}}, "admin"),
 ("series-start-after-end", "GET", S, {"params": {"quantity": "level_pct", "start": "2025-12-02T00:00:00", "end": "2025-12-01T00:00:00"}}, "admin"),
 ("series-start-equals-end", "GET", S, {"params": {"quantity": "level_pct", "start": "2025-12-01T00:00:00", "end": "2025-12-01T00:00:00"}}, "admin"),
 ("series-start-1999", "GET", S, {"params": {"quantity": "level_pct", "start": "1999-12-31T00:00:00", "end": "2000-01-02T00:00:00"}}, "admin"),
 ("series-end-2101", "GET", S, {"params": {"quantity": "level_pct", "start": "2100-12-31T00:00:00", "end": "2101-01-01T00:00:00"}}, "admin"),
 ("series-year-one", "GET", S, {"params": {"quantity": "level_pct", "end": "0001-01-01T00:00:00"}}, "admin"),
 ("series-too-many-points", "GET", S, {"params": {"quantity": "level_pct", "window": "1s", "start": "2025-01-01T00:00:00", "end": "2025-12-31T00:00:00"}}, "admin"),
 ("series-quantity-twice", "GET", S + "?quantity=level_pct&quantity=flow", {}, "admin"),
 # verification / years
 ("verification-next-year", "GET", C + "/verifications/2027", {}, "admin"),
 ("verification-year-1999", "GET", C + "/verifications/1999", {}, "admin"),
 ("verification-year-text", "GET", C + "/verifications/last", {}, "admin"),
 ("verification-not-run", "GET", C + "/verifications/2025", {}, "admin"),
 ("report-format-doc", "GET", C + "/verifications/2025/report", {"params": {"format": "doc"}}, "admin"),
 ("report-lang-fr", "GET", C + "/verifications/2025/report", {"params": {"lang": "fr"}}, "admin"),
 ("decision-unknown", "POST", C + "/verifications/2025/decisions", {"json": {"decision": "maybe"}}, "admin"),
 ("decision-json-list", "POST", C + "/verifications/2025/decisions", {"json": ["accepted"]}, "admin"),
 ("decision-unknown-field", "POST", C + "/verifications/2025/decisions", {"json": {"decision": "accepted", "by": "me"}}, "admin"),
 ("verdicts-year-text", "GET", "/districts/changning/verdicts", {"params": {"year": "last"}}, "admin"),
 ("naming-format-pdf", "GET", "/districts/changning/naming/2025", {"params": {"format": "pdf"}}, "admin"),
 ("naming-unknown-district", "GET", "/districts/atlantis/naming/2025", {}, "admin"),
 ("evaluation-adoption-150", "PUT", C + "/evaluations/2025", {"json": {"fixture_adoption_pct": 150}}, "admin"),
 ("evaluation-benchmark-unearned", "PUT", C + "/evaluations/2025", {"json": {"result": "benchmark"}}, "admin"),
 ("evaluation-result-unknown", "PUT", C + "/evaluations/2025", {"json": {"result": "gold"}}, "admin"),
 ("cycle-missing-phases", "PUT", "/cycles/2026", {"json": {"application": {"start": "2026-09-01", "end": "2026-10-18"}}}, "admin"),
 ("cycle-year-1999", "GET", "/cycles/1999", {}, "admin"),
 # status / alerts
 ("alerts-state-bogus", "GET", C + "/alerts", {"params": {"state": "bogus"}}, "admin"),
 ("alerts-limit-zero", "GET", C + "/alerts", {"params": {"limit": 0}}, "admin"),
 ("acknowledge-alert-zero", "POST", "/alerts/0/acknowledge", {"json": {}}, "admin"),
 ("acknowledge-unknown-alert", "POST", "/alerts/999999/acknowledge", {"json": {"note": "ok"}}, "admin"),
 ("acknowledge-note-number", "POST", "/alerts/1/acknowledge", {"json": {"note": 5}}, "admin"),
 ("acknowledge-note-too-long", "POST", "/alerts/1/acknowledge", {"json": {"note": "n" * 2001}}, "admin"),
 # keys / audit / token
 ("key-role-unknown", "POST", "/keys", {"json": {"role": "superuser"}}, "admin"),
 ("key-manager-without-community", "POST", "/keys", {"json": {"role": "manager"}}, "admin"),
 ("key-manager-unknown-community", "POST", "/keys", {"json": {"role": "manager", "communities": ["atlantis", "xinjing-6"]}}, "admin"),
 ("key-evaluator-with-community", "POST", "/keys", {"json": {"role": "evaluator", "communities": ["xinjing-6"]}}, "admin"),
 ("key-label-too-long", "POST", "/keys", {"json": {"role": "evaluator", "label": "l" * 201}}, "admin"),
 ("key-body-missing", "POST", "/keys", {}, "admin"),
 ("revoke-unknown-key", "DELETE", "/keys/0123456789abcdef", {}, "admin"),
 ("revoke-id-too-long", "DELETE", "/keys/" + "k" * 17, {}, "admin"),
 ("audit-limit-zero", "GET", "/audit", {"params": {"limit": 0}}, "admin"),
 ("audit-limit-text", "GET", "/audit", {"params": {"limit": "all"}}, "admin"),
 ("audit-before-id-zero", "GET", "/audit", {"params": {"before_id": 0}}, "admin"),
 ("token-grant-implicit", "POST", "/auth/token", {"data": {"grant_type": "implicit"}}, None),
 ("token-grant-missing", "POST", "/auth/token", {"data": {"client_secret": "x"}}, None),
 ("token-bad-secret", "POST", "/auth/token", {"data": {"grant_type": "client_credentials", "client_secret": "nope"}}, None),
 ("token-json-body", "POST", "/auth/token", {"json": {"grant_type": "client_credentials"}}, None),
 # paths, methods
 ("unknown-path", "GET", "/nowhere", {}, "admin"),
 ("unknown-path-no-key", "GET", "/nowhere", {}, None),
 ("patch-communities", "PATCH", "/communities", {}, "admin"),
 ("delete-keys-collection", "DELETE", "/keys", {}, "admin"),
 ("post-status", "POST", C + "/status", {}, "admin"),
 # forms via API
 ("form-format-xls", "POST", "/districts/changning/forms/2026", {"params": {"format": "xls"}, "content": b"x"}, "admin"),
 ("form-kind-unknown", "POST", "/districts/changning/forms/2026", {"params": {"form": "budget"}, "content": b"x"}, "admin"),
 ("form-year-1999", "POST", "/districts/changning/forms/1999", {"content": b"x"}, "admin"),
 ("form-unknown-district", "POST", "/districts/atlantis/forms/2026", {"content": b"x"}, "admin"),
 ("form-after-deadline", "POST", "/districts/changning/forms/2025", {"content": b"x"}, "admin"),
 ("form-by-evaluator", "POST", "/districts/changning/forms/2026", {"content": b"x"}, "evaluator"),
]  # fmt: skip


#: case id -> (status, code, zh-CN message, English message, locations of the invalid parts)
EXPECTED: dict[str, tuple[int, str, str, str, list[list[str | int]]]] = {
    'no-credentials': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'key-garbage': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'key-unknown-id': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'key-wrong-secret': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'key-empty': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'key-10k-chars': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'basic-auth': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'bearer-empty': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'bearer-unknown-token': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'bearer-no-scheme': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'evaluator-creates-key': (403, 'forbidden_role', '角色 evaluator 无权执行此操作（需要：admin）', 'role evaluator may not do this (needs: admin)', []),
    'manager-runs-verification': (403, 'forbidden_role', '角色 manager 无权执行此操作（需要：admin, evaluator）', 'role manager may not do this (needs: admin, evaluator)', []),
    'manager-reads-audit': (403, 'forbidden_role', '角色 manager 无权执行此操作（需要：admin）', 'role manager may not do this (needs: admin)', []),
    'manager-other-community': (404, 'community_not_found', '未找到小区 xianxia-xicun', 'community xianxia-xicun not found', []),
    'unknown-community': (404, 'community_not_found', '未找到小区 atlantis', 'community atlantis not found', []),
    'unknown-district': (404, 'district_not_found', '未找到区 atlantis', 'district atlantis not found', []),
    'community-id-too-long': (422, 'invalid_request', '请求无效：path.community_id', 'invalid request: path.community_id', [['path', 'community_id']]),
    'series-no-quantity': (422, 'invalid_request', '请求无效：query.quantity', 'invalid request: query.quantity', [['query', 'quantity']]),
    'series-unknown-quantity': (422, 'unknown_quantity', 'xinjing-6 没有计量量 flow_lps（可选：alarm_code, energy_kwh, fault_code, first_flush_m3, flow_m3h, fresh_m3, inflow_m3, level_m, level_pct, makeup_m3, overflow_m3, power_kw, pressure_kpa, pump_running, rain_mm, recycled_l, recycled_m3, running, runtime_h, supply_m3, treated_m3, treatment_flow_m3h, treatment_runtime_h, vehicle_class, volume_m3, wash_count, wash_l）', 'xinjing-6 measures no quantity flow_lps (known: alarm_code, energy_kwh, fault_code, first_flush_m3, flow_m3h, fresh_m3, inflow_m3, level_m, level_pct, makeup_m3, overflow_m3, power_kw, pressure_kpa, pump_running, rain_mm, recycled_l, recycled_m3, running, runtime_h, supply_m3, treated_m3, treatment_flow_m3h, treatment_runtime_h, vehicle_class, volume_m3, wash_count, wash_l)', []),
    'series-quantity-pattern': (422, 'invalid_request', '请求无效：query.quantity', 'invalid request: query.quantity', [['query', 'quantity']]),
    'series-not-numeric': (422, 'not_numeric', '计量量 vehicle_class 不是数值，无法聚合', 'quantity vehicle_class is not numeric and cannot be aggregated', []),
    'series-device-unknown-quantity': (422, 'unknown_quantity', 'rw-controller 没有计量量 wash_l（可选：rain_mm, first_flush_m3, inflow_m3, overflow_m3, level_m, level_pct, treated_m3, treatment_runtime_h, treatment_flow_m3h, supply_m3, makeup_m3, pump_running, fault_code）', 'rw-controller measures no quantity wash_l (known: rain_mm, first_flush_m3, inflow_m3, overflow_m3, level_m, level_pct, treated_m3, treatment_runtime_h, treatment_flow_m3h, supply_m3, makeup_m3, pump_running, fault_code)', []),
    'series-unknown-device': (404, 'device_not_found', '小区 xinjing-6 中未找到设备 ghost', 'device ghost not found in community xinjing-6', []),
    'series-window-zero': (422, 'invalid_request', '请求无效：query.window', 'invalid request: query.window', [['query', 'window']]),
    'series-window-unit': (422, 'invalid_request', '请求无效：query.window', 'invalid request: query.window', [['query', 'window']]),
    'series-window-seven-digits': (422, 'invalid_request', '请求无效：query.window', 'invalid request: query.window', [['query', 'window']]),
    'series-agg-median': (422, 'invalid_request', '请求无效：query.agg', 'invalid request: query.agg', [['query', 'agg']]),
    'series-format-xml': (422, 'invalid_request', '请求无效：query.format', 'invalid request: query.format', [['query', 'format']]),
    'series-start-not-a-time': (422, 'invalid_request', '请求无效：query.start', 'invalid request: query.start', [['query', 'start']]),
    'series-month-13': (422, 'invalid_request', '请求无效：query.start', 'invalid request: query.start', [['query', 'start']]),
    'series-start-after-end': (422, 'bad_time_range', '时间范围无效：开始 2025-12-02T00:00:00+08:00 须早于结束 2025-12-01T00:00:00+08:00，且在 2000–2100 年之间', 'invalid time range: start 2025-12-02T00:00:00+08:00 must be before end 2025-12-01T00:00:00+08:00, both within 2000-2100', []),
    'series-start-equals-end': (422, 'bad_time_range', '时间范围无效：开始 2025-12-01T00:00:00+08:00 须早于结束 2025-12-01T00:00:00+08:00，且在 2000–2100 年之间', 'invalid time range: start 2025-12-01T00:00:00+08:00 must be before end 2025-12-01T00:00:00+08:00, both within 2000-2100', []),
    'series-start-1999': (422, 'bad_time_range', '时间范围无效：开始 1999-12-31T00:00:00+08:00 须早于结束 2000-01-02T00:00:00+08:00，且在 2000–2100 年之间', 'invalid time range: start 1999-12-31T00:00:00+08:00 must be before end 2000-01-02T00:00:00+08:00, both within 2000-2100', []),
    'series-end-2101': (422, 'bad_time_range', '时间范围无效：开始 2100-12-31T00:00:00+08:00 须早于结束 2101-01-01T00:00:00+08:00，且在 2000–2100 年之间', 'invalid time range: start 2100-12-31T00:00:00+08:00 must be before end 2101-01-01T00:00:00+08:00, both within 2000-2100', []),
    'series-year-one': (422, 'bad_time_range', '时间范围无效：开始 2000-01-01T00:00:00+00:00 须早于结束 0001-01-01T00:00:00+08:00，且在 2000–2100 年之间', 'invalid time range: start 2000-01-01T00:00:00+00:00 must be before end 0001-01-01T00:00:00+08:00, both within 2000-2100', []),
    'series-too-many-points': (422, 'too_many_points', '请求将返回 31449600 个点，超过上限 10000；请加大窗口或缩短时间范围', 'the request would return 31449600 points, over the limit of 10000; use a longer window or a shorter range', []),
    'series-quantity-twice': (422, 'unknown_quantity', 'xinjing-6 没有计量量 flow（可选：alarm_code, energy_kwh, fault_code, first_flush_m3, flow_m3h, fresh_m3, inflow_m3, level_m, level_pct, makeup_m3, overflow_m3, power_kw, pressure_kpa, pump_running, rain_mm, recycled_l, recycled_m3, running, runtime_h, supply_m3, treated_m3, treatment_flow_m3h, treatment_runtime_h, vehicle_class, volume_m3, wash_count, wash_l）', 'xinjing-6 measures no quantity flow (known: alarm_code, energy_kwh, fault_code, first_flush_m3, flow_m3h, fresh_m3, inflow_m3, level_m, level_pct, makeup_m3, overflow_m3, power_kw, pressure_kpa, pump_running, rain_mm, recycled_l, recycled_m3, running, runtime_h, supply_m3, treated_m3, treatment_flow_m3h, treatment_runtime_h, vehicle_class, volume_m3, wash_count, wash_l)', []),
    'verification-next-year': (422, 'year_out_of_range', '年份 2027 超出范围（2000–2026）', 'year 2027 is out of range (2000-2026)', []),
    'verification-year-1999': (422, 'invalid_request', '请求无效：path.year', 'invalid request: path.year', [['path', 'year']]),
    'verification-year-text': (422, 'invalid_request', '请求无效：path.year', 'invalid request: path.year', [['path', 'year']]),
    'verification-not-run': (404, 'verification_not_run', 'xinjing-6 2025 年尚未运行核验', 'verification has not been run for xinjing-6 2025', []),
    'report-format-doc': (422, 'invalid_request', '请求无效：query.format', 'invalid request: query.format', [['query', 'format']]),
    'report-lang-fr': (422, 'invalid_request', '请求无效：query.lang', 'invalid request: query.lang', [['query', 'lang']]),
    'decision-unknown': (422, 'invalid_request', '请求无效：body.decision', 'invalid request: body.decision', [['body', 'decision']]),
    'decision-json-list': (422, 'invalid_request', '请求无效：body', 'invalid request: body', [['body']]),
    'decision-unknown-field': (422, 'invalid_request', '请求无效：body.by', 'invalid request: body.by', [['body', 'by']]),
    'verdicts-year-text': (422, 'invalid_request', '请求无效：query.year', 'invalid request: query.year', [['query', 'year']]),
    'naming-format-pdf': (422, 'invalid_request', '请求无效：query.format', 'invalid request: query.format', [['query', 'format']]),
    'naming-unknown-district': (404, 'district_not_found', '未找到区 atlantis', 'district atlantis not found', []),
    'evaluation-adoption-150': (422, 'invalid_request', '请求无效：body.fixture_adoption_pct', 'invalid request: body.fixture_adoption_pct', [['body', 'fixture_adoption_pct']]),
    'evaluation-benchmark-unearned': (422, 'result_not_allowed', '不能评定为「benchmark」：2025 年尚无核验结果，无法评定（先运行核验）; 尚未填写节水器具普及率（现场查看）', 'the result benchmark cannot be given: no verification for 2025 yet: run it first; the fixture adoption rate (on-site inspection) is not entered', [["body", "result"], ["body", "result"]]),
    'evaluation-result-unknown': (422, 'invalid_request', '请求无效：body.result', 'invalid request: body.result', [['body', 'result']]),
    'cycle-missing-phases': (422, 'invalid_request', '请求无效：body.training, body.guidance, body.evaluation, body.naming', 'invalid request: body.training, body.guidance, body.evaluation, body.naming', [['body', 'training'], ['body', 'guidance'], ['body', 'evaluation'], ['body', 'naming']]),
    'cycle-year-1999': (422, 'invalid_request', '请求无效：path.year', 'invalid request: path.year', [['path', 'year']]),
    'alerts-state-bogus': (422, 'invalid_request', '请求无效：query.state', 'invalid request: query.state', [['query', 'state']]),
    'alerts-limit-zero': (422, 'invalid_request', '请求无效：query.limit', 'invalid request: query.limit', [['query', 'limit']]),
    'acknowledge-alert-zero': (422, 'invalid_request', '请求无效：path.alert_id', 'invalid request: path.alert_id', [['path', 'alert_id']]),
    'acknowledge-unknown-alert': (404, 'alert_not_found', '未找到告警 999999', 'alert 999999 not found', []),
    'acknowledge-note-number': (422, 'invalid_request', '请求无效：body.note', 'invalid request: body.note', [['body', 'note']]),
    'acknowledge-note-too-long': (422, 'invalid_request', '请求无效：body.note', 'invalid request: body.note', [['body', 'note']]),
    'key-role-unknown': (422, 'invalid_request', '请求无效：body.role', 'invalid request: body.role', [['body', 'role']]),
    'key-manager-without-community': (422, 'invalid_communities', '管理员角色须指定其管辖的小区；未知小区：-', 'a manager key needs the communities it manages; unknown: -', []),
    'key-manager-unknown-community': (422, 'invalid_communities', '管理员角色须指定其管辖的小区；未知小区：atlantis', 'a manager key needs the communities it manages; unknown: atlantis', []),
    'key-evaluator-with-community': (422, 'communities_not_allowed', '只有 manager 角色的密钥限定小区', 'only manager keys are scoped to communities', []),
    'key-label-too-long': (422, 'invalid_request', '请求无效：body.label', 'invalid request: body.label', [['body', 'label']]),
    'key-body-missing': (422, 'invalid_request', '请求无效：body', 'invalid request: body', [['body']]),
    'revoke-unknown-key': (404, 'key_not_found', '未找到 API 密钥 0123456789abcdef', 'API key 0123456789abcdef not found', []),
    'revoke-id-too-long': (422, 'invalid_request', '请求无效：path.key_id', 'invalid request: path.key_id', [['path', 'key_id']]),
    'audit-limit-zero': (422, 'invalid_request', '请求无效：query.limit', 'invalid request: query.limit', [['query', 'limit']]),
    'audit-limit-text': (422, 'invalid_request', '请求无效：query.limit', 'invalid request: query.limit', [['query', 'limit']]),
    'audit-before-id-zero': (422, 'invalid_request', '请求无效：query.before_id', 'invalid request: query.before_id', [['query', 'before_id']]),
    'token-grant-implicit': (400, 'unsupported_grant', '不支持的授权类型 implicit（支持 client_credentials 与 password）', 'unsupported grant type implicit (client_credentials and password are supported)', []),
    'token-grant-missing': (422, 'invalid_request', '请求无效：body.grant_type', 'invalid request: body.grant_type', [['body', 'grant_type']]),
    'token-bad-secret': (401, 'unauthenticated', '缺少或无效的凭据（X-API-Key 或 Bearer 令牌）', 'missing or invalid credentials (X-API-Key or Bearer token)', []),
    'token-json-body': (422, 'invalid_request', '请求无效：body.grant_type', 'invalid request: body.grant_type', [['body', 'grant_type']]),
    'unknown-path': (404, 'not_found', '路径 /nowhere 不存在', 'path /nowhere does not exist', []),
    'unknown-path-no-key': (404, 'not_found', '路径 /nowhere 不存在', 'path /nowhere does not exist', []),
    'patch-communities': (405, 'method_not_allowed', '/communities 不支持方法 PATCH', 'method PATCH is not allowed on /communities', []),
    'delete-keys-collection': (405, 'method_not_allowed', '/keys 不支持方法 DELETE', 'method DELETE is not allowed on /keys', []),
    'post-status': (405, 'method_not_allowed', '/communities/xinjing-6/status 不支持方法 POST', 'method POST is not allowed on /communities/xinjing-6/status', []),
    'form-format-xls': (422, 'invalid_request', '请求无效：query.format', 'invalid request: query.format', [['query', 'format']]),
    'form-kind-unknown': (422, 'invalid_request', '请求无效：query.form', 'invalid request: query.form', [['query', 'form']]),
    'form-year-1999': (422, 'invalid_request', '请求无效：path.year', 'invalid request: path.year', [['path', 'year']]),
    'form-unknown-district': (404, 'district_not_found', '未找到区 atlantis', 'district atlantis not found', []),
    'form-after-deadline': (422, 'application_closed', '2025 年度申报已于 2025-10-18 截止（今天 2026-01-05）', 'applications for 2025 closed on 2025-10-18 (today is 2026-01-05)', []),
    'form-by-evaluator': (403, 'forbidden_role', '角色 evaluator 无权执行此操作（需要：admin）', 'role evaluator may not do this (needs: admin)', []),
}  # fmt: skip

_ADDRESSES = (f"127.0.{i // 250 + 1}.{i % 250 + 1}" for i in itertools.count())


def send(api: Api, method: str, path: str, who: str | None, lang: str, **kw: Any) -> httpx.Response:
    """One request from an address of its own, with the role's key and the language asked for."""
    client = TestClient(api.client.app, client=(next(_ADDRESSES), 50000), raise_server_exceptions=False)
    headers = {"Accept-Language": lang, **kw.pop("headers", {})}
    if who is not None:
        headers["X-API-Key"] = api.keys[who]
    response: httpx.Response = client.request(method, path, headers=headers, **kw)
    return response


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(("case", "method", "path", "kw", "who"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_a_bad_request_gets_its_status_code_and_message_in_both_languages(
    corpus_api: Api, case: str, method: str, path: str, kw: dict[str, Any], who: str | None
) -> None:
    status, code, zh, en, locs = EXPECTED[case]
    for lang, text in (("zh-CN", zh), ("en", en)):
        response = send(corpus_api, method, path, who, lang, **dict(kw))
        error = error_of(response)
        assert (response.status_code, error["code"], error["message"]) == (status, code, text), lang
        assert (error["lang"], response.headers["content-language"]) == (lang, lang)
        assert [d["loc"] for d in error["details"]] == locs
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_request_has_its_expected_answer() -> None:
    assert sorted(EXPECTED) == sorted(r[0] for r in REQUESTS)


#: (Accept-Language, the language answered): zh-CN unless English is preferred.
LANGUAGES = [
    ("fr", "zh-CN"),
    ("en-US,en;q=0.9", "en"),
    ("EN", "en"),
    ("zh-TW", "zh-CN"),
    ("en;q=0.1, zh;q=0.5", "zh-CN"),
    ("*", "zh-CN"),
    ("en;q=abc", "zh-CN"),  # an unreadable weight counts as 0: not acceptable
]


@pytest.mark.parametrize(("accept", "lang"), LANGUAGES, ids=[a for a, _ in LANGUAGES])
def test_the_language_of_an_error_follows_accept_language(corpus_api: Api, accept: str, lang: str) -> None:
    response = send(corpus_api, "GET", "/nowhere", None, accept)
    error = error_of(response)
    assert (response.status_code, error["code"], error["lang"]) == (404, "not_found", lang)
    expected = "路径 /nowhere 不存在" if lang == "zh-CN" else "path /nowhere does not exist"
    assert (error["message"], response.headers["content-language"]) == (expected, lang)


def test_a_405_names_every_method_the_path_serves(corpus_api: Api) -> None:
    """RFC 9110: a 405 carries `Allow` (GET and POST for /keys: POST creates a key)."""
    response = send(corpus_api, "DELETE", "/keys", "admin", "en")
    assert (response.status_code, error_of(response)["code"]) == (405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


def test_an_expired_token_is_refused_as_expired(corpus_api: Api) -> None:
    token = send(
        corpus_api, "POST", "/auth/token", None, "en",
        data={"grant_type": "client_credentials", "client_secret": corpus_api.keys["evaluator"]},
    ).json()["access_token"]  # fmt: skip
    clock = corpus_api.ctx.clock
    later = clock() + dt.timedelta(hours=2)
    corpus_api.ctx.clock = lambda: later
    try:
        for lang, text in (
            ("zh-CN", "访问令牌已过期，请重新获取"),
            ("en", "the access token has expired; request a new one"),
        ):
            response = send(
                corpus_api, "GET", "/me", None, lang, headers={"Authorization": f"Bearer {token}"}
            )
            error = error_of(response)
            assert (response.status_code, error["code"], error["message"]) == (401, "token_expired", text)
    finally:
        corpus_api.ctx.clock = clock


def test_a_revoked_key_is_refused_as_revoked(corpus_api: Api) -> None:
    created = send(corpus_api, "POST", "/keys", "admin", "en", json={"role": "evaluator", "label": "corpus"})
    key, key_id = created.json()["key"], created.json()["id"]
    assert send(corpus_api, "DELETE", f"/keys/{key_id}", "admin", "en").status_code == 204
    for lang, text in (("zh-CN", "该 API 密钥已被吊销"), ("en", "this API key has been revoked")):
        response = send(corpus_api, "GET", "/me", None, lang, headers={"X-API-Key": key})
        error = error_of(response)
        assert (response.status_code, error["code"], error["message"]) == (401, "key_revoked", text)


# --- found by this corpus, then fixed ------------------------------------------------------------------


def test_a_body_that_is_not_json_is_400_naming_json(corpus_api: Api) -> None:
    """app.py documents it (400 "malformed request"); FastAPI answered 422 `body.13` (13: the offset)."""
    for lang in ("zh-CN", "en"):
        response = send(
            corpus_api, "POST", "/communities/xinjing-6/verifications/2025/decisions", "admin", lang,
            content=b'{"decision": ', headers={"Content-Type": "application/json"},
        )  # fmt: skip
        error = error_of(response)
        assert (response.status_code, error["code"]) == (400, "body_not_json"), error
        assert "JSON" in error["message"]
        assert "13" not in error["message"].split("JSON")[0]  # no offset posing as a field name
        expected = {"zh-CN": "第 13 个字符：Expecting value", "en": "at character 13: Expecting value"}[lang]
        assert expected in error["message"]


def test_a_body_of_another_content_type_is_415_naming_json(corpus_api: Api) -> None:
    """A form-encoded body to a JSON route: 415 Unsupported Media Type, not 422 `invalid request: body`."""
    for lang in ("zh-CN", "en"):
        response = send(
            corpus_api, "POST", "/communities/xinjing-6/verifications/2025/decisions", "admin", lang,
            content=b"decision=accepted", headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        error = error_of(response)
        assert (response.status_code, error["code"]) == (415, "unsupported_media_type"), error
        assert "application/json" in error["message"]
