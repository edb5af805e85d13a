"""Bad inventory files: each is refused with InventoryError, one `FILE:LINE: dotted.path: message` per
problem, at the line where a person fixes it, with the path of the key. Edits of one valid inventory
(BASE: a device of every connection kind, faults, claims), files broken as a whole (encoding, YAML,
the top level), and rules across communities and districts.

tests/jieshui/test_inventory.py has the first cases; these add to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jieshui.errors import InventoryError
from jieshui.inventory import load_site

BASE = """\
schema_version: 1
districts:
  - id: changning
    name: 长宁区
    communities:
      - id: xinjing-6
        name: 新泾六村
        street_town: 新泾镇
        residents_committee: 新泾六村居委会
        contact: 王丽
        phone: "021-62681234"
        postcode: "200335"
        address: 哈密路1880弄
        households: 1460
        population: 3650
        application_year: 2025
        benchmark: true
        car_wash_pilot: true
        parking_spaces: 520
        catchments:
          - id: roofs
            surface: hard_roof
            area_m2: 3200
            first_flush_mm: 2.5
        facilities:
          - id: rainwater
            kind: rainwater_harvesting
            name: 雨水回用
            catchments: [roofs]
            tank_capacity_m3: 70
            rated_flow_m3h: 10
            simulation: {initial_level_pct: 50, tank_depth_m: 3}
            devices:
              - id: rw-controller
                profile: hy-rwc200
                connection: {protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 1}
                poll_interval_s: 60
              - id: rw-makeup
                profile: ul-wm100
                connection: {protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 2}
          - id: car-wash
            kind: car_wash
            name: 微水洗车
            devices:
              - id: car-wash-1
                profile: wx-cw01
                connection: {protocol: mqtt}
                faults: [{kind: malformed, probability: 0.1}]
          - id: master
            kind: master_meter
            name: 小区总表
            devices:
              - id: master-meter
                profile: ul-wm100
                connection:
                  protocol: modbus_rtu
                  serial_port: /dev/ttyUSB0
                  baudrate: 9600
                  unit_id: 1
        claims:
          - id: rainwater-daily
            facility: rainwater
            measure: rainwater_reuse_per_day
            value: 5.5
            unit: m3/day
            year: 2025
          - id: micro-wash
            facility: car-wash
            measure: car_wash_water_per_car
            value: 1.5
            unit: L/car
            year: 2025
