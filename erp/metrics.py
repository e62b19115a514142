"""Prometheus metrics of the ERP service (module level: one registry per process)."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter("erp_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "erp_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
AUTH_FAILURES = Counter("erp_auth_failures_total", "Failed authentications", ["reason"])
RATE_LIMITED = Counter("erp_rate_limited_total", "Requests refused by a rate limit", ["limit"])
REGISTRATIONS = Counter("erp_registrations_total", "Staff registrations", ["outcome"])
ACTIVATIONS = Counter("erp_activations_total", "Account activation attempts", ["outcome"])

# Known label values start at 0, so the first burst after a restart is an increase Prometheus can see
# (a series born at its first increment has no earlier sample, and increase() misses that step).
for _reason in ("unauthorized", "network_denied", "scope_denied"):
    AUTH_FAILURES.labels(_reason)
for _limit in ("auth_failures", "ip", "key", "activation"):
    RATE_LIMITED.labels(_limit)
for _outcome in ("created", "replayed", "staff_exists", "position_not_found"):
    REGISTRATIONS.labels(_outcome)
for _outcome in ("ok", "wrong_code", "unknown_login", "expired", "weak_password"):
    ACTIVATIONS.labels(_outcome)
