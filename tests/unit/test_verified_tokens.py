"""The verified-token cache: a token counts as verified only while it and the keys would."""

from __future__ import annotations

import pytest

from signer.service import auth
from signer.service.auth import CLOCK_SKEW_SECONDS, JWKS_LIFETIME_SECONDS, VerifiedTokens

NOW = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [NOW]
    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    return now


def test_a_verified_token_is_known_for_its_audience_only(clock: list[float]) -> None:
    tokens = VerifiedTokens()
    stored = tokens.put("t", "signer", {"iss": "i", "sub": "s", "exp": NOW + 60})
    assert tokens.get("t", "signer") == {"iss": "i", "sub": "s", "exp": NOW + 60}
    assert tokens.get("t", "sigstore") is None
    assert tokens.get("t2", "signer") is None
    with pytest.raises(TypeError):
        stored["sub"] = "someone else"  # type: ignore[index]


def test_a_token_is_forgotten_when_it_expires(clock: list[float]) -> None:
    tokens = VerifiedTokens()
    tokens.put("t", "signer", {"exp": NOW + 60})
    clock[0] = NOW + 60 + CLOCK_SKEW_SECONDS - 1
    assert tokens.get("t", "signer") is not None
    clock[0] = NOW + 60 + CLOCK_SKEW_SECONDS
    assert tokens.get("t", "signer") is None


def test_a_long_lived_token_is_checked_again_when_the_keys_would_be(clock: list[float]) -> None:
    tokens = VerifiedTokens()
    tokens.put("t", "signer", {"exp": NOW + 86_400})
    clock[0] = NOW + JWKS_LIFETIME_SECONDS
    assert tokens.get("t", "signer") is None


def test_the_cache_is_bounded_and_keeps_the_newest(clock: list[float]) -> None:
    tokens = VerifiedTokens(size=4)
    for i in range(9):
        tokens.put(f"t{i}", "signer", {"exp": NOW + 60})
    assert tokens.get("t8", "signer") is not None
    assert tokens.get("t0", "signer") is None
    assert sum(tokens.get(f"t{i}", "signer") is not None for i in range(9)) <= 4
