"""Keys on a PKCS#11 token (an HSM, or SoftHSM2): generated there, never extractable, used
there.

The data directory holds a reference, ``keys/pkcs11.json``: the module path, the token label
and each key's label — never the PIN (``SIGNER_PKCS11_PIN``), never key bytes::

    {"version": 1, "module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "signer",
     "label_prefix": "", "keys": {"root": "root", "intermediate": "ca-2026", ...}}

:class:`TokenKeys` is the :class:`~signer.service.keys.KeyStore` over it: ``generate(name)``
makes a P-256 pair on the token (private half CKA_TOKEN, CKA_SENSITIVE, not CKA_EXTRACTABLE,
for signing only; label = the prefix + the name) and records it; ``load(name)`` finds a key by its
recorded label. Each
:class:`TokenKey` hashes with SHA-256 here and has the token sign the digest (CKM_ECDSA:
SoftHSM2 has no CKM_ECDSA_SHA256), turning the raw r‖s into DER.

Threads: python-pkcs11 initializes the module with ``C_Initialize(NULL)``, which under
PKCS#11 (§5.4) promises the module no concurrent calls — SoftHSM2 then switches its own
locks off. So every call into the module runs on one thread per process, the token's
(:class:`Token`), and every caller waits for it at most :data:`CALL_TIMEOUT`: a module call
that blocks (a network HSM gone quiet) holds no request thread. The signing threads (request
pool, log sequencers) share one logged-in session; a sign is one C_SignInit + C_Sign.

Failures: any error from the token while serving (CKR_DEVICE_REMOVED,
CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID, …) is an
:class:`~signer.errors.Unavailable` (a 503 with a detail), and the next signing after
:data:`RETRY_INTERVAL` reconnects: C_Finalize, C_Initialize, find the token, log in, find
every key by label and check it is the same public key. A token that is absent or refuses
the PIN at start is a :class:`~signer.errors.UsageError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from signer.errors import SignerError, Unavailable, UsageError

PIN_ENV: Final = "SIGNER_PKCS11_PIN"
REFERENCE: Final = "pkcs11.json"
REFERENCE_VERSION: Final = 1
CALL_TIMEOUT: Final = 5.0  # seconds a signer waits for the token
RETRY_INTERVAL: Final = 1.0  # seconds between reconnection attempts while the token is gone
_P256: Final = "1.2.840.10045.3.1.7"
_P256_PARAMS: Final = encode_named_curve_parameters(_P256)

log = logging.getLogger("signer.service")
T = TypeVar("T")


@dataclass(frozen=True)
class Reference:
    """``keys/pkcs11.json``: which module, which token, which label for each key name."""

    module: str
    token_label: str
    keys: dict[str, str] = field(default_factory=dict)
    label_prefix: str = ""  # of generated keys' labels: several services on one token

    @staticmethod
    def path(directory: Path) -> Path:
        return directory / REFERENCE

    @classmethod
    def read(cls, directory: Path) -> Reference | None:
        path = cls.path(directory)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            reference = cls(str(data["module"]), str(data["token_label"]),
                            {str(k): str(v) for k, v in data["keys"].items()},
                            str(data.get("label_prefix", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"The PKCS#11 reference {path} is damaged ({exc}).",
                             "Restore it from a backup of the data directory.") from exc
        if data.get("version") != REFERENCE_VERSION:
            raise UsageError(f"The PKCS#11 reference {path} has an unknown format.",
                             "Use the signer release that wrote it, or restore a backup.")
        return reference

    def write(self, directory: Path) -> None:
        path = self.path(directory)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": REFERENCE_VERSION, "module": self.module,
                                   "token_label": self.token_label,
                                   "label_prefix": self.label_prefix, "keys": self.keys},
                                  indent=2) + "\n")
        os.replace(tmp, path)


def pin() -> str:
    value = os.environ.get(PIN_ENV)
    if not value:
        raise UsageError("The keys are on a PKCS#11 token and no PIN is set.",
                         f"Set {PIN_ENV} to the token's user PIN.")
    return value


class Token:
    """One logged-in connection to a token, owned by one thread; reconnects after a failure."""

    def __init__(self, module: str, label: str, user_pin: str) -> None:
        self.module, self.label = module, label
        self._pin = user_pin
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"pkcs11-{label}")
        self._lib: Any = None
        self._session: Any = None
        self._keys: dict[str, Any] = {}  # label → private key object (a handle)
        self._publics: dict[str, ec.EllipticCurvePublicKey] = {}
        self._broken_at: float | None = None
        self._lock = threading.Lock()  # guards _broken_at
        self.call(self._connect, timeout=30.0)  # at start: a clear UsageError, or connected

    # -- the token thread -----------------------------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``fn`` on the token's thread; wait at most ``timeout`` [CALL_TIMEOUT]."""
        timeout = CALL_TIMEOUT if timeout is None else timeout
        future: Future[T] = self._thread.submit(fn)
        try:
            return future.result(timeout)
        except FutureTimeout:
            self._mark_broken()
            raise Unavailable(f"The PKCS#11 token '{self.label}' did not answer within "
                              f"{timeout:g} s; the request was not completed.",
                              "Check the HSM and its connection; retry in a few seconds."
                              ) from None

    def _connect(self) -> None:
        """(token thread) Load or re-initialize the module, find the token, log in."""
        if self._lib is None:
            try:
                self._lib = _library(self.module)
            except pkcs11.PKCS11Error as exc:
                raise UsageError(f"Cannot load the PKCS#11 module {self.module}: {exc}.",
                                 "Check --pkcs11-module (the .so of the HSM's vendor).") from exc
        else:
            self._session = None
            self._keys.clear()
            try:
                self._lib.reinitialize()  # after a removal, the module's old state is stale
            except pkcs11.PKCS11Error:
                self._lib.initialize()
        try:
            token = self._lib.get_token(token_label=self.label)
        except pkcs11.NoSuchToken as exc:
            raise UsageError(f"No PKCS#11 token labelled '{self.label}' is present in "
                             f"{self.module}.", "Insert or initialize the token, or check "
                             "--pkcs11-token-label ('pkcs11-tool --module M -L' lists them).") \
                from exc
        try:
            self._session = token.open(rw=True, user_pin=self._pin)
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange) as exc:
            raise UsageError(f"The PKCS#11 token '{self.label}' refused the PIN.",
                             f"Set {PIN_ENV} to the token's user PIN.") from exc
        except pkcs11.PinLocked as exc:
            raise UsageError(f"The PKCS#11 token '{self.label}' is locked (too many wrong "
                             "PINs).", "Unlock it with the SO PIN, then start again.") from exc
        except pkcs11.UserAlreadyLoggedIn:
            self._session = token.open(rw=True)
        for label in list(self._publics):
            self._find(label)

    def _find(self, label: str) -> ec.EllipticCurvePublicKey:
        """(token thread) The key labelled ``label``: its private half for signing, its public
        half read once, checked against what was found before (a reconnection)."""
        try:
            private = self._session.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label=label)
            public_obj = self._session.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC, label=label)
        except pkcs11.NoSuchKey as exc:
            raise UsageError(f"The PKCS#11 token '{self.label}' has no EC key pair labelled "
                             f"'{label}'.", "Check the key labels in keys/pkcs11.json, or "
                             "generate the key ('signer server init').") from exc
        except pkcs11.MultipleObjectsReturned as exc:
            raise UsageError(f"The PKCS#11 token '{self.label}' has several keys labelled "
                             f"'{label}'.", "Give each key its own label.") from exc
        if private[Attribute.EXTRACTABLE] or not private[Attribute.SENSITIVE]:
            raise UsageError(f"The token key '{label}' can leave the token (extractable or "
                             "not sensitive).", "Use a key made with CKA_EXTRACTABLE false and "
                             "CKA_SENSITIVE true.")
        if bytes(public_obj[Attribute.EC_PARAMS]) != _P256_PARAMS:
            raise UsageError(f"The token key '{label}' is not a P-256 key.")
        public = _public_key(bytes(public_obj[Attribute.EC_POINT]))
        known = self._publics.get(label)
        if known is not None and known != public:
            raise UsageError(f"The token key '{label}' is not the key this service was "
                             "started with.", "Restore the token, or restart the service.")
        self._publics[label], self._keys[label] = public, private
        return public

    def _generate(self, label: str) -> ec.EllipticCurvePublicKey:
        """(token thread) A new P-256 pair labelled ``label``, its private half never able to
        leave the token."""
        found = list(self._session.get_objects({Attribute.LABEL: label}))
        if found:
            raise UsageError(f"The PKCS#11 token '{self.label}' has a key labelled '{label}' "
                             "already; a key is never replaced.",
                             f"Use it with --pkcs11-key-label KIND={label}, or remove it.")
        self._session.generate_keypair(
            KeyType.EC, store=True, label=label,
            public_template={Attribute.EC_PARAMS: _P256_PARAMS, Attribute.TOKEN: True,
                             Attribute.VERIFY: True, Attribute.PRIVATE: False},
            private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True,
                              Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                              Attribute.SIGN: True, Attribute.DERIVE: False})
        return self._find(label)

    # -- what the keys call ---------------------------------------------------------------

    def key(self, label: str, *, generate: bool = False) -> TokenKey:
        public = self.call(lambda: (self._generate if generate else self._find)(label),
                           timeout=30.0)
        return TokenKey(self, label, public)

    def sign_digest(self, label: str, digest: bytes) -> bytes:
        """The raw r‖s signature over a SHA-256 digest by the key ``label``."""
        with self._lock:
            broken_at = self._broken_at
        if broken_at is not None and time.monotonic() - broken_at < RETRY_INTERVAL:
            raise self._unavailable("is unavailable")
        try:
            return self.call(lambda: self._sign(label, digest, reconnect=broken_at is not None))
        except SignerError as exc:
            if not isinstance(exc, Unavailable):
                self._mark_broken()
                raise self._unavailable(f"is not back yet ({exc.detail.rstrip('.')})") from exc
            raise
        except pkcs11.PKCS11Error as exc:
            self._mark_broken()
            log.warning("PKCS#11 token '%s' failed: %s", self.label, type(exc).__name__)
            raise self._unavailable(f"failed ({type(exc).__name__})") from exc

    def _sign(self, label: str, digest: bytes, *, reconnect: bool) -> bytes:
        """(token thread)"""
        if reconnect:
            self._connect()
            with self._lock:
                self._broken_at = None
            log.warning("PKCS#11 token '%s' is back", self.label)
        signature: bytes = self._keys[label].sign(digest, mechanism=Mechanism.ECDSA)
        return signature

    def _mark_broken(self) -> None:
        with self._lock:
            self._broken_at = time.monotonic()

    def _unavailable(self, what: str) -> Unavailable:
        return Unavailable(f"The PKCS#11 token '{self.label}' that holds the signing keys "
                           f"{what}; the request was not completed.",
                           "Retry in a few seconds; if it persists, check the HSM.")


