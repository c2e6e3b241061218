"""Signing credentials: production PEM files, checked, or a development chain made on first use
(the C2PA signer needs a certificate chain and its key)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.provenance.files import _locked, _read_bytes, _write_atomic
from generation.provenance.record import ProvenanceError

logger = logging.getLogger(__package__)  # "generation.provenance", as before the split

_DEV_CHAIN = "dev-chain.pem"
_DEV_KEY = "dev-signer.key"
_DEV_ROOT = "dev-root.pem"
_DEV_ORGANISATION = "Attribution Royalty Platform (development)"


@dataclass(frozen=True)
class SigningCredentials:
    certificate_chain_pem: bytes  # leaf first, then intermediates / root
    private_key_pem: bytes  # PKCS#8 PEM of the leaf key
    trust_anchors_pem: bytes | None  # root(s) a reader should trust; None = none configured


def credentials_from_files(
    chain: Path, key: Path, trust_anchors: Path | None = None
) -> SigningCredentials:
    """Load production signing credentials (PEM files).

    Raises ProvenanceError when a file cannot be read or parsed, the key is encrypted or of an
    unsupported type, or the key does not belong to the first (leaf) certificate of the chain.
    """
    chain_pem = _read_bytes(chain, "certificate chain")
    key_pem = _read_bytes(key, "private key")
    anchors_pem = _read_bytes(trust_anchors, "trust anchors") if trust_anchors else None
    return _checked_credentials(chain_pem, key_pem, anchors_pem)


def development_credentials(directory: Path) -> SigningCredentials:
    """Development signing credentials under `directory`, created on first use and reused.

    Makes an ES256 (P-256) root CA and a leaf certificate issued by it: the leaf has
    digitalSignature key usage, the emailProtection extended key usage that c2pa accepts for
    claim signing, and ``CA:FALSE``. Files: ``dev-chain.pem`` (leaf + root), ``dev-signer.key``
    (mode 0600) and ``dev-root.pem`` (the trust anchor). The root's private key is never
    written, so nothing else can be issued from it. The set is made again if a file is missing
    or unusable, or the leaf expires within a day. A lock file serialises concurrent workers.
    """
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory / ".dev-credentials.lock"):
            paths = [directory / _DEV_CHAIN, directory / _DEV_KEY, directory / _DEV_ROOT]
            if all(p.is_file() for p in paths):
                try:
                    credentials = credentials_from_files(*paths)
                except ProvenanceError as exc:
                    logger.warning(
                        "development credentials in %s unusable (%s); renewing", directory, exc
                    )
                else:
                    if not _leaf_expires_soon(credentials.certificate_chain_pem):
                        return credentials
                    logger.warning("development certificate in %s expires; renewing", directory)
            chain_pem, key_pem, root_pem = _make_development_chain()
            _write_atomic(directory / _DEV_ROOT, root_pem, mode=0o644)
            _write_atomic(directory / _DEV_CHAIN, chain_pem, mode=0o644)
            _write_atomic(directory / _DEV_KEY, key_pem, mode=0o600)
    except OSError as exc:
        raise ProvenanceError(
            f"cannot create development credentials in {directory}: {exc}"
        ) from exc
    return _checked_credentials(chain_pem, key_pem, root_pem)


def _make_development_chain() -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _DEV_ORGANISATION),
            ]
        )

    def key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # tolerate small clock differences between machines
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("Attribution Platform Development Root CA"))
        .issuer_name(name("Attribution Platform Development Root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Attribution Platform Development Signer"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=2 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    chain_pem = leaf.public_bytes(serialization.Encoding.PEM) + root_pem
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain_pem, key_pem, root_pem


def _checked_credentials(
    chain_pem: bytes, key_pem: bytes, anchors_pem: bytes | None
) -> SigningCredentials:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ProvenanceError(f"certificate chain is not valid PEM: {exc}") from exc
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"private key is not an unencrypted PEM key: {exc}") from exc
    _signing_algorithm(private_key)  # rejects unsupported key types early
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificates[0].public_key().public_bytes(*public) != private_key.public_key().public_bytes(
        *public
    ):
        raise ProvenanceError(
            "private key does not match the signing certificate (first certificate of the chain)"
        )
    if anchors_pem is not None:
        try:
            x509.load_pem_x509_certificates(anchors_pem)
        except ValueError as exc:
            raise ProvenanceError(f"trust anchors are not valid PEM certificates: {exc}") from exc
    # c2pa wants PKCS#8; normalise SEC1 ("EC PRIVATE KEY") and PKCS#1 keys.
    pkcs8 = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningCredentials(chain_pem, pkcs8, anchors_pem)


def _signing_algorithm(private_key: Any) -> Any:
    import c2pa
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        by_curve = {
            "secp256r1": c2pa.C2paSigningAlg.ES256,
            "secp384r1": c2pa.C2paSigningAlg.ES384,
            "secp521r1": c2pa.C2paSigningAlg.ES512,
        }
        if private_key.curve.name in by_curve:
            return by_curve[private_key.curve.name]
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    elif isinstance(private_key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    raise ProvenanceError(f"unsupported signing key type: {type(private_key).__name__}")


def _leaf_expires_soon(chain_pem: bytes) -> bool:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return leaf.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
