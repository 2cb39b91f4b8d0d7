"""The Kafka connection's security settings, for aiokafka clients and for Faust alike.

One place turns ``KAPPA_SECURITY_PROTOCOL`` and friends into what each library takes,
so the worker, the replay and every admin query connect the same way.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from agents.errors import ConfigError
from app.settings import KappaSettings


def ssl_context(settings: KappaSettings) -> ssl.SSLContext | None:
    if not settings.security_protocol.endswith("SSL"):
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
            password=settings.ssl_key_password.get_secret_value()
            if settings.ssl_key_password
            else None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot build the TLS context for {settings.security_protocol}: {exc}",
            hint="check KAPPA_SSL_CAFILE, KAPPA_SSL_CERTFILE and KAPPA_SSL_KEYFILE",
        ) from exc
    return context


def aiokafka_security(settings: KappaSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def faust_credentials(
    settings: KappaSettings,
) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust's ``broker_credentials`` for the same settings."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
