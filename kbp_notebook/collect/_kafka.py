"""Private helpers shared by the Kafka collectors: admin client, config hygiene, errors.

Credentials handed to a collector (``sasl_plain_password``, ``ssl_password``,
token providers) go to kafka-python and nowhere else: ``public_config``
lists only keys that are safe to write into a recording, and ``redact``
scrubs secret values out of any text we build from a third-party message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kbp_notebook.errors import KbpConnectionError, KbpError, KbpInputError

__all__ = [
    "DEFAULT_CLIENT_CONFIG",
    "PUBLIC_CONFIG_KEYS",
    "connect_admin",
    "public_config",
    "redact",
    "secret_values",
    "translate_kafka_error",
]

#: Timeouts on every network call: a snapshot never hangs for kafka-python's 30 s defaults.
DEFAULT_CLIENT_CONFIG: dict[str, Any] = {
    "client_id": "kbp-notebook",
    "request_timeout_ms": 10_000,
    "bootstrap_timeout_ms": 10_000,
    "reconnect_backoff_max_ms": 2_000,
    "connections_max_idle_ms": 540_000,
}

#: Config keys whose values may be written into ``meta.json`` and events.
PUBLIC_CONFIG_KEYS = frozenset(
    {
        "client_id",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "request_timeout_ms",
        "bootstrap_timeout_ms",
        "api_version",
        "ssl_check_hostname",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_crlfile",
    }
)

_SECRET_KEYS = ("password", "secret", "token", "credential", "ssl_context", "keyfile")


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_KEYS)


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the subset of a kafka-python config that is safe to record."""
    return {
        key: (list(value) if isinstance(value, tuple) else value)
        for key, value in sorted(config.items())
        if key in PUBLIC_CONFIG_KEYS and not _is_secret_key(key)
    }


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """Return the string values of secret-looking keys (to scrub them from text)."""
    return [
        str(value)
        for key, value in config.items()
        if _is_secret_key(key) and isinstance(value, str) and value
    ]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a secret value in ``text`` with ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Return ``ExcType: message`` with secrets scrubbed."""
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(text, secrets)


_T = TypeVar("_T")


def kafka_error_types(*names: str) -> tuple[type[BaseException], ...]:
    """Return the classes of ``kafka.errors`` with these names that this kafka-python has."""
    import kafka.errors as kerr

    found = (getattr(kerr, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type) and issubclass(cls, BaseException))


def admin_request(
    bootstrap_servers: str | list[str],
    kafka_config: Mapping[str, Any],
    action: str,
    request: Callable[[Any], _T],
) -> _T:
    """Connect an admin client, run ``request(admin)``, close it; errors become KbpErrors.

    ``action`` names what was being done in messages (``"reading topic configs"``).
    """
    admin = connect_admin(bootstrap_servers, kafka_config)
    try:
        return request(admin)
    except Exception as exc:
        raise translate_kafka_error(
            exc, _address(bootstrap_servers), action, secret_values(kafka_config)
        ) from None
    finally:
        admin.close()


def translate_kafka_error(
    exc: BaseException, address: str, action: str, secrets: Iterable[str] = ()
) -> KbpError:
    """Turn a kafka-python or socket error into a KbpError naming the address."""
    import kafka.errors as kerr

    detail = describe_exception(exc, secrets)
    if isinstance(exc, kerr.KafkaConfigurationError | TypeError | ValueError):
        return KbpInputError(
            f"Invalid Kafka client settings for {address} while {action}: {detail}. "
            f"Check the keyword arguments (kafka-python names, e.g. security_protocol=).",
            address=address,
        )
    refusals = (
        (
            kafka_error_types(
                "AuthenticationFailedError",
                "SaslAuthenticationFailedError",
                "AuthenticationMethodNotSupported",
                "IllegalSaslStateError",
                "UnsupportedSaslMechanismError",
            ),
            "rejected the credentials while {action} ({detail}). Check the user name, "
            "password and sasl_mechanism (e.g. SCRAM-SHA-512).",
        ),
        (
            kafka_error_types(
                "GroupAuthorizationFailedError",
                "TopicAuthorizationFailedError",
                "ClusterAuthorizationFailedError",
            ),
            "denied access while {action} ({detail}). The principal needs DESCRIBE on the "
            "groups and topics (and on the cluster to list groups).",
        ),
    )
    for types, text in refusals:
        if types and isinstance(exc, types):
            return KbpConnectionError(
                f"Kafka at {address} " + text.format(action=action, detail=detail),
                address=address,
            )
    return KbpConnectionError(
        f"Cannot reach Kafka at {address} while {action} ({detail}). Check that the "
        f"brokers are running, the address and port, the listener's security protocol, "
        f"and firewalls.",
        address=address,
    )


class _RedactSecrets(logging.Filter):
    """Scrub known secret values out of kafka-python's own log records.

    ``KafkaAdminClient`` logs its whole configuration, password included, at
    DEBUG: a notebook with ``logging.basicConfig(level="DEBUG")`` would put
    the password in its output and in any report rendered from it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(secret in text for secret in self.secrets):
                record.msg, record.args = redact(text, self.secrets), ()
        return True


