# -*- coding: utf-8 -*-
"""The Reliably guide's `reliability_utils`, working offline.

The guide's `send_good_indicator` / `send_bad_indicator` build a Reliably
Custom Indicator (100 % or 90 % availability for the selector
`category=Availability`, `indicator_name=exploring-reliability-guide-service-availability-indicator`)
and PUT it to the Reliably API. That service no longer exists, so these
functions build exactly the same indicator and, instead of calling an API,
append it as one JSON line to the file named by the environment variable
RELIABLY_INDICATORS_FILE (default `./reliably-indicators.jsonl`), and return it.
No network call is made.

`objective_is_met` is a local stand-in for the guide's steady-state probe
`chaosreliably.slo.probes.slo_is_met`: it reads that same file back. See
README.md. Diagnostics go to stderr: stdout is left alone for the runner.
"""
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any, Dict, List

try:  # the guide's type names; plain python3 (faultline's bridge) has no chaoslib
    from chaoslib.types import Configuration, Secrets
except ImportError:  # pragma: no cover - depends on the environment
    Configuration = Dict[str, Any]
    Secrets = Dict[str, Dict[str, Any]]

__all__ = ["send_good_indicator", "send_bad_indicator", "objective_is_met"]

INDICATOR_LABELS = {
    "category": "Availability",
    "indicator_name": "exploring-reliability-guide-service-availability-indicator",
}


def indicators_file() -> str:
    """Where indicators are written: $RELIABLY_INDICATORS_FILE or ./reliably-indicators.jsonl."""
    return os.environ.get("RELIABLY_INDICATORS_FILE") or "./reliably-indicators.jsonl"


def _send_indicator(percent: float) -> Dict[str, Any]:
    # Same timestamp format as the guide's `datetime.utcnow().isoformat() + 'Z'`
    # (utcnow is deprecated since Python 3.12).
    timenow = datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
    body = {
        "metadata": {
            "labels": dict(INDICATOR_LABELS),
        },
        "spec": {"from": timenow, "to": timenow, "percent": percent},
    }

    with open(indicators_file(), "a", encoding="utf-8") as f:
        f.write(json.dumps(body) + "\n")
    return body


def send_good_indicator(
    configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Record a 100% availability Indicator for the selector that matches
    `category=Availability` and
    `indicator_name=exploring-reliability-guide-service-availability-indicator`
    """
    return _send_indicator(100.0)


def send_bad_indicator(
    configuration: Configuration = None, secrets: Secrets = None
) -> Dict[str, Any]:
    """
    Record a 90% availability Indicator for the selector that matches
    `category=Availability` and
    `indicator_name=exploring-reliability-guide-service-availability-indicator`
    """
    return _send_indicator(90.0)


def objective_is_met(
    indicator_selector: Dict[str, str],
    objective_percent: float,
    limit: int = 1,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """
    Local stand-in for `chaosreliably.slo.probes.slo_is_met`: met when none of
    the last `limit` recorded indicators matching `indicator_selector` (every
    selector key/value among the indicator's labels) is below
    `objective_percent`. No matching indicator at all: not met, as in
    `slo_is_met` ("No objective results were found").
    """
    path = indicators_file()
    matching: List[Dict[str, Any]] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                indicator = json.loads(line)
                labels = indicator.get("metadata", {}).get("labels", {})
                if all(labels.get(k) == v for k, v in indicator_selector.items()):
                    matching.append(indicator)

    latest = matching[-limit:] if limit > 0 else []
    if not latest:
        # The guide's words, then what a newcomer on a first run needs to know.
        print(
            f"No objective results were found in {path}: no indicator has been sent yet, "
            "so the objective cannot be met before a first run; start with "
            "--hypothesis-strategy after-method-only, or run demo.sh (README.md)",
            file=sys.stderr,
        )
        return False

    failed = [i for i in latest if float(i["spec"]["percent"]) < float(objective_percent)]
    for i in failed:
        print(
            "Objective result not OK: from {from_} to {to}, objective {obj}%, actual {act}%, "
            "remaining {rem:.1f}%".format(
                from_=i["spec"]["from"], to=i["spec"]["to"], obj=objective_percent,
                act=i["spec"]["percent"],
                rem=float(i["spec"]["percent"]) - float(objective_percent),
            ),
            file=sys.stderr,
        )
    return not failed
