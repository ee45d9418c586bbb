"""kubemetrics exporter: kubelet Summary API -> Prometheus metrics.

Pipeline: source (bytes from a kubelet) -> parse (typed records) -> metrics (table of
definitions) -> collect (metric families) -> server (HTTP).
"""
