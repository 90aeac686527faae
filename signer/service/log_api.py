"""Read APIs of the logs, in the shapes existing tooling speaks.

Rekor v1 (``/api/v1/log…``) for the signature log, RFC 6962 (``/ct/v1/…``) for the CT log.
Tree heads and proofs are public (they are hashes); entry bodies name identities and
namespaces, so they are shown only to a caller who may read the entry's namespace, and the
CT log's raw entries only to the server admin.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from signer.errors import NotFound, PermissionDenied, UsageError
from signer.service.auth import Principal
from signer.service.dependencies import PrincipalDep, RuntimeDep
from signer.service.log import LogEntryRecord, TransparencyLog
from signer.service.runtime import Runtime
from signer.transparency.rekor import entry_uuid
from signer.transparency.sct import precert_chain_entry, sign_tree_head
from signer.verification.checkpoints import SignedTree, inclusion_checkpoint

MAX_ENTRIES_PER_REQUEST = 100
MAX_INDEX = 2**63 - 1  # a BIGINT: every index and tree size a route takes is bounded by it


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    entry_uuids: list[str] = Field(default_factory=list, alias="entryUUIDs", max_length=100)
    log_indexes: list[Annotated[int, Field(ge=0, le=MAX_INDEX)]] = Field(
        default_factory=list, alias="logIndexes", max_length=100)
    hash: str | None = Field(default=None, max_length=80,
                             description="sha256:<hex> of the signed artifact")


def readable(rt: Runtime, principal: Principal, row: LogEntryRecord) -> bool:
    return row.namespace is not None and "verify" in rt.auth.permissions(principal,
                                                                          row.namespace)


def rekor_entry(rt: Runtime, row: LogEntryRecord) -> dict[str, Any]:
    """A tlog entry as Rekor v1's LogEntry: ``{uuid: {body, …, verification}}``."""
    log = rt.service.tlog
    head = log.head()

    def batch() -> SignedTree:
        found = log.batch_checkpoint(int(row.idx))
        return SignedTree(int(found.size), bytes(found.root_hash), found.envelope)

    # After a rotation the entry may be a retired key's: verification says which
    # checkpoint (and so which key) its inclusion is proved in.
    signed_by, tree = inclusion_checkpoint(
        rt.trust.rekor_v1_tlogs, log.log_id,
        SignedTree(int(head.size), bytes(head.root_hash), head.checkpoint), batch)
    size, root, checkpoint = tree.size, tree.root_hash, tree.envelope
    hashes = log.inclusion_proof(int(row.idx), size)
    return {entry_uuid(bytes(row.body)): {
        "body": base64.b64encode(bytes(row.body)).decode(),
        "integratedTime": int(row.integrated_time),
        "logID": signed_by.hex(),
        "logIndex": int(row.idx),
        "verification": {
            "inclusionProof": {
                "checkpoint": checkpoint, "hashes": [h.hex() for h in hashes],
                "logIndex": int(row.idx), "rootHash": root.hex(),
                "treeSize": size,
            },
            "signedEntryTimestamp": base64.b64encode(
                bytes(row.signed_entry_timestamp or b"")).decode(),
        },
    }}


