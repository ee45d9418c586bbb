"""Simulated kubelets: a deterministic cluster model, exact kubelet payloads, loopback servers.

Used by the demo, the end-to-end tests and the benchmarks; imports neither exporter nor adapter.
"""