@dataclass(frozen=True)
class TokenKey:
    """A P-256 key on a token: the public key read once, each signature one call there."""

    token: Token
    label: str
    _public: ec.EllipticCurvePublicKey

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        raw = self.token.sign_digest(self.label, hashlib.sha256(data).digest())
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:]))


class TokenKeys:
    """The key store on a token: names → labels in ``keys/pkcs11.json``."""

    def __init__(self, directory: Path, reference: Reference) -> None:
        self.directory, self.reference = directory, reference
        self.token = connect(reference.module, reference.token_label, pin())

    def label(self, name: str) -> str:
        return self.reference.keys.get(name, self.reference.label_prefix + name)

    def exists(self, name: str) -> bool:
        return name in self.reference.keys

    def describe(self, name: str) -> str:
        return f"pkcs11:{self.label(name)}"

    def generate(self, name: str) -> TokenKey:
        """A new key labelled ``<prefix><name>``, recorded in the reference — unless the
        operator named an existing key for it (``--pkcs11-key-label``), used instead."""
        if name in self.reference.keys:
            return self.token.key(self.reference.keys[name])
        label = self.reference.label_prefix + name
        key = self.token.key(label, generate=True)
        current = Reference.read(self.directory) or self.reference  # another store's additions
        self.reference.keys.update(current.keys)
        self.reference.keys[name] = label
        self.reference.write(self.directory)
        return key

    def load(self, name: str) -> TokenKey:
        return self.token.key(self.label(name))