def router() -> APIRouter:
    api = APIRouter(tags=["transparency log"])

    def tlog(rt: Runtime) -> TransparencyLog:
        return rt.service.tlog

    @api.get("/api/v1/log")
    def log_info(rt: RuntimeDep) -> dict[str, Any]:
        head = tlog(rt).head()
        return {"rootHash": head.root_hash.hex(), "treeSize": head.size,
                "signedTreeHead": head.checkpoint, "treeID": str(head.tree_id)}

    @api.get("/api/v1/log/proof")
    def log_proof(rt: RuntimeDep,
                  last_size: Annotated[int, Query(alias="lastSize", ge=1, le=MAX_INDEX)],
                  first_size: Annotated[int, Query(alias="firstSize", ge=1, le=MAX_INDEX)] = 1
                  ) -> dict[str, Any]:
        log = tlog(rt)
        hashes = log.consistency_proof(first_size, last_size)
        return {"hashes": [h.hex() for h in hashes],
                "rootHash": log.checkpoint_at(last_size).root_hash.hex()}

    @api.get("/api/v1/log/checkpoints/{size}")
    def log_checkpoint(size: Annotated[int, Path(ge=0, le=MAX_INDEX)], rt: RuntimeDep
                       ) -> dict[str, Any]:
        row = tlog(rt).checkpoint_at(size)
        return {"treeSize": row.size, "rootHash": row.root_hash.hex(),
                "signedTreeHead": row.envelope}

    @api.get("/api/v1/log/entries")
    def log_entry(rt: RuntimeDep, principal: PrincipalDep,
                  log_index: Annotated[int, Query(alias="logIndex", ge=0, le=MAX_INDEX)]
                  ) -> dict[str, Any]:
        row = tlog(rt).entry(log_index)
        if not readable(rt, principal, row):
            raise NotFound(f"The tlog has no entry {log_index} you may read.")
        return rekor_entry(rt, row)

    @api.post("/api/v1/log/entries/retrieve")
    def log_retrieve(body: RetrieveRequest, rt: RuntimeDep, principal: PrincipalDep
                     ) -> list[dict[str, Any]]:
        log = tlog(rt)
        indexes = set(body.log_indexes)
        if body.hash:
            algorithm, _, value = body.hash.partition(":")
            if algorithm != "sha256" or len(value) != 64:
                raise UsageError("'hash' must be sha256:<64 hex> of the signed artifact.")
            indexes |= rt.store.log_indexes_of_digest(log.name, value.lower())
        rows = [log.entry(i) for i in sorted(indexes)[:MAX_ENTRIES_PER_REQUEST]]
        leaves = []
        for uuid in body.entry_uuids:
            try:
                leaves.append(binascii.unhexlify(uuid[-64:]))
            except (binascii.Error, ValueError) as exc:
                raise UsageError(f"'{uuid[:80]}' is not an entry UUID (64 hex).") from exc
        rows += log.entries_by_leaf(leaves) if leaves else []
        return [rekor_entry(rt, r) for r in rows if readable(rt, principal, r)]

    # -- RFC 6962 CT log ----------------------------------------------------------------------
    def ctlog(rt: Runtime) -> TransparencyLog:
        return rt.service.ctlog

    @api.get("/ct/v1/get-sth", tags=["ct log"])
    def get_sth(rt: RuntimeDep) -> dict[str, Any]:
        log = ctlog(rt)
        head = log.head()
        now_ms = int(time.time() * 1000)
        signature = sign_tree_head(log.signer, now_ms, int(head.size), bytes(head.root_hash))
        return {"tree_size": int(head.size), "timestamp": now_ms,
                "sha256_root_hash": base64.b64encode(bytes(head.root_hash)).decode(),
                "tree_head_signature": base64.b64encode(signature).decode()}

    @api.get("/ct/v1/get-sth-consistency", tags=["ct log"])
    def get_sth_consistency(rt: RuntimeDep, first: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                            second: Annotated[int, Query(ge=0, le=MAX_INDEX)]) -> dict[str, Any]:
        hashes = ctlog(rt).consistency_proof(first, second) if first else []
        return {"consistency": [base64.b64encode(h).decode() for h in hashes]}

    @api.get("/ct/v1/get-proof-by-hash", tags=["ct log"])
    def get_proof_by_hash(rt: RuntimeDep, hash: Annotated[str, Query(max_length=64)],
                          tree_size: Annotated[int, Query(ge=1, le=MAX_INDEX)]) -> dict[str, Any]:
        try:
            leaf = base64.b64decode(hash, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UsageError("'hash' must be the base64 leaf hash.") from exc
        log = ctlog(rt)
        rows = [r for r in log.entries_by_leaf([leaf]) if r.idx < tree_size]
        if not rows:
            raise NotFound(f"No CT entry with that leaf hash in the first {tree_size} entries.")
        index = rows[0].idx
        return {"leaf_index": index, "audit_path": [
            base64.b64encode(h).decode() for h in log.inclusion_proof(index, tree_size)]}

    @api.get("/ct/v1/get-entries", tags=["ct log"])
    def get_entries(rt: RuntimeDep, principal: PrincipalDep,
                    start: Annotated[int, Query(ge=0, le=MAX_INDEX)],
                    end: Annotated[int, Query(ge=0, le=MAX_INDEX)]
                    ) -> dict[str, Any]:
        if not principal.is_server_admin:
            raise PermissionDenied("Raw CT entries name every tenant; only the server admin "
                                   "may read them.", "Use the admin API key.")
        if end < start:
            raise UsageError("'end' must not be before 'start'.")
        chain = [c.public_bytes(Encoding.DER) for c in rt.service.ca.chain]
        rows = ctlog(rt).entries_range(start, min(end, start + MAX_ENTRIES_PER_REQUEST - 1))
        return {"entries": [{
            "leaf_input": base64.b64encode(r.body).decode(),
            "extra_data": base64.b64encode(precert_chain_entry(r.extra or b"", chain)).decode(),
        } for r in rows]}

    return api