_REDACTOR = _RedactSecrets()
#: kafka-python loggers that may print a client's configuration.
_CONFIG_LOGGERS = ("kafka.admin.client", "kafka.client_async", "kafka.net.manager")


def _guard_logs(secrets: Iterable[str]) -> None:
    values = [secret for secret in secrets if secret]
    if not values:
        return
    _REDACTOR.secrets.update(values)
    for name in _CONFIG_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def check_client_config(bootstrap_servers: str | list[str], config: Mapping[str, Any]) -> None:
    """Raise the KbpInputError :func:`connect_admin` would for unknown settings, offline.

    kafka-python checks the names of its settings in ``KafkaAdminClient()``,
    which also connects; this check needs no broker.
    """
    import kafka.errors as kerr
    from kafka import KafkaAdminClient

    unknown = set(config) - set(KafkaAdminClient.DEFAULT_CONFIG)
    if unknown:
        error = kerr.KafkaConfigurationError(f"Unrecognized configs: {unknown}")
        raise translate_kafka_error(error, _address(bootstrap_servers), "connecting") from None


def connect_admin(bootstrap_servers: str | list[str], config: Mapping[str, Any]) -> Any:
    """Create a ``KafkaAdminClient`` or raise a KbpError naming the address.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]`` or a list of them.
    config
        kafka-python client settings (merged over ``DEFAULT_CLIENT_CONFIG``).

    Returns
    -------
    kafka.KafkaAdminClient
        A connected admin client.
    """
    from kafka import KafkaAdminClient

    address = _address(bootstrap_servers)
    merged = {**DEFAULT_CLIENT_CONFIG, **config}
    _guard_logs(secret_values(merged))
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap_servers, **merged)
    except Exception as exc:  # kafka-python raises many unrelated types here
        error = translate_kafka_error(exc, address, "connecting", secret_values(merged))
        protocol = str(merged.get("security_protocol", "PLAINTEXT")).upper()
        if (
            isinstance(error, KbpConnectionError)
            and protocol.startswith("SASL")
            and "rejected the credentials" not in str(error)
            and _tcp_reachable(address)
        ):
            # kafka-python reports a failed SASL login as a dropped socket and then a
            # bootstrap timeout; a port that accepts TCP points at the credentials.
            mechanism = merged.get("sasl_mechanism") or "the SASL mechanism"
            user = merged.get("sasl_plain_username")
            raise KbpConnectionError(
                f"Kafka at {address} accepts connections but the {protocol} login with "
                f"{mechanism}"
                + (f" as user {user!r}" if user else "")
                + " failed (authentication failed or not supported by that listener). Check "
                "the user name, password and sasl_mechanism, and that this port is the SASL "
                "listener.",
                address=address,
            ) from None
        raise error from None


def _tcp_reachable(address: str, timeout_s: float = 2.0) -> bool:
    """Tell whether any ``host:port`` of ``address`` accepts a TCP connection."""
    import socket

    for server in address.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            continue
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


def check_reachable(bootstrap_servers: str | list[str], *, timeout_s: float = 3.0) -> None:
    """Raise unless some bootstrap server accepts a TCP connection (no Kafka request sent).

    Raises
    ------
    KbpConnectionError
        No server of ``bootstrap_servers`` accepted a connection within ``timeout_s``.
    """
    address = _address(bootstrap_servers)
    if not _tcp_reachable(address, timeout_s=timeout_s):
        raise KbpConnectionError(
            f"Cannot reach Kafka at {address} (no server accepted a TCP connection within "
            f"{timeout_s:g} s); check the host names, ports and that the brokers run.",
            address=address,
        )


def _address(bootstrap_servers: str | list[str]) -> str:
    if isinstance(bootstrap_servers, str):
        return bootstrap_servers
    return ",".join(bootstrap_servers)
