"""A contracts directory with second-long SLA targets, for timer tests."""

from pathlib import Path

import yaml

FAST = {
    "first_response": {"P1": "0.03m", "P2": "0.05m", "P3": "0.07m", "P4": "0.09m"},
    "resolution": {"P1": "0.06m", "P2": "0.1m", "P3": "0.14m", "P4": "0.18m"},
}
"""First response in 1.8-5.4 s, resolution in 3.6-10.8 s, warnings at 80 %."""


def write_fast_contracts(directory: Path, tenant: str = "acme") -> Path:
    """Write one 24x7 tenant whose targets are seconds long; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    contract = {
        "tenant": tenant,
        "name": "ACME (fast clocks)",
        "language": "en",
        "domains": [f"{tenant}.test"],
        "services": {"included": ["email", "printing", "network", "workstation"]},
        "sla": {**FAST, "round_the_clock": [], "warn_at": 0.8},
        "calendar": {
            "timezone": "UTC",
            "hours": {
                d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
        },
        "escalation": [
            {"level": 1, "when": "assigned", "notify": ["duty@opora.local"]},
            {"level": 2, "when": "first_response_breach", "notify": ["lead@opora.local"]},
            {"level": 3, "when": "resolution_breach_or_p1_breach", "notify": ["am@opora.local"]},
        ],
        "approver": f"boss@{tenant}.test",
    }
    (directory / f"{tenant}.yml").write_text(yaml.safe_dump(contract), encoding="utf-8")
    return directory
