"""The adapter's serving certificate and the TLS context its server uses.

Either ``--tls-cert-file``/``--tls-private-key-file`` are given, or a pair is generated into a
certificate directory once (a throw-away CA plus a serving certificate signed by it, as the
generic apiserver's self-signed fallback does) and reused on the next start while it is valid.

Client certificates are requested but optional: the aggregator presents its front-proxy
certificate, while bearer-token clients and probes present none. Python's ``ssl`` can only
request a certificate by also verifying it, so the context trusts exactly the request-header CA
and a client certificate from any other CA fails the handshake (Go's apiserver would accept the
connection and treat the request as unauthenticated instead). The context is rebuilt when the CA
bundle changes, e.g. after the extension-apiserver-authentication ConfigMap rotates it.

``--tls-min-version`` and ``--tls-cipher-suites`` take the generic apiserver's Go names
(``VersionTLS13``, ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``); ``tls_policy_from_flags`` turns
them into a ``TLSPolicy`` (OpenSSL names) or names every value it cannot honour. As in Go, the
list applies to TLS 1.2 only: TLS 1.3 suites are not configurable and their names are accepted.

Exceptions::

    TLSConfigError   a certificate or key that cannot be used; the message names the file
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GENERATED_CERT_NAME = "apiserver.crt"
GENERATED_KEY_NAME = "apiserver.key"
GENERATED_VALIDITY = datetime.timedelta(days=365)
# Regenerate a little before expiry so a restart never serves an expired certificate.
RENEW_BEFORE = datetime.timedelta(days=30)


class TLSConfigError(Exception):
    """A serving certificate or key cannot be used; the message says which file and why."""


# Go's tls.VersionName spellings, as --tls-min-version takes them. TLS 1.0 and 1.1 are known so
# the error can say why they are refused rather than that they do not exist.
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "VersionTLS10": ssl.TLSVersion.TLSv1,
    "VersionTLS11": ssl.TLSVersion.TLSv1_1,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}
LOWEST_SERVED_VERSION = ssl.TLSVersion.TLSv1_2

# Go / IANA cipher suite name → OpenSSL name, for every name the generic apiserver's
# --tls-cipher-suites accepts (Go's CipherSuites() and InsecureCipherSuites(), plus the legacy
# CHACHA20 spellings kube-prometheus still passes). None: a TLS 1.3 suite, always enabled.
GO_CIPHER_SUITES: dict[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
}


@dataclass(frozen=True)
class TLSPolicy:
    """Protocol floor and TLS 1.2 cipher suites (OpenSSL names; empty: OpenSSL's defaults)."""

    min_version: ssl.TLSVersion = LOWEST_SERVED_VERSION
    cipher_suites: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServingCertificate:
    """What the server presents, and the TLS policy it serves with."""

    cert_file: Path
    key_file: Path
    policy: TLSPolicy = TLSPolicy()


def _openssl_supports(cipher: str) -> bool:
    # Builds without RC4/3DES (OpenSSL 3 by default) reject the name here rather than at serving.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(cipher)
    except ssl.SSLError:
        return False
    return True


def tls_policy_from_flags(
    min_version: str | None, cipher_suites: str | None
) -> tuple[TLSPolicy, list[str]]:
    """``--tls-min-version`` / ``--tls-cipher-suites`` (Go names) → a policy and every problem."""
    problems: list[str] = []
    version = LOWEST_SERVED_VERSION
    if min_version:
        known = TLS_VERSIONS.get(min_version)
        if known is None:
            problems.append(
                f"--tls-min-version {min_version!r} is not one of {', '.join(TLS_VERSIONS)}"
            )
        elif known < LOWEST_SERVED_VERSION:
            problems.append(
                f"--tls-min-version {min_version!r}: kubemetrics-adapter serves TLS 1.2 or newer"
                " (use VersionTLS12 or VersionTLS13)"
            )
        else:
            version = known
    openssl_names: list[str] = []
    unknown: list[str] = []
    unsupported: list[str] = []
    for name in (part.strip() for part in (cipher_suites or "").split(",")):
        if not name:
            continue
        if name not in GO_CIPHER_SUITES:
            unknown.append(name)
            continue
        openssl_name = GO_CIPHER_SUITES[name]
        if openssl_name is None:
            continue
        if not _openssl_supports(openssl_name):
            unsupported.append(name)
        elif openssl_name not in openssl_names:
            openssl_names.append(openssl_name)
    if unknown:
        problems.append(
            f"--tls-cipher-suites: unknown cipher suite(s) {', '.join(unknown)}"
            " (use Go/IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
        )
    if unsupported:
        problems.append(
            f"--tls-cipher-suites: not supported by this server's OpenSSL ({ssl.OPENSSL_VERSION}):"
            f" {', '.join(unsupported)}"
        )
    only_tls13_names = not (openssl_names or unknown or unsupported)
    if cipher_suites and only_tls13_names and version < ssl.TLSVersion.TLSv1_3:
        problems.append(
            "--tls-cipher-suites lists only TLS 1.3 suites, which leaves TLS 1.2 clients"
            " nothing to negotiate; add TLS 1.2 suites or use --tls-min-version=VersionTLS13"
        )
    return TLSPolicy(version, tuple(openssl_names)), problems


@dataclass(frozen=True)
class GeneratedPair:
    """PEM bytes of a generated serving certificate chain (leaf, then CA) and its key."""

    cert_chain_pem: bytes
    key_pem: bytes


def _subject_alternative_names(names: Sequence[str]) -> list[x509.GeneralName]:
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    return alternative_names


def serving_names(extra_names: Sequence[str]) -> tuple[str, ...]:
    """localhost and 127.0.0.1 first, then the configured names, without duplicates."""
    names: list[str] = []
    for name in ("localhost", "127.0.0.1", *extra_names):
        if name and name not in names:
            names.append(name)
    return tuple(names)


def generate_self_signed_pair(names: Sequence[str], now: datetime.datetime) -> GeneratedPair:
    """A CA and a serving certificate for ``names`` (CN = first name); pure, no files."""
    not_before = now - datetime.timedelta(hours=1)  # tolerate clock skew between nodes
    not_after = now + GENERATED_VALIDITY
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{names[0]}-ca@{int(now.timestamp())}")]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(names)), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return GeneratedPair(
        cert_chain_pem=cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _load_leaf(cert_file: Path) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except OSError as err:
        raise TLSConfigError(f"{cert_file}: cannot read ({err.strerror})") from None
    except ValueError as err:
        raise TLSConfigError(f"{cert_file}: not a PEM certificate ({err})") from None
    if not certificates:
        raise TLSConfigError(f"{cert_file}: contains no certificate")
    return certificates[0]


def _generated_pair_usable(
    cert_file: Path, key_file: Path, names: Sequence[str], now: datetime.datetime
) -> bool:
    if not (cert_file.is_file() and key_file.is_file()):
        return False
    try:
        leaf = _load_leaf(cert_file)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (TLSConfigError, x509.ExtensionNotFound):
        return False
    covered = {str(value) for value in san.get_values_for_type(x509.DNSName)} | {
        str(value) for value in san.get_values_for_type(x509.IPAddress)
    }
    return set(names) <= covered and leaf.not_valid_after_utc - RENEW_BEFORE > now


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write atomically so a crash never leaves half a key; keys are never world-readable."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_serving_certificate(
    cert_file: Path | None,
    key_file: Path | None,
    cert_dir: Path,
    extra_names: Sequence[str] = (),
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> ServingCertificate:
    """The files to serve with: the given pair (checked), or a generated one in ``cert_dir``."""
    if (cert_file is None) != (key_file is None):
        raise TLSConfigError(
            "--tls-cert-file and --tls-private-key-file must be given together "
            f"(got only {'--tls-cert-file' if cert_file else '--tls-private-key-file'})"
        )
    if cert_file is not None and key_file is not None:
        check_key_pair(cert_file, key_file)
        return ServingCertificate(cert_file, key_file)
    names = serving_names(extra_names)
    generated = ServingCertificate(cert_dir / GENERATED_CERT_NAME, cert_dir / GENERATED_KEY_NAME)
    moment = now()
    if _generated_pair_usable(generated.cert_file, generated.key_file, names, moment):
        return generated
    try:
        cert_dir.mkdir(parents=True, exist_ok=True)
        pair = generate_self_signed_pair(names, moment)
        _write_private(generated.key_file, pair.key_pem, 0o600)
        _write_private(generated.cert_file, pair.cert_chain_pem, 0o644)
    except OSError as err:
        raise TLSConfigError(
            f"--cert-dir {cert_dir}: cannot write a self-signed certificate ({err.strerror})"
        ) from None
    return generated


def check_key_pair(cert_file: Path, key_file: Path) -> None:
    """Raise TLSConfigError unless the files load as a matching certificate and key."""
    _load_leaf(cert_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except OSError as err:
        raise TLSConfigError(f"{key_file}: cannot read ({err.strerror})") from None
    except ssl.SSLError as err:
        raise TLSConfigError(
            f"{cert_file} / {key_file}: not a matching certificate and private key ({err.reason})"
        ) from None


def server_ssl_context(serving: ServingCertificate, client_ca_pem: str) -> ssl.SSLContext:
    """Server context with ``serving.policy`` (TLS ≥ 1.2); asks for (optional) client certs
    only when a CA is given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = max(serving.policy.min_version, LOWEST_SERVED_VERSION)
    if serving.policy.cipher_suites:
        context.set_ciphers(":".join(serving.policy.cipher_suites))
    context.options |= ssl.OP_NO_COMPRESSION
    context.load_cert_chain(certfile=str(serving.cert_file), keyfile=str(serving.key_file))
    if client_ca_pem.strip():
        context.load_verify_locations(cadata=client_ca_pem)
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


class ServerContextFactory:
    """Hands out the server context for the current client CA, rebuilding it when that changes.

    Called for every accepted connection (gunicorn's ``ssl_context`` hook), so it is cheap when
    nothing changed: one call to ``client_ca`` and a string comparison.
    """

    def __init__(self, serving: ServingCertificate, client_ca: Callable[[], str]) -> None:
        self._serving = serving
        self._client_ca = client_ca
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._context_ca: str | None = None

    def __call__(self) -> ssl.SSLContext:
        ca_pem = self._client_ca()
        with self._lock:
            if self._context is None or ca_pem != self._context_ca:
                self._context = server_ssl_context(self._serving, ca_pem)
                self._context_ca = ca_pem
            return self._context