# The key kinds of ``--pkcs11-key-label KIND=LABEL`` and the key names they are known by.
KIND_NAMES: Final = {"root": "root", "ca": "intermediate", "tsa": "tsa", "tlog": "tlog",
                     "ctlog": "ctlog"}


def key_labels(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KIND=LABEL`` pairs → {key name: label}."""
    labels: dict[str, str] = {}
    for pair in pairs:
        kind, sep, label = pair.partition("=")
        if not sep or kind not in KIND_NAMES or not label:
            raise UsageError(f"--pkcs11-key-label {pair!r} is not KIND=LABEL.",
                             f"KIND is one of {', '.join(KIND_NAMES)}; e.g. root=signer-root.")
        labels[KIND_NAMES[kind]] = label
    return labels


def use_token(directory: Path, reference: Reference) -> None:
    """Record that the keys in ``directory`` are on a token, once the token and the PIN
    answer (``server init``)."""
    token = connect(reference.module, reference.token_label, pin())
    for label in reference.keys.values():
        token.key(label)  # an operator's key: present, a P-256 pair, not extractable
    reference.write(directory)


_tokens: dict[tuple[str, str], Token] = {}
_tokens_lock = threading.Lock()


def connect(module: str, label: str, user_pin: str) -> Token:
    """The process's connection to a token: one per token, shared by every key on it (a
    module may be initialized once per process)."""
    with _tokens_lock:
        token = _tokens.get((module, label))
        if token is None:
            token = _tokens[(module, label)] = Token(module, label, user_pin)
        return token


_libraries: dict[str, Any] = {}


def _library(module: str) -> Any:
    if module not in _libraries:
        if not Path(module).is_file():
            raise UsageError(f"The PKCS#11 module {module} does not exist.",
                             "Check --pkcs11-module (e.g. /usr/lib/softhsm/libsofthsm2.so).")
        _libraries[module] = pkcs11.lib(module)
    return _libraries[module]


def _public_key(ec_point: bytes) -> ec.EllipticCurvePublicKey:
    """CKA_EC_POINT: the uncompressed point in a DER OCTET STRING (some tokens give it bare)."""
    point = ec_point[2:] if ec_point[:1] == b"\x04" and len(ec_point) == 67 else ec_point
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
