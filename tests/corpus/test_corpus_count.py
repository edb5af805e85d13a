"""The bad-input corpus, counted: at least 200 cases, every id unique in its domain and no input twice,
and no domain smaller than it is today, so the corpus cannot shrink without this test saying so."""

from __future__ import annotations

from collections import Counter

from collector.pipeline import raw_registers
from tests.collector.malformed import mqtt_cases
from tests.corpus import test_api_requests as api
from tests.corpus import test_application_forms as forms
from tests.corpus import test_inventory_files as inventory
from tests.corpus import test_modbus_responses as modbus
from tests.corpus import test_mqtt_payloads as mqtt
from tests.corpus.mqtt_profiles import NOW_MS

#: domain -> (case id, the input, as something comparable) for every case
DOMAINS: dict[str, list[tuple[str, object]]] = {
    "mqtt": [(f"malformed/{c[0]}", ("wx-cw01@1", c[1])) for c in mqtt_cases(NOW_MS)]
    + [(c.id, (c.profile.ref, c.payload)) for c in mqtt.CASES]
    + [(f"topic/{case}", topic) for case, topic in mqtt.TOPIC_CASES],
    "modbus": [(c.id, (c.profile.ref, raw_registers(c.blocks))) for c in modbus.CASES]
    + [(f"wire/{c[0]}", f"wire/{c[0]}") for c in modbus.WIRE_CASES],
    "inventory": [(c[0], (c[1], c[2])) for c in inventory.EDIT_CASES]
    + [(c[0], c[1]) for c in inventory.FILE_CASES],
    "forms": [(c[0], (c[1], c[2], c[3])) for c in forms.CASES]
    + [(f"api/{c[0]}", (c[1].get("form"), c[2], c[3])) for c in forms.API_CASES],
    "api": [(r[0], (r[1], r[2], repr(r[3]), r[4])) for r in api.REQUESTS],
}

#: The size of each domain when this test was written; a domain may grow, never shrink.
AT_LEAST = {"mqtt": 221, "modbus": 164, "inventory": 114, "forms": 49, "api": 86}


def test_the_corpus_has_at_least_200_cases_and_no_domain_shrank() -> None:
    sizes = {domain: len(cases) for domain, cases in DOMAINS.items()}
    assert sum(sizes.values()) >= 200
    assert {d: n for d, n in sizes.items() if n < AT_LEAST[d]} == {}


def test_every_case_id_is_unique_in_its_domain() -> None:
    for domain, cases in DOMAINS.items():
        repeated = [i for i, n in Counter(case_id for case_id, _ in cases).items() if n > 1]
        assert repeated == [], domain


def test_no_input_is_counted_twice() -> None:
    for domain, cases in DOMAINS.items():
        repeated = [i for i, n in Counter(repr(given) for _, given in cases).items() if n > 1]
        assert repeated == [], domain
