"""kubemetrics adapter: PromQL results served as the Kubernetes metrics APIs.

Pipeline: config (rules file) -> rules (compiled) -> promql (query building) ->
clients (Prometheus, Kubernetes) -> providers -> objects -> api (Flask) -> server.
"""
