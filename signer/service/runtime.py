"""Everything a running service holds: loaded once at start, shared by all requests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cryptography import x509
from sigstore_models.trustroot.v1 import TransparencyLogInstance

from signer.errors import UsageError
from signer.service import database, keyring, keys
from signer.service.auth import Authenticator
from signer.service.bootstrap import LOG_NAMES, resign_head, transparency_logs
from signer.service.ca import CertificateAuthority
from signer.service.config import Layout, Settings, passphrase
from signer.service.log import TransparencyLog
from signer.service.signing import SigningService
from signer.service.store import Store
from signer.service.tsa import TimestampAuthority
from signer.trust import Authority, TrustMaterial, log_key_instance


@dataclass
class Runtime:
    settings: Settings
    store: Store
    auth: Authenticator
    service: SigningService
    trust: TrustMaterial


def load(settings: Settings) -> Runtime:
    layout = settings.layout
    if not layout.certificate("root").exists():
        raise UsageError(f"{settings.data_dir} is not initialized.",
                         f"Run 'signer server init --data-dir {settings.data_dir}' first.")
    secret = passphrase()
    root = keys.read_certificate(layout.certificate("root"))
    ca_key, ca_version = keyring.active_key(layout, "ca", secret)
    assert ca_version.certificate is not None
    ca = CertificateAuthority(ca_key, ca_version.certificate, root,
                              validity=settings.cert_validity)
    tsa_key, tsa_version = keyring.active_key(layout, "tsa", secret)
    assert tsa_version.certificate is not None
    tsa = TimestampAuthority(tsa_key, [tsa_version.certificate, root])
    # Retired CAs and TSAs stay in the trust root, their validFor closed: old bundles verify.
    trust = TrustMaterial(cas=_authorities(layout, "ca", root, secret),
                          tsas=_authorities(layout, "tsa", root, secret))
    url = database.database_url(settings.database_url, settings.data_dir)
    engine = database.create_engine(url)
    current, head = database.current_revision(engine), database.head_revision()
    if current != head:
        raise UsageError(f"The database schema is at {current}, this release needs {head}.",
                         "Run 'signer server migrate' first.")
    if not all(layout.key(name).exists() for name in LOG_NAMES):
        raise UsageError("The transparency log keys are missing.",
                         "Run 'signer server migrate' first.")
    tlog, ctlog = transparency_logs(settings, engine)
    for log in (tlog, ctlog):
        resign_head(log)  # after 'signer server rotate-key': the head in the active key
    trust = dataclasses.replace(trust, tlogs=_log_instances(layout, tlog, secret),
                                ctlogs=_log_instances(layout, ctlog, secret))
    store = Store(engine)
    auth = Authenticator(store, settings.audience, settings.insecure_issuers,
                         settings.service_issuer)
    service = SigningService(store, auth, ca, tsa, trust, tlog, ctlog)
    return Runtime(settings, store, auth, service, trust)


def _authorities(layout: Layout, kind: str, root: x509.Certificate, secret: bytes | None
                 ) -> tuple[Authority, ...]:
    return tuple(Authority((v.certificate, root), v.start, v.end)
                 for v in keyring.versions(layout, kind, secret) if v.certificate is not None)


def _log_instances(layout: Layout, log: TransparencyLog, secret: bytes | None
                   ) -> tuple[TransparencyLogInstance, ...]:
    """Every key the log has signed with, the active one last, each with its validFor."""
    return tuple(log_key_instance(log.base_url, v.public_key, v.start, v.end)
                 for v in keyring.versions(layout, log.name, secret))
