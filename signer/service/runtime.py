"""Everything a running service holds: loaded once at start, shared by all requests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cryptography import x509

from signer import trust as trust_json
from signer.errors import UsageError
from signer.service import database, keyring, keys, tuf_repository
from signer.service.attesting import AttestingService
from signer.service.audit import Audit
from signer.service.auth import Authenticator
from signer.service.bootstrap import LOG_NAMES, transparency_logs
from signer.service.ca import CertificateAuthority
from signer.service.config import Settings, passphrase
from signer.service.log import TransparencyLog
from signer.service.log.tiles import TileLog
from signer.service.signing import SigningService
from signer.service.store import Store
from signer.service.tsa import TimestampAuthority
from signer.sigstore_json import TransparencyLogInstance
from signer.transparency import note
from signer.trust import Authority, TrustMaterial, log_instance


@dataclass
class Runtime:
    settings: Settings
    store: Store
    auth: Authenticator
    service: SigningService
    trust: TrustMaterial
    audit: Audit
    tuf: tuf_repository.Repository | None = None  # None until 'signer tuf init'
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
    if not all(keys.key_store(layout.keys, secret).exists(name) for name in LOG_NAMES):
        raise UsageError("The transparency log keys are missing.",
                         "Run 'signer server migrate' first.")
    rings.update((name, keyring.load(layout, name, secret)) for name in LOG_NAMES)
    tlog, ctlog, tlog_v2 = transparency_logs(settings, engine, rings)
    assert isinstance(tlog_v2, TileLog)
    for log in (tlog, ctlog, tlog_v2):
        log.resign_head()  # after 'signer server rotate-key': the head in the active key
    trust = _trust_material(rings, root, tlog, ctlog, tlog_v2)
    tuf = tuf_repository.load(settings.data_dir, secret)
    if tuf is not None:  # the trust root and config as TUF targets, re-signed if they changed
        publish(tuf, settings, trust)
        tuf.refresh()
    audit = Audit.open(settings.audit_log)
    store = Store(engine)
    auth = Authenticator(store, settings.audience, settings.insecure_issuers,
                         settings.service_issuer)
    service = SigningService(store, auth, ca, tsa, trust, tlog, ctlog, tlog_v2, audit)
    return Runtime(settings, store, auth, service, trust, audit, tuf)


def _trust_material(rings: dict[str, keyring.Ring], root: x509.Certificate,
                    tlog: TransparencyLog, ctlog: TransparencyLog, tlog_v2: TransparencyLog
                    ) -> TrustMaterial:
    # The v1 log's keys first: a v1 entry finds its key by log id either way.
    return TrustMaterial(cas=_authorities(rings["ca"], root),
                         tsas=_authorities(rings["tsa"], root),
                         tlogs=_log_instances(tlog, rings["tlog"])
                         + _log_instances(tlog_v2, rings["tlog2"], checkpoint_key_id=True),
                         ctlogs=_log_instances(ctlog, rings["ctlog"]))


def publish(repository: tuf_repository.Repository, settings: Settings, trust: TrustMaterial
            ) -> int | None:
    """The TUF targets: this trust root, and the signing config ``/v1/trust-config`` serves.
    → the new targets version, or None when they were published already."""
    start = trust.cas[0].start
    return repository.publish({
        tuf_repository.TRUSTED_ROOT_TARGET: trust.to_json().encode(),
        tuf_repository.SIGNING_CONFIG_TARGET:
            trust_json.signing_config_json(trust, settings.url, start).encode(),
    }, settings.url)


def publish_rotation(settings: Settings) -> int | None:
    """After ``signer server rotate-key``: the trust root of the key ring now on disk, as the
    TUF targets at once, with the URL the service published last (a running replica still
    serves its old ``/v1/trust-root`` until it restarts). → the new targets version, or None
    when there is no repository or the service never published."""
    secret = passphrase()
    repository = tuf_repository.load(settings.data_dir, secret)
    url = repository.published_url() if repository is not None else None
    if repository is None or url is None:
        return None
    settings = dataclasses.replace(settings, public_url=url)
    rings = {kind: keyring.load(settings.layout, kind, secret) for kind in keyring.KINDS}
    root = keys.read_certificate(settings.layout.certificate("root"))
    engine = database.create_engine(database.database_url(settings.database_url,
                                                          settings.data_dir))
    try:
        tlog, ctlog, tlog_v2 = transparency_logs(settings, engine, rings)
        return publish(repository, settings,
                       _trust_material(rings, root, tlog, ctlog, tlog_v2))
    finally:
        engine.dispose()


def _authorities(ring: keyring.Ring, root: x509.Certificate) -> tuple[Authority, ...]:
    return tuple(Authority((v.certificate, root), v.start, v.end)
                 for v in ring.versions if v.certificate is not None)


def _log_instances(log: TransparencyLog, ring: keyring.Ring, checkpoint_key_id: bool = False
                   ) -> tuple[TransparencyLogInstance, ...]:
    """Every key the log has signed with, the active one last, each with its validFor.
    ``checkpoint_key_id``: a Rekor v2 log, whose logId is its C2SP checkpoint key id."""
    name = note.sigstore_log_name(log.base_url) if checkpoint_key_id else None
    return tuple(log_instance(log.base_url, v.public_key, v.start, v.end, checkpoint_name=name)
                 for v in ring.versions)
