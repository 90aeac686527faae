"""Everything a running service holds: loaded once at start, shared by all requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from signer.errors import UsageError
from signer.service import database, keyring, keys
from signer.service.attesting import AttestingService
from signer.service.auth import Authenticator
from signer.service.bootstrap import LOG_NAMES, transparency_logs
from signer.service.ca import CertificateAuthority
from signer.service.config import Settings, passphrase
from signer.service.log import TransparencyLog
from signer.service.signing import SigningService
from signer.service.store import Store
from signer.service.tsa import TimestampAuthority
from signer.sigstore_json import TransparencyLogInstance
from signer.trust import Authority, TrustMaterial, log_instance


@dataclass
class Runtime:
    settings: Settings
    store: Store
    auth: Authenticator
    service: SigningService
    trust: TrustMaterial
    attesting: AttestingService = field(init=False)

    def __post_init__(self) -> None:
        self.attesting = AttestingService(self.service)


def load(settings: Settings) -> Runtime:
    layout = settings.layout
    if not layout.certificate("root").exists():
        raise UsageError(f"{settings.data_dir} is not initialized.",
                         f"Run 'signer server init --data-dir {settings.data_dir}' first.")
    secret = passphrase()
    root = keys.read_certificate(layout.certificate("root"))
    # Each kind's keys, read once: the active one signs, every one is in the trust root
    # (a retired key with its validFor closed, so old bundles verify).
    rings = {kind: keyring.load(layout, kind, secret) for kind in ("ca", "tsa")}
    ca_cert, tsa_cert = rings["ca"].active.certificate, rings["tsa"].active.certificate
    assert ca_cert is not None
    assert tsa_cert is not None
    ca = CertificateAuthority(rings["ca"].signer, ca_cert, root,
                              validity=settings.cert_validity)
    tsa = TimestampAuthority(rings["tsa"].signer, [tsa_cert, root])
    url = database.database_url(settings.database_url, settings.data_dir)
    engine = database.create_engine(url)
    current, head = database.current_revision(engine), database.head_revision()
    if current != head:
        raise UsageError(f"The database schema is at {current}, this release needs {head}.",
                         "Run 'signer server migrate' first.")
    if not all(layout.key(name).exists() for name in LOG_NAMES):
        raise UsageError("The transparency log keys are missing.",
                         "Run 'signer server migrate' first.")
    rings.update((name, keyring.load(layout, name, secret)) for name in LOG_NAMES)
    tlog, ctlog = transparency_logs(settings, engine, rings)
    for log in (tlog, ctlog):
        log.resign_head()  # after 'signer server rotate-key': the head in the active key
    trust = TrustMaterial(cas=_authorities(rings["ca"], root),
                          tsas=_authorities(rings["tsa"], root),
                          tlogs=_log_instances(tlog, rings["tlog"]),
                          ctlogs=_log_instances(ctlog, rings["ctlog"]))
    store = Store(engine)
    auth = Authenticator(store, settings.audience, settings.insecure_issuers,
                         settings.service_issuer)
    service = SigningService(store, auth, ca, tsa, trust, tlog, ctlog)
    return Runtime(settings, store, auth, service, trust)


def _authorities(ring: keyring.Ring, root: x509.Certificate) -> tuple[Authority, ...]:
    return tuple(Authority((v.certificate, root), v.start, v.end)
                 for v in ring.versions if v.certificate is not None)


def _log_instances(log: TransparencyLog, ring: keyring.Ring
                   ) -> tuple[TransparencyLogInstance, ...]:
    """Every key the log has signed with, the active one last, each with its validFor."""
    return tuple(log_instance(log.base_url, v.public_key, v.start, v.end)
                 for v in ring.versions)
