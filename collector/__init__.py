"""Collector: Modbus and MQTT inputs -> pipeline -> durable buffer -> store (built in the collector issue)."""
