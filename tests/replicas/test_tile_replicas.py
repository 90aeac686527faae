"""Two replicas' Rekor v2 sequencers appending at once keep one tree: every acknowledged entry
is in it once, at the index it was told, and every checkpoint either handed out is a prefix
of the final tree (read over HTTP from both replicas by the independent C2SP reader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from signer.transparency import note
from tests.replicas.conftest import Cluster
from tests.service_process import clean_env
from tests.tiles import c2sp_reader as reader

PER_REPLICA = 150
REPO = Path(__file__).resolve().parents[2]  # where ``python -m tests.…`` finds the module


def test_two_sequencers_append_at_once_into_one_tree(cluster: Cluster) -> None:
    first = cluster.replicas[0]
    start = reader.parse_checkpoint_body(
        requests.get(f"{first.url}/api/v2/checkpoint", timeout=30).text)[1]
    appenders = [subprocess.Popen(
        [sys.executable, "-m", "tests.replicas.tile_appender", str(first.data_dir),
         first.database_url or "-", first.url, tag, str(PER_REPLICA)],
        stdout=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO) for tag in ("a", "b")]
    acknowledged = []
    for process in appenders:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        acknowledged += [json.loads(line) for line in out.splitlines()]
    assert len(acknowledged) == 2 * PER_REPLICA
    assert len({a["index"] for a in acknowledged}) == 2 * PER_REPLICA  # no index twice

    size = start + 2 * PER_REPLICA
    for replica in cluster.replicas:
        envelope = requests.get(f"{replica.url}/api/v2/checkpoint", timeout=30).text
        assert reader.parse_checkpoint_body(envelope)[1] == size

        def fetch(path: str, base: str = replica.url) -> bytes:
            answer = requests.get(f"{base}/api/v2/{path}", timeout=30)
            assert answer.status_code == 200, (path, answer.text)
            return answer.content

        entries, root = reader.read_log(fetch, size)
        assert root == reader.parse_checkpoint_body(envelope)[2]
        for ack in acknowledged:
            assert entries[ack["index"]] == ack["body"].encode()
    leaves = [reader.leaf(e) for e in entries]
    verifier = None
    for ack in acknowledged:
        # Each checkpoint handed out signs a prefix of this one tree: no fork, ever.
        origin, signed_size, signed_root = reader.parse_checkpoint_body(ack["checkpoint"])
        assert signed_root.hex() == ack["root"] == reader.mth(leaves[:signed_size]).hex()
        signature = note.parse_note(ack["checkpoint"]).signatures[0]
        assert (origin, signature.name) == ("127.0.0.1", "127.0.0.1")
        verifier = verifier or signature.key_id
        assert signature.key_id == verifier
