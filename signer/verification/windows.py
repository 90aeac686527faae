"""When a key of the trust root may be trusted: its ``validFor``, both ends included.

Sigstore trust roots treat ``validFor.end`` as inclusive (the last instant a retired key may
still have signed), for CAs, TSAs, transparency logs and CT logs alike; a window without an
end is the current key's. This is the only place that compares a time with such a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from signer.sigstore_json import TimeRange


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime | None = None

    @classmethod
    def of(cls, valid_for: TimeRange | None) -> Window | None:
        """The window of a trust root's ``validFor`` (None: the key is valid at any time)."""
        return None if valid_for is None else cls(valid_for.start, valid_for.end)

    def contains(self, at: datetime) -> bool:
        return within(self.start, self.end, at)

    def describe(self) -> str:
        if self.end is None:
            return f"from {self.start.isoformat()}"
        return f"from {self.start.isoformat()} to {self.end.isoformat()} (retired)"

    def why_outside(self, at: datetime) -> str | None:
        """Why ``at`` is outside the window, in a phrase that follows a key's name, or None."""
        if at < self.start:
            return f"which is valid only from {self.start.isoformat()}"
        if self.end is not None and at > self.end:
            return (f"which was retired at {self.end.isoformat()} (valid from "
                    f"{self.start.isoformat()} to {self.end.isoformat()})")
        return None


def within(start: datetime, end: datetime | None, at: datetime) -> bool:
    """``start <= at <= end``; no end: from ``start`` on."""
    return start <= at and (end is None or at <= end)
