"""Simulators: physical models of the programme's facilities and their Modbus and MQTT faces."""
