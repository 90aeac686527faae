"""Trust material: Sigstore ``trusted_root.json``, built by the service, pinned by verifiers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signer.errors import UsageError
from signer.sigstore_json import (
    PKIX_ECDSA_P256_SHA_256,
    SHA2_256,
    TRUSTED_ROOT_MEDIA_TYPES,
    CertificateAuthority,
    ClientTrustConfig,
    DistinguishedName,
    LogId,
    PublicKey,
    Service,
    ServiceConfiguration,
    SigningConfig,
    TimeRange,
    TransparencyLogInstance,
    TrustedRoot,
    WireError,
    X509Certificate,
    X509CertificateChain,
)
from signer.transparency import note
from signer.transparency.sct import log_id

MEDIA_TYPE: Final = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


@dataclass(frozen=True)
class Authority:
    """A CA or TSA: its chain (leaf-most first, root last) and when it may be trusted."""

    chain: tuple[x509.Certificate, ...]
    start: datetime
    end: datetime | None = None

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]


@dataclass(frozen=True)
class TrustMaterial:
    cas: tuple[Authority, ...]
    tsas: tuple[Authority, ...]
    tlogs: tuple[TransparencyLogInstance, ...] = ()
    ctlogs: tuple[TransparencyLogInstance, ...] = ()

    @property
    def rekor_v1_tlogs(self) -> tuple[TransparencyLogInstance, ...]:
        """The Rekor v1 log's keys: a v2 log's instance carries its checkpointKeyId."""
        return tuple(t for t in self.tlogs if t.checkpoint_key_id is None)

    def to_json(self) -> str:
        return self.to_model().to_json()

    def to_model(self) -> TrustedRoot:
        return TrustedRoot(
            media_type=MEDIA_TYPE,
            certificate_authorities=tuple(_authority_model(a, "signer CA") for a in self.cas),
            timestamp_authorities=tuple(_authority_model(a, "signer TSA") for a in self.tsas),
            tlogs=self.tlogs,
            ctlogs=self.ctlogs,
        )


def _authority_model(authority: Authority, common_name: str) -> CertificateAuthority:
    return CertificateAuthority(
        subject=DistinguishedName(organization="signer", common_name=common_name),
        cert_chain=X509CertificateChain(certificates=tuple(
            X509Certificate(raw_bytes=c.public_bytes(Encoding.DER)) for c in authority.chain)),
        valid_for=TimeRange(start=authority.start, end=authority.end),
    )


CLIENT_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
SIGNING_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.signingconfig.v0.2+json"


def client_trust_config(trust: TrustMaterial, url: str, start: datetime,
                        namespace: str | None = None) -> str:
    """Sigstore's ClientTrustConfig: this trust root, and the service as CA, OIDC, log, TSA.

    With a namespace, its services: Fulcio, Rekor and the TSA under ``<url>/ns/<namespace>``
    (``signer.service.sigstore_api``), which Sigstore's clients sign through.

    Rekor is listed twice, v1 and v2 at the same URL (clients POST ``<url>/api/v1|v2/log/
    entries``), by one operator: a client takes one log per operator, the highest version it
    speaks (sigstore-python 4.x: v2), unless told otherwise (``--rekor-version 1``).
    """
    base = url if namespace is None else f"{url}/ns/{namespace}"

    def service(path: str = "", at: str = base, version: int = 1) -> Service:
        return Service(url=at + path, major_api_version=version,
                       valid_for=TimeRange(start=start), operator="signer")

    any_one = ServiceConfiguration(selector="ANY")
    return ClientTrustConfig(
        media_type=CLIENT_CONFIG_MEDIA_TYPE,
        trusted_root=trust.to_model(),
        signing_config=SigningConfig(
            media_type=SIGNING_CONFIG_MEDIA_TYPE, ca_urls=(service(),),
            oidc_urls=(service("/auth", url),),
            rekor_tlog_urls=(service(), service(version=2)), rekor_tlog_config=any_one,
            tsa_urls=(service("/api/v1/timestamp"),), tsa_config=any_one),
    ).to_json()


def signing_config_json(trust: TrustMaterial, url: str, start: datetime) -> str:
    """The signing config of :func:`client_trust_config`, alone: the TUF target
    ``signing_config.v0.2.json`` (sigstore-python reads it so, next to ``trusted_root.json``)."""
    config = ClientTrustConfig.from_json(client_trust_config(trust, url, start))
    return config.signing_config.to_json()


def log_instance(base_url: str, key: ec.EllipticCurvePublicKey, start: datetime,
                 end: datetime | None = None, checkpoint_name: str | None = None
                 ) -> TransparencyLogInstance:
    """A log key as the trust root lists it: URL, DER SPKI, log id (SHA-256 of the SPKI),
    validity. A rotated log is listed once per key, so entries and checkpoints name theirs.

    ``checkpoint_name``: a Rekor v2 log's key name; its logId and checkpointKeyId are then
    both the C2SP checkpoint key id (rekor-tiles CLIENTS.md), for ECDSA the same hash."""
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key_id = log_id(key) if checkpoint_name is None else note.log_id(checkpoint_name, key)
    return TransparencyLogInstance(
        base_url=base_url,
        hash_algorithm=SHA2_256,
        public_key=PublicKey(raw_bytes=der, key_details=PKIX_ECDSA_P256_SHA_256,
                             valid_for=TimeRange(start=start, end=end)),
        log_id=LogId(key_id=key_id),
        checkpoint_key_id=None if checkpoint_name is None else LogId(key_id=key_id),
    )


def _authority(model: CertificateAuthority) -> Authority:
    chain = tuple(x509.load_der_x509_certificate(c.raw_bytes)
                  for c in model.cert_chain.certificates)
    if not chain:
        raise UsageError("The trust root lists an authority with an empty certificate chain.")
    return Authority(chain, model.valid_for.start, model.valid_for.end)


def parse(text: str | bytes, source: str = "the trust root") -> TrustMaterial:
    """A Sigstore ``trusted_root.json`` (any instance's), or the trusted root inside a
    ``ClientTrustConfig`` (what sigstore-python and cosign pin)."""
    fix = "Export it with 'signer trust-root export' or GET /v1/trust-root."
    try:
        data = json.loads(text)
        if isinstance(data, dict) and str(data.get("mediaType", "")).startswith(
                CLIENT_CONFIG_MEDIA_TYPE.split(".v0")[0]) and "trustedRoot" in data:
            data = data["trustedRoot"]
        model = TrustedRoot.from_dict(data)
        material = TrustMaterial(
            cas=tuple(_authority(a) for a in model.certificate_authorities),
            tsas=tuple(_authority(a) for a in model.timestamp_authorities),
            tlogs=model.tlogs, ctlogs=model.ctlogs,
        )
    except (WireError, ValueError, RecursionError) as exc:
        raise UsageError(f"{source} is not a Sigstore trusted_root.json: {exc}.", fix) from exc
    if model.media_type not in TRUSTED_ROOT_MEDIA_TYPES:
        raise UsageError(f"{source} has the media type {model.media_type[:80]!r}, not a "
                         "trusted root's.", fix)
    return material


def read(path: Path) -> TrustMaterial:
    try:
        return parse(path.read_bytes(), str(path))
    except OSError as exc:
        raise UsageError(f"Cannot read the trust root {path}: {exc.strerror}.") from exc