"""

#: (case id, text replaced once in BASE, replacement, every problem as `LINE: path: message`).
EDIT_CASES: list[tuple[str, str, str, list[str]]] = [
    ('tcp-port-zero', 'port: 15020, unit_id: 1}', 'port: 0, unit_id: 1}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.port: must be >= 1']),
    ('tcp-port-text', 'port: 15020, unit_id: 1}', 'port: modbus, unit_id: 1}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.port: must be a whole number']),
    ('tcp-port-float', 'port: 15020, unit_id: 1}', 'port: 502.5, unit_id: 1}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.port: must be a whole number']),
    ('tcp-host-missing', '{protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 1}', '{protocol: modbus_tcp, port: 15020, unit_id: 1}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.host: is required']),
    ('tcp-host-empty', 'host: 127.0.0.1, port: 15020, unit_id: 1}', "host: '', port: 15020, unit_id: 1}", ['36: districts.0.communities.0.facilities.0.devices.0.connection.host: must not be empty']),
    ('tcp-unit-256', 'port: 15020, unit_id: 1}', 'port: 15020, unit_id: 256}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.unit_id: must be <= 255']),
    ('tcp-unit-negative', 'port: 15020, unit_id: 1}', 'port: 15020, unit_id: -1}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.unit_id: must be >= 0']),
    ('tcp-serial-key', 'port: 15020, unit_id: 1}', 'port: 15020, unit_id: 1, baudrate: 9600}', ['36: districts.0.communities.0.facilities.0.devices.0.connection.baudrate: is not a known field (misspelt?)']),
    ('rtu-unit-0', '                  unit_id: 1\n', '                  unit_id: 0\n', ['59: districts.0.communities.0.facilities.2.devices.0.connection.unit_id: must be >= 1']),
    ('rtu-unit-248', '                  unit_id: 1\n', '                  unit_id: 248\n', ['59: districts.0.communities.0.facilities.2.devices.0.connection.unit_id: must be <= 247']),
    ('rtu-baud-9601', 'baudrate: 9600\n', 'baudrate: 9601\n', ['58: districts.0.communities.0.facilities.2.devices.0.connection.baudrate: 9601 is not one of 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200']),
    ('rtu-parity-x', 'baudrate: 9600\n', 'baudrate: 9600\n                  parity: X\n', ["59: districts.0.communities.0.facilities.2.devices.0.connection.parity: 'X' is not one of 'N', 'E' or 'O'"]),
    ('rtu-bytesize-9', 'baudrate: 9600\n', 'baudrate: 9600\n                  bytesize: 9\n', ['59: districts.0.communities.0.facilities.2.devices.0.connection.bytesize: 9 is not one of 7 or 8']),
    ('rtu-stopbits-3', 'baudrate: 9600\n', 'baudrate: 9600\n                  stopbits: 3\n', ['59: districts.0.communities.0.facilities.2.devices.0.connection.stopbits: 3 is not one of 1 or 2']),
    ('rtu-serial-port-missing', '                  serial_port: /dev/ttyUSB0\n', '', ['55: districts.0.communities.0.facilities.2.devices.0.connection.serial_port: is required']),
    ('rtu-host-key', '                  serial_port: /dev/ttyUSB0\n', '                  serial_port: /dev/ttyUSB0\n                  host: 127.0.0.1\n', ['58: districts.0.communities.0.facilities.2.devices.0.connection.host: is not a known field (misspelt?)']),
    ('connection-no-protocol', '{protocol: mqtt}', '{}', ['47: districts.0.communities.0.facilities.1.devices.0.connection: needs a protocol']),
    ('connection-protocol-upper', '{protocol: mqtt}', '{protocol: MQTT}', ["47: districts.0.communities.0.facilities.1.devices.0.connection: protocol 'MQTT' is not one of 'modbus_tcp', 'modbus_rtu', 'mqtt'"]),
    ('connection-mqtt-host', '{protocol: mqtt}', '{protocol: mqtt, host: broker}', ['47: districts.0.communities.0.facilities.1.devices.0.connection.host: is not a known field (misspelt?)']),
    ('connection-a-string', '{protocol: mqtt}', 'mqtt', ['47: districts.0.communities.0.facilities.1.devices.0.connection: must be a mapping']),
    ('connection-missing', '                connection: {protocol: mqtt}\n', '', ['45: districts.0.communities.0.facilities.1.devices.0.connection: is required']),
    ('duplicate-tcp-address-across-facilities', '{protocol: mqtt}', '{protocol: modbus_tcp, host: 127.0.0.1, port: 15020, unit_id: 2}', ['47: districts.0.communities.0.facilities.1.devices.0.connection.unit_id: Modbus address 127.0.0.1/15020/2 is already used by districts.0.communities.0.facilities.0.devices.1']),
    ('duplicate-rtu-address', 'port: 15020, unit_id: 2}', 'port: 15020, unit_id: 3}\n              - id: rw-makeup-2\n                profile: ul-wm100\n                connection: {protocol: modbus_rtu, serial_port: /dev/ttyUSB0, unit_id: 1}', ['62: districts.0.communities.0.facilities.2.devices.0.connection.unit_id: Modbus address /dev/ttyUSB0/1 is already used by districts.0.communities.0.facilities.0.devices.2']),
    ('rtu-line-settings-differ', 'port: 15020, unit_id: 2}', 'port: 15020, unit_id: 3}\n              - id: rw-makeup-2\n                profile: ul-wm100\n                connection: {protocol: modbus_rtu, serial_port: /dev/ttyUSB0, unit_id: 5, baudrate: 19200}', ['58: districts.0.communities.0.facilities.2.devices.0.connection: serial line /dev/ttyUSB0 runs at 19200 baud, parity N, 8 data bits, 1 stop bits for districts.0.communities.0.facilities.0.devices.2; every device on one line needs the same baudrate, parity, bytesize and stopbits']),
    ('profile-unknown-version', 'profile: hy-rwc200', 'profile: hy-rwc200@9', ["35: districts.0.communities.0.facilities.0.devices.0.profile: unknown device profile 'hy-rwc200@9'; known profiles: hs-rp55, hy-rwc200, lq-rhc10, ul-wm100, wx-cw01"]),
    ('profile-empty', 'profile: hy-rwc200', "profile: ''", ['35: districts.0.communities.0.facilities.0.devices.0.profile: must not be empty']),
    ('profile-missing', '                profile: hy-rwc200\n', '', ['34: districts.0.communities.0.facilities.0.devices.0.profile: is required']),
    ('device-kind-contradicts-profile', '                profile: hy-rwc200\n', '                profile: hy-rwc200\n                kind: water_meter\n', ['36: districts.0.communities.0.facilities.0.devices.0.kind: kind water_meter contradicts profile hy-rwc200@1, which is a rainwater_system']),
    ('device-kind-unknown', '                profile: hy-rwc200\n', '                profile: hy-rwc200\n                kind: boiler\n', ["36: districts.0.communities.0.facilities.0.devices.0.kind: 'boiler' is not one of 'rainwater_system', 'river_pump', 'car_wash' or 'water_meter'"]),
    ('poll-interval-zero', 'poll_interval_s: 60', 'poll_interval_s: 0', ['37: districts.0.communities.0.facilities.0.devices.0.poll_interval_s: must be > 0']),
    ('poll-interval-over-a-day', 'poll_interval_s: 60', 'poll_interval_s: 86401', ['37: districts.0.communities.0.facilities.0.devices.0.poll_interval_s: must be <= 86400']),
    ('poll-interval-text', 'poll_interval_s: 60', 'poll_interval_s: 1min', ['37: districts.0.communities.0.facilities.0.devices.0.poll_interval_s: must be a number']),
    ('device-id-upper', '- id: rw-controller', '- id: RW-Controller', ["34: districts.0.communities.0.facilities.0.devices.0.id: 'RW-Controller' does not match the pattern ^[a-z0-9][a-z0-9-]*$"]),
    ('device-id-too-long', '- id: rw-controller', '- id: rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr', ['34: districts.0.communities.0.facilities.0.devices.0.id: is 65 characters long; at most 64']),
    ('device-unknown-key', 'poll_interval_s: 60', 'poll_interval_s: 60\n                pol_interval_s: 30', ['38: districts.0.communities.0.facilities.0.devices.0.pol_interval_s: is not a known field (misspelt?)']),
    ('devices-a-mapping', '            devices:\n              - id: car-wash-1\n                profile: wx-cw01\n', '            devices:\n                id: car-wash-1\n                profile: wx-cw01\n', ['44: districts.0.communities.0.facilities.1.devices: must be a list']),
    ('fault-kind-unknown', '[{kind: malformed, probability: 0.1}]', '[{kind: flood}]', ["48: districts.0.communities.0.facilities.1.devices.0.faults.0: kind 'flood' is not one of 'dropout', 'stuck', 'spike', 'reset', 'rollover', 'tamper', 'clock_skew', 'slow', 'exception', 'malformed', 'duplicate', 'out_of_order'"]),
    ('fault-kind-missing', '[{kind: malformed, probability: 0.1}]', '[{probability: 0.1}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0: needs a kind']),
    ('fault-probability-2', '[{kind: malformed, probability: 0.1}]', '[{kind: malformed, probability: 2}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.probability: must be <= 1']),
    ('fault-probability-zero', '[{kind: malformed, probability: 0.1}]', '[{kind: duplicate, probability: 0}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.probability: must be > 0']),
    ('fault-variant-unknown', '[{kind: malformed, probability: 0.1}]', '[{kind: malformed, variant: gibberish}]', ["48: districts.0.communities.0.facilities.1.devices.0.faults.0.variant: 'gibberish' is not one of 'truncated', 'wrong_type', 'missing_key', 'not_json', 'out_of_range' or 'any'"]),
    ('fault-exception-code-7', '[{kind: malformed, probability: 0.1}]', '[{kind: exception, code: 7}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.code: 7 is not one of 1, 2, 3, 4, 5, 6, 10 or 11']),
    ('fault-slow-zero', '[{kind: malformed, probability: 0.1}]', '[{kind: slow, delay_s: 0}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.delay_s: must be > 0']),
    ('fault-start-not-a-time', '[{kind: malformed, probability: 0.1}]', '[{kind: dropout, start: next tuesday}]', ["48: districts.0.communities.0.facilities.1.devices.0.faults.0.start: 'next tuesday' is not a date and time like 2025-07-01T08:00:00+08:00 (invalid character in year)"]),
    ('fault-unknown-key', '[{kind: malformed, probability: 0.1}]', '[{kind: dropout, duration: 5}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.duration: is not a known field (misspelt?)']),
    ('fault-stuck-no-quantity', '[{kind: malformed, probability: 0.1}]', '[{kind: stuck}]', ['48: districts.0.communities.0.facilities.1.devices.0.faults.0.quantity: is required']),
    ('fault-tamper-non-totalizer', '[{kind: malformed, probability: 0.1}]', '[{kind: tamper, quantity: recycled_l}]', ["48: districts.0.communities.0.facilities.1.devices.0.faults.0.quantity: 'recycled_l' is not a totalizer"]),
    ('faults-not-a-list', '[{kind: malformed, probability: 0.1}]', 'malformed', ['48: districts.0.communities.0.facilities.1.devices.0.faults: must be a list']),
    ('households-text', 'households: 1460', 'households: many', ['14: districts.0.communities.0.households: must be a whole number']),
    ('households-fraction', 'households: 1460', 'households: 1460.5', ['14: districts.0.communities.0.households: must be a whole number']),
    ('households-empty', 'households: 1460', 'households:', ['14: districts.0.communities.0.households: is empty (give it a value)']),
    ('postcode-unquoted-number', 'postcode: "200335"', 'postcode: 200335', ['12: districts.0.communities.0.postcode: must be text (quote it in YAML)']),
    ('phone-unquoted-number', 'phone: "021-62681234"', 'phone: 13812345678', ['11: districts.0.communities.0.phone: must be text (quote it in YAML)']),
    ('benchmark-maybe', 'benchmark: true', 'benchmark: maybe', ['17: districts.0.communities.0.benchmark: must be true or false']),
    ('application-year-2101', 'application_year: 2025', 'application_year: 2101', ['16: districts.0.communities.0.application_year: must be <= 2100']),
    ('application-year-text', 'application_year: 2025', 'application_year: twenty25', ['16: districts.0.communities.0.application_year: must be a whole number']),
    ('parking-negative', 'parking_spaces: 520', 'parking_spaces: -1', ['19: districts.0.communities.0.parking_spaces: must be >= 0']),
    ('name-empty', '        name: 新泾六村\n', "        name: ''\n", ['7: districts.0.communities.0.name: must not be empty']),
    ('community-unknown-key', 'parking_spaces: 520', 'parking_spaces: 520\n        parking_space: 10', ['20: districts.0.communities.0.parking_space: is not a known field (misspelt?)']),
    ('household-lpcd-zero', 'parking_spaces: 520', 'parking_spaces: 520\n        household_lpcd: 0', ['20: districts.0.communities.0.household_lpcd: must be > 0']),
    ('catchment-area-zero', 'area_m2: 3200', 'area_m2: 0', ['23: districts.0.communities.0.catchments.0.area_m2: must be > 0']),
    ('catchment-area-infinite', 'area_m2: 3200', 'area_m2: .inf', ['23: districts.0.communities.0.catchments.0.area_m2: must be a finite number (not .inf or .nan)']),
    ('catchment-area-nan', 'area_m2: 3200', 'area_m2: .nan', ['23: districts.0.communities.0.catchments.0.area_m2: must be a finite number (not .inf or .nan)']),
    ('catchment-runoff-1.5', 'first_flush_mm: 2.5', 'first_flush_mm: 2.5\n            runoff_coefficient: 1.5', ['25: districts.0.communities.0.catchments.0.runoff_coefficient: must be <= 1']),
    ('catchment-first-flush-25', 'first_flush_mm: 2.5', 'first_flush_mm: 25', ['24: districts.0.communities.0.catchments.0.first_flush_mm: must be <= 20']),
    ('catchment-duplicate-id', '        facilities:\n', '          - id: roofs\n            surface: green_roof\n            area_m2: 100\n        facilities:\n', ["21: districts.0.communities.0.catchments.0.id: catchment id 'roofs' is used more than once"]),
    ('catchment-surface-missing', '            surface: hard_roof\n', '', ['21: districts.0.communities.0.catchments.0.surface: is required']),
    ('facility-kind-unknown', 'kind: car_wash', 'kind: car_park', ["42: districts.0.communities.0.facilities.1.kind: 'car_park' is not one of 'rainwater_harvesting', 'river_water', 'car_wash' or 'master_meter'"]),
    ('facility-duplicate-id', '          - id: master\n', '          - id: car-wash\n', ["41: districts.0.communities.0.facilities.1.id: facility id 'car-wash' is used more than once", "69: districts.0.communities.0.claims.1.measure: car_wash_water_per_car needs a car_wash facility; 'car-wash' is master_meter"]),
    ('facility-catchments-on-car-wash', '            name: 微水洗车\n', '            name: 微水洗车\n            catchments: [roofs]\n', ['44: districts.0.communities.0.facilities.1.catchments: only rainwater harvesting facilities have catchments, not car_wash']),
    ('facility-tank-negative', 'tank_capacity_m3: 70', 'tank_capacity_m3: -70', ['30: districts.0.communities.0.facilities.0.tank_capacity_m3: must be > 0']),
    ('facility-tank-infinite', 'tank_capacity_m3: 70', 'tank_capacity_m3: .inf', ['30: districts.0.communities.0.facilities.0.tank_capacity_m3: must be a finite number (not .inf or .nan)']),
    ('simulation-level-120', 'initial_level_pct: 50', 'initial_level_pct: 120', ['32: districts.0.communities.0.facilities.0.simulation.initial_level_pct: must be <= 100']),
    ('simulation-unknown-key', 'initial_level_pct: 50', 'initial_level: 50', ['32: districts.0.communities.0.facilities.0.simulation.initial_level: is not a known field (misspelt?)']),
    ('simulation-irrigation-empty', 'initial_level_pct: 50', 'irrigation_hours: []', ['32: districts.0.communities.0.facilities.0.simulation.irrigation_hours: needs at least 1 item(s)']),
    ('simulation-litres-a-list', 'initial_level_pct: 50', 'litres_per_wash: [40, 50]', ['32: districts.0.communities.0.facilities.0.simulation.litres_per_wash: must be a mapping']),
    ('simulation-recycled-share-1', 'initial_level_pct: 50', 'recycled_share: 1', ['32: districts.0.communities.0.facilities.0.simulation.recycled_share: must be < 1']),
    ('claim-year-1999', '            year: 2025\n          - id: micro-wash', '            year: 1999\n          - id: micro-wash', ['66: districts.0.communities.0.claims.0.year: must be >= 2000']),
    ('claim-measure-unknown', 'measure: rainwater_reuse_per_day', 'measure: rainwater_reuse_per_week', ["63: districts.0.communities.0.claims.0.measure: 'rainwater_reuse_per_week' is not one of 'rainwater_reuse_per_day', 'rainwater_reuse_per_year', 'river_water_per_year', 'car_wash_water_per_car' or 'per_capita_use'"]),
    ('claim-value-text', 'value: 5.5', 'value: lots', ['64: districts.0.communities.0.claims.0.value: must be a number']),
    ('claim-value-infinite', 'value: 5.5', 'value: .inf', ['64: districts.0.communities.0.claims.0.value: must be a finite number (not .inf or .nan)']),
    ('claim-vehicle-class-on-rainwater', '            unit: m3/day\n', '            unit: m3/day\n            vehicle_class: sedan\n', ['66: districts.0.communities.0.claims.0.vehicle_class: only car-wash claims have a vehicle class']),
    ('claim-vehicle-class-unknown', '            unit: L/car\n', '            unit: L/car\n            vehicle_class: bus\n', ["72: districts.0.communities.0.claims.1.vehicle_class: 'bus' is not one of 'sedan', 'small', 'medium' or 'large'"]),
    ('claim-duplicate-id', '- id: micro-wash', '- id: rainwater-daily', ["61: districts.0.communities.0.claims.0.id: claim id 'rainwater-daily' is used more than once"]),
    ('claim-unit-missing', '            unit: L/car\n', '', ['67: districts.0.communities.0.claims.1.unit: is required']),
    ('claim-unknown-key', '            unit: L/car\n', '            unit: L/car\n            notes: x\n', ['72: districts.0.communities.0.claims.1.notes: is not a known field (misspelt?)']),
    ('schema-version-2', 'schema_version: 1', 'schema_version: 2', ['1: schema_version: 2 is not one of 1']),
    ('top-unknown-key', 'schema_version: 1', 'schema_version: 1\nversion: 3', ['2: version: is not a known field (misspelt?)']),
    ('districts-empty', 'districts:\n  - id: changning', 'districts: []\nx:\n  - id: changning', ['2: districts: needs at least 1 item(s)', '3: x: is not a known field (misspelt?)']),
    ('district-name-missing', '    name: 长宁区\n', '', ['3: districts.0.name: is required']),
    ('yaml-tab-indent', '        households: 1460\n', '\thouseholds: 1460\n', ["14: yaml: found character '\\t' that cannot start any token"]),
    ('yaml-unclosed-quote', 'postcode: "200335"', 'postcode: "200335', ['12: yaml: while scanning a quoted scalar starting here, found unexpected end of stream']),
    ('yaml-undefined-alias', 'households: 1460', 'households: *count', ["14: yaml: found undefined alias 'count'"]),
    ('yaml-python-tag', 'households: 1460', 'households: !!python/object:os.system x', ["14: yaml: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"]),
    ('yaml-bad-indent', '        population: 3650\n', '         population: 3650\n', ['15: yaml: mapping values are not allowed here']),

]  # fmt: skip


def _community(cid: str, pilot: bool = False) -> str:
    """Another community of the district, appended after xinjing-6."""
    return (
        f"      - id: {cid}\n        name: 小区{cid}\n        street_town: 新泾镇\n        residents_committee: 居委会\n"
        f'        contact: 张伟\n        phone: "13812345678"\n        postcode: "200335"\n        address: 地址\n'
        f"        households: 100\n        population: 250\n        application_year: 2025\n"
        f"        car_wash_pilot: {'true' if pilot else 'false'}\n"
    )


_LINES = BASE.count("\n")  # the first line after BASE is _LINES + 1

#: (case id, the whole file as bytes, every problem as `LINE: path: message`).
FILE_CASES: list[tuple[str, bytes, list[str]]] = [
    ("empty-file", b"", ["1: file: an inventory is a mapping with a `districts` list"]),
    ("only-a-comment", b"# site\n", ["1: file: an inventory is a mapping with a `districts` list"]),
    ("top-level-list", b"- id: changning\n", ["1: file: an inventory is a mapping with a `districts` list"]),
    ("top-level-scalar", b"changning\n", ["1: file: an inventory is a mapping with a `districts` list"]),
    ("districts-missing", b"schema_version: 1\n", ["1: districts: is required"]),
    (
        "districts-without-value",
        b"schema_version: 1\ndistricts:\n",
        ["2: districts: is empty (give it a value)"],
    ),
    ("districts-a-mapping", b"districts:\n  changning: {}\n", ["1: districts: must be a list"]),
    (
        "latin1-byte",
        BASE.replace("households: 1460", "households: 1460  # café").encode().replace(b"\xc3\xa9", b"\xe9"),
        ["14: file: not UTF-8 text: byte 0xe9 (invalid continuation byte); save it as UTF-8"],
    ),
    (
        "saved-as-gbk",
        BASE.encode("gb18030"),
        ["4: file: not UTF-8 text: byte 0xb3 (invalid start byte); save it as UTF-8"],
    ),
    (
        "nul-character",
        BASE.replace("households: 1460", "households: 14\x0060").encode(),
        ["14: yaml: character #x0000 is not allowed in YAML text"],
    ),
    (
        "two-documents",
        (BASE + "---\nschema_version: 1\n").encode(),
        [f"{_LINES + 1}: yaml: expected a single document in the stream, but found another document"],
    ),
    (
        "nested-too-deeply",
        b"districts: " + b"[" * 20_000 + b"]" * 20_000,
        ["1: yaml: nested too deeply to be an inventory"],
    ),
    (
        "number-of-5000-digits",
        BASE.replace("households: 1460", "households: " + "9" * 5000).encode(),
        [
            "14: yaml: a number has too many digits (Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit)"
        ],
    ),
    (
        "blank-key",
        BASE.replace("schema_version: 1", "schema_version: 1\n' ': 1").encode(),
        ["2: ' ': is not a known field (misspelt?)"],
    ),
    (
        "key-with-a-dot",
        BASE.replace("        households: 1460", "        households.count: 1460").encode(),
        [
            "6: districts.0.communities.0.households: is required",
            "14: districts.0.communities.0.'households.count': is not a known field (misspelt?)",
        ],
    ),
    (
        "numeric-top-level-key",
        BASE.replace("schema_version: 1", "schema_version: 1\n7: x").encode(),
        ["2: 7: keys should be strings"],
    ),
    (
        "duplicate-district-id",
        (BASE + "  - id: changning\n    name: 长宁区（二）\n").encode(),
        [
            "3: districts.0.id: district id 'changning' is used more than once",
            f"{_LINES + 1}: districts.1.id: district id 'changning' is used more than once",
        ],
    ),
    (
        "communities-a-string",
        (BASE + "  - id: xuhui\n    name: 徐汇区\n    communities: none\n").encode(),
        [f"{_LINES + 3}: districts.1.communities: must be a list"],
    ),
    (
        "third-car-wash-pilot",
        (BASE + _community("c1", pilot=True) + _community("c2", pilot=True)).encode(),
        [
            f"{_LINES + 24}: districts.0.communities.2.car_wash_pilot: district 'changning' has 3 car-wash "
            "pilots in 2025; the programme allows at most 2"
        ],
    ),
    (
        "community-id-in-two-districts",
        (BASE + "  - id: xuhui\n    name: 徐汇区\n    communities:\n" + _community("xinjing-6")).encode(),
        [
            f"{_LINES + 4}: districts.1.communities.0.id: community id 'xinjing-6' is already used at "
            "districts.0.communities.0"
        ],
    ),
]


def _problems(tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "site.yaml"
    path.write_bytes(data)
    with pytest.raises(InventoryError) as info:
        load_site(path)
    prefix = f"{path}:"
    assert all(p.startswith(prefix) for p in info.value.problems), info.value.problems
    assert str(info.value) == "\n".join(info.value.problems)  # what `jieshui check` prints
    return [p.removeprefix(prefix) for p in info.value.problems]


def test_base_inventory_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert load_site(path).summary() == "1 district(s), 1 communities, 3 facilities, 4 devices, 2 claims"


@pytest.mark.parametrize(("case", "old", "new", "expected"), EDIT_CASES, ids=[c[0] for c in EDIT_CASES])
def test_a_bad_edit_is_refused_with_line_path_and_message(
    tmp_path: Path, case: str, old: str, new: str, expected: list[str]
) -> None:
    assert BASE.count(old) == 1, f"{case}: the edit target must occur once in BASE"
    assert _problems(tmp_path, BASE.replace(old, new).encode()) == expected


@pytest.mark.parametrize(("case", "data", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_file_is_refused_with_line_and_what_is_wrong(
    tmp_path: Path, case: str, data: bytes, expected: list[str]
) -> None:
    assert sorted(_problems(tmp_path, data)) == sorted(expected), case


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(InventoryError) as info:
        load_site(path)
    assert info.value.problems == [
        f"{path}:0: file: cannot read: [Errno 2] No such file or directory: '{path}'"
    ]
