"""Operations: Prometheus metrics, readiness, draining on SIGTERM and OpenTelemetry traces."""
