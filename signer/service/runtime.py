"""Everything a running service holds: loaded once at start, shared by all requests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from signer.errors import UsageError
from signer.service import database, keys
from signer.service.auth import Authenticator
from signer.service.bootstrap import LOG_NAMES, transparency_logs
from signer.service.ca import CertificateAuthority
from signer.service.config import Settings, passphrase
from signer.service.signing import SigningService
from signer.service.store import Store
from signer.service.tsa import TimestampAuthority
from signer.trust import Authority, TrustMaterial, log_instance


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
    ca = CertificateAuthority(
        keys.read_key(layout.key("intermediate"), secret),
        keys.read_certificate(layout.certificate("intermediate")), root,
        validity=settings.cert_validity,
    )
    tsa_cert = keys.read_certificate(layout.certificate("tsa"))
    tsa = TimestampAuthority(keys.read_key(layout.key("tsa"), secret), [tsa_cert, root])
    trust = TrustMaterial(
        cas=(Authority((ca.certificate, root), ca.certificate.not_valid_before_utc),),
        tsas=(Authority((tsa_cert, root), tsa_cert.not_valid_before_utc),),
    )
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
    start = root.not_valid_before_utc
    trust = dataclasses.replace(trust, tlogs=(log_instance(tlog, start),),
                                ctlogs=(log_instance(ctlog, start),))
    store = Store(engine)
    auth = Authenticator(store, settings.audience, settings.insecure_issuers,
                         settings.service_issuer)
    service = SigningService(store, auth, ca, tsa, trust, tlog, ctlog)
    return Runtime(settings, store, auth, service, trust)
