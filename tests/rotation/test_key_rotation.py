"""``signer server rotate-key``: sign, rotate each key kind, sign again; every bundle, old and
new, verifies with our verifier (online and offline), sigstore-python and sigstore-js, and the
log monitor stays green across the tlog key change."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_oidc import FakeGitHubIssuer
from tests.interop.conftest import Signed
from tests.interop.test_sigstore_js import js_verify
from tests.interop.test_sigstore_python import sigstore_verify
from tests.service_process import SIGNER, Service, clean_env, database, init
from tests.softhsm import file_keys_only

pytestmark = pytest.mark.integration
PASSPHRASE = "rotation test passphrase"
KINDS = ("ca", "tsa", "tlog", "ctlog")


@dataclass
class Rotated:
    service: Service
    issuer: FakeGitHubIssuer
    workdir: Path
    namespace: str
    # name → (artifact, bundle); "before" was signed before any rotation, "after-tlog" after
    # the tlog key changed, "after-all" after every kind changed.
    bundles: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    identity: str = ""
    root: Path = Path()
    config: Path = Path()
    old_root: Path = Path()
    monitor_runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    rotations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def signed(self, name: str) -> Signed:
        artifact, bundle = self.bundles[name]
        return Signed(self.workdir, artifact, bundle, self.config, self.root, self.identity,
                      self.issuer.url, "", "", self.service.data_dir / "keys")


def rotate(service: Service, kind: str) -> dict[str, Any]:
    args = [SIGNER, "server", "rotate-key", "--data-dir", str(service.data_dir), kind,
            "--output", "json"]
    if service.database_url:
        args += ["--database-url", service.database_url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env=clean_env(SIGNER_CA_PASSPHRASE=PASSPHRASE))
    assert done.returncode == 0, done.stderr
    assert "restart every replica" in done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def sign(state: Rotated, name: str) -> None:
    artifact = state.workdir / f"{name}.txt"
    artifact.write_text(f"artifact signed {name}\n")
    bundle = state.workdir / f"{name}.sigstore.json"
    done = state.service.cli("artifact", "sign", "--file", str(artifact), "--bundle",
                             str(bundle), "--enable-github-action-token", "--output", "json",
                             cwd=state.workdir, env={**state.issuer.runner_env(),
                                                     "SIGNER_NAMESPACE": state.namespace})
    assert done.returncode == 0, done.stderr
    state.identity = json.loads(done.stdout)["identity"]
    state.bundles[name] = (artifact, bundle)


def monitor(state: Rotated, checkpoint: Path) -> subprocess.CompletedProcess[str]:
    done = state.service.cli("log", "verify", "--trust-root", str(state.root), "--checkpoint",
                             str(checkpoint))
    state.monitor_runs.append(done)
    return done


def export(state: Rotated, out: str, client_config: bool = False) -> Path:
    args = ["trust-root", "export", "--out", out] + (["--client-config"] if client_config else [])
    done = state.service.cli(*args, cwd=state.workdir)
    assert done.returncode == 0, done.stderr
    return state.workdir / out


@pytest.fixture(scope="module")
def rotated(issuer: FakeGitHubIssuer, tmp_path_factory: pytest.TempPathFactory, backend: str
            ) -> Iterator[Rotated]:
    """A service of its own (rotation changes its keys), with an encrypted key directory."""
    data_dir = tmp_path_factory.mktemp(f"rotation-{backend}") / "data"
    workdir = tmp_path_factory.mktemp(f"rotation-work-{backend}")
    with database(backend) as url:
        env = {"SIGNER_CA_PASSPHRASE": PASSPHRASE}
        service = Service(data_dir, init(data_dir, url, **env), issuer.url, database_url=url,
                          env=env)
        service.start()
        try:
            state = Rotated(service, issuer, workdir, service.tenant().namespace)
            sign(state, "before")
            state.old_root = export(state, "trusted_root.before.json")
            state.root = state.old_root
            checkpoint = workdir / "checkpoint.txt"
            assert monitor(state, checkpoint).returncode == 0  # saved: signed by the old key
            # tlog first, while the service runs; then the restart the command asks for.
            state.rotations["tlog"] = rotate(service, "tlog")
            service.stop()
            service.start()
            sign(state, "after-tlog")
            state.root = export(state, "trusted_root.json")
            monitor(state, checkpoint)  # from the old key's checkpoint to the new key's
            for kind in ("ca", "tsa", "ctlog"):
                state.rotations[kind] = rotate(service, kind)
            service.stop()
            service.start()
            sign(state, "after-all")
            state.root = export(state, "trusted_root.json")
            state.config = export(state, "trust_config.json", client_config=True)
            monitor(state, checkpoint)
            yield state
        finally:
            service.stop()


BUNDLES = ("before", "after-tlog", "after-all")


def test_trust_root_keeps_old_keys_closed_and_new_ones_open(rotated: Rotated) -> None:
    root = json.loads(rotated.root.read_text())
    before = json.loads(rotated.old_root.read_text())
    for section, kind in (("certificateAuthorities", "ca"), ("timestampAuthorities", "tsa"),
                          ("tlogs", "tlog"), ("ctlogs", "ctlog")):
        # The Rekor v2 log is listed among the tlogs too, by its checkpointKeyId.
        listed = [x for x in root[section] if "checkpointKeyId" not in x]
        assert len(listed) == 2, section
        valid = [x.get("validFor") or x["publicKey"]["validFor"] for x in listed]
        old, new = valid
        at = rotated.rotations[kind]["active"]["start"]
        assert "end" not in new and new["start"] == at
        assert old["end"] == at and old["start"] < at
        # The old entry is exactly what the trust root said before, apart from its end.
        previous = before[section][0]
        assert _without_validity(listed[0]) == _without_validity(previous)
    tlog_ids = {t["logId"]["keyId"] for t in root["tlogs"] if "checkpointKeyId" not in t}
    assert len(tlog_ids) == 2


def _without_validity(item: dict[str, Any]) -> dict[str, Any]:
    item = json.loads(json.dumps(item))
    item.pop("validFor", None)
    item.get("publicKey", {}).pop("validFor", None)
    return item


def test_bundles_name_the_keys_that_signed_them(rotated: Rotated) -> None:
    ids = [_entry(rotated, name)["logId"]["keyId"] for name in BUNDLES]
    assert ids[0] != ids[1] == ids[2]
    hints = [base64.b64decode(_entry(rotated, name)["inclusionProof"]["checkpoint"]["envelope"]
                              .rsplit(" ", 1)[1])[:4] for name in BUNDLES]
    assert [h == base64.b64decode(i)[:4] for h, i in zip(hints, ids, strict=True)] == [True] * 3
    indices = [int(_entry(rotated, name)["logIndex"]) for name in BUNDLES]
    assert indices == sorted(indices) and len(set(indices)) == 3  # one tree, indices go on


def _entry(rotated: Rotated, name: str) -> dict[str, Any]:
    return json.loads(rotated.bundles[name][1].read_text())["verificationMaterial"][
        "tlogEntries"][0]


def test_key_files_are_private_and_encrypted(rotated: Rotated) -> None:
    file_keys_only()
    for kind in KINDS:
        path = rotated.service.data_dir / "keys" / rotated.rotations[kind]["active"]["key"]
        assert path.stat().st_mode & 0o777 == 0o600
        assert b"ENCRYPTED" in path.read_bytes().split(b"\n", 1)[0]


@pytest.mark.parametrize("name", BUNDLES)
def test_own_verifier_online_and_offline(rotated: Rotated, name: str) -> None:
    artifact, bundle = rotated.bundles[name]
    verify = ["artifact", "verify", "--file", str(artifact), "--certificate-oidc-issuer",
              rotated.issuer.url, "--certificate-identity", rotated.identity,
              "--trust-root", str(rotated.root)]
    online = rotated.service.cli(*verify, env={**rotated.issuer.runner_env(),
                                               "SIGNER_NAMESPACE": rotated.namespace,
                                               "SIGNER_ENABLE_GITHUB_ACTION_TOKEN": "true"})
    assert online.returncode == 0, online.stderr
    offline = rotated.service.cli(*verify, "--bundle", str(bundle))
    assert offline.returncode == 0, offline.stderr


@pytest.mark.parametrize("name", BUNDLES)
def test_sigstore_python(rotated: Rotated, name: str) -> None:
    done = sigstore_verify(rotated.signed(name), rotated.bundles[name][1])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", BUNDLES)
def test_sigstore_js(rotated: Rotated, name: str) -> None:
    done = js_verify(rotated.signed(name), rotated.bundles[name][1])
    assert done.returncode == 0, done.stdout + done.stderr


def test_monitor_green_across_the_tlog_rotation(rotated: Rotated) -> None:
    first, across, last = rotated.monitor_runs
    assert first.returncode == 0 and "first run" in first.stdout, first.stdout
    assert across.returncode == 0, across.stdout + across.stderr
    assert "log consistent" in across.stdout and "(was " in across.stdout
    assert last.returncode == 0, last.stdout + last.stderr


def test_trust_root_from_before_the_rotation_refuses_new_bundles(rotated: Rotated) -> None:
    """Re-export after rotating: a pinned old trust root does not know the new keys."""
    artifact, bundle = rotated.bundles["after-all"]
    done = rotated.service.cli("artifact", "verify", "--file", str(artifact),
                               "--certificate-oidc-issuer", rotated.issuer.url,
                               "--trust-root", str(rotated.old_root), "--bundle", str(bundle))
    assert done.returncode == 1
    assert "step 2 (timestamp) failed" in done.stderr, done.stderr


@pytest.mark.parametrize(("section", "step"), [
    ("timestampAuthorities", "step 2 (timestamp)"),
    ("certificateAuthorities", "step 3 (certificate chain)"),
    ("ctlogs", "step 5 (certificate transparency (SCT))"),
    ("tlogs", "step 6 (transparency log entry)"),
])
def test_old_key_outside_its_validity_is_refused(rotated: Rotated, section: str, step: str
                                                 ) -> None:
    """The old bundle, with a trust root whose old key retired before the bundle was made:
    each kind of key is refused at its own step, by our verifier and by sigstore-js."""
    root = json.loads(rotated.root.read_text())
    item = root[section][0]
    valid = item.get("validFor") or item["publicKey"]["validFor"]
    start = datetime.fromisoformat(valid["start"])
    valid["end"] = (start + timedelta(seconds=0)).isoformat().replace("+00:00", "Z")
    valid["start"] = (start - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    edited = rotated.workdir / f"retired-early-{section}.json"
    edited.write_text(json.dumps(root))
    artifact, bundle = rotated.bundles["before"]
    done = rotated.service.cli("artifact", "verify", "--file", str(artifact),
                               "--certificate-oidc-issuer", rotated.issuer.url,
                               "--trust-root", str(edited), "--bundle", str(bundle))
    assert done.returncode == 1
    assert step + " failed" in done.stderr, done.stderr
    signed = rotated.signed("before")
    signed.root = edited
    assert js_verify(signed, bundle).returncode == 1


def test_rekor_api_names_the_key_of_each_entry(rotated: Rotated) -> None:
    """Entries read back through the Rekor API carry the log id, promise and checkpoint of
    the key that signed them, as in their bundles."""
    token = _namespace_key(rotated)
    for name in ("before", "after-all"):
        entry = _entry(rotated, name)
        got = rotated.service.get(f"/api/v1/log/entries?logIndex={entry['logIndex']}",
                                  token=token)
        assert got.status_code == 200, got.text
        (served,) = got.json().values()
        assert base64.b64decode(entry["logId"]["keyId"]).hex() == served["logID"]
        envelope = served["verification"]["inclusionProof"]["checkpoint"]
        hint = base64.b64decode(envelope.rstrip("\n").rsplit(" ", 1)[1])[:4]
        assert hint == base64.b64decode(entry["logId"]["keyId"])[:4]


def _namespace_key(rotated: Rotated) -> str:
    key = rotated.service.admin().request(
        "POST", f"/v1/namespaces/{rotated.namespace}/api-keys",
        json={"name": "reader", "permissions": ["verify"]})
    return str(key["token"])
