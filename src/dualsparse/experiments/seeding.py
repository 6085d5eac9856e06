"""Seeds and keys that depend only on what they are made from (never on Python's hash randomisation)."""

from __future__ import annotations

import hashlib
import json


def stable_seed(*parts) -> int:
    """A seed in [0, 2**31) that depends only on ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def run_key(config: dict) -> str:
    """Deterministic key of a run: SHA-256 of its canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
