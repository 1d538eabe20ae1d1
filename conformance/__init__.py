"""Conformance worker and runner for the public vgi-rpc conformance suite."""
