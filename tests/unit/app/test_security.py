"""The Kafka security settings reach aiokafka and Faust in the shape each expects."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from agents.errors import ConfigError
from app.kafka_client import client_options
from app.security import faust_credentials
from app.settings import KappaSettings


def settings(**values: object) -> KappaSettings:
    return KappaSettings.model_validate({"bootstrap_servers": "kafka:9092", **values})


def test_plaintext_adds_nothing_but_the_protocol() -> None:
    options = client_options(settings())
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options
    assert "sasl_mechanism" not in options
    assert faust_credentials(settings()) is None


def test_sasl_ssl_passes_mechanism_user_password_and_tls() -> None:
    configured = settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="kappa",
        sasl_password="s3cret",
    )
    options = client_options(configured)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "kappa"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(configured)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "kappa"
    assert credentials.password == "s3cret"
    assert str(credentials.protocol.value) == "SASL_SSL"
    assert "s3cret" not in repr(configured)  # secrets stay out of logs


def test_ssl_uses_an_ssl_credentials_object() -> None:
    credentials = faust_credentials(settings(security_protocol="SSL"))
    assert isinstance(credentials, faust.SSLCredentials)


def test_a_missing_ca_file_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KAPPA_SSL_CAFILE"):
        client_options(settings(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem"))


def test_an_unknown_protocol_is_rejected() -> None:
    with pytest.raises(ValueError, match="security_protocol"):
        settings(security_protocol="KERBEROS")
