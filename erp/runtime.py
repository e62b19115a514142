"""Process-wide state of a running ERP app: settings, key cache, rate limiters, alert monitor."""

from __future__ import annotations

from dataclasses import dataclass

from erp.security.api_keys import KeyCache
from erp.security.network import Network, parse_networks
from erp.security.ratelimit import FailureWindow, TokenBuckets
from erp.services.activation_backoff import LoginBackoff
from erp.services.alerts import AlertMonitor
from erp.services.audit import RefusalTally
from erp.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    keys: KeyCache
    key_buckets: TokenBuckets
    ip_buckets: TokenBuckets
    activation_buckets: TokenBuckets
    activation_logins: LoginBackoff  # in the database: shared by all replicas
    auth_failures: FailureWindow
    alerts: AlertMonitor
    refusals: RefusalTally
    trusted_proxies: tuple[Network, ...]
    allowed_networks: tuple[Network, ...]
    metrics_networks: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        per_minute = settings.rate_limit_activation_per_minute
        return cls(
            settings=settings,
            keys=KeyCache(settings.api_key_cache_seconds),
            key_buckets=TokenBuckets(settings.rate_limit_key_per_second, settings.rate_limit_key_burst),
            ip_buckets=TokenBuckets(settings.rate_limit_ip_per_second, settings.rate_limit_ip_burst),
            activation_buckets=TokenBuckets(per_minute / 60.0, max(1, int(per_minute))),
            activation_logins=LoginBackoff.from_settings(settings),
            auth_failures=FailureWindow(settings.auth_failure_limit, settings.auth_failure_window_seconds),
            alerts=AlertMonitor(settings),
            refusals=RefusalTally(settings.audit_refusal_interval_seconds),
            trusted_proxies=parse_networks(settings.trusted_proxies),
            allowed_networks=parse_networks(settings.allowed_networks),
            metrics_networks=parse_networks(settings.metrics_networks),
        )
