"""The operator's control plane: the daemon's HTTP API (health, readiness, status, pause, resume,
kill, reset, reload, and /metrics), its OpenAPI description, and the `mm-daemon ctl` client.

The package knows nothing of the engine: the server calls a `ControlTarget` (implemented by
`mm_daemon.engine.control`), and every body it sends or reads is a model of `api`.
"""
