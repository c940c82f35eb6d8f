"""The Reliably guide's `reliability_utils.py`, unchanged except for where it sends.

The guide PUTs to https://api.reliably.com, which is gone; here the host, token and
organisation come from RELIABLY_HOST (a bare host:port, e.g. a `faultline serve`),
RELIABLY_TOKEN and RELIABLY_ORG, the variables the Reliably client reads too. The
body, the headers and the (unchecked) `requests.put` are the guide's. `chaoslib` is
only needed for its type names, so plain python3 with `requests` runs this.
"""
from datetime import datetime
import json
import os

import requests

try:  # the guide's type names; plain python3 (faultline's bridge) may lack chaoslib
    from chaoslib.types import Configuration, Secrets
except ImportError:  # pragma: no cover - depends on the environment
    Configuration = dict
    Secrets = dict

__all__ = ["send_good_indicator", "send_bad_indicator"]

HOST = os.environ.get("RELIABLY_HOST", "127.0.0.1:8089")
TOKEN = os.environ.get("RELIABLY_TOKEN", "XXXX")
ORG = os.environ.get("RELIABLY_ORG", "XXXX")


def send_good_indicator(
    configuration: Configuration = None, secrets: Secrets = None
) -> None:
    """
    For a given TOKEN and ORG, send a 100% availability Indicator
    for the selector that matches `category=Availability` and
    `indicator_name=exploring-reliability-guide-service-availability-indicator`
    """
    timenow = datetime.utcnow().isoformat() + 'Z'
    body = {
        "metadata": {
            "labels": {
                "category": "Availability",
                "indicator_name": "exploring-reliability-guide-service-availability-indicator",
            }
        },
        "spec": {"from": timenow, "to": timenow, "percent": 100.0},
    }

    requests.put(
        url=f"http://{HOST}/entities/{ORG}/reliably.com/v1/indicator",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def send_bad_indicator(
    configuration: Configuration = None, secrets: Secrets = None
) -> None:
    """
    For a given TOKEN and ORG, send a 90% availability Indicator
    for the selector that matches `category=Availability` and
    `indicator_name=exploring-reliability-guide-service-availability-indicator`
    """
    timenow = datetime.utcnow().isoformat() + 'Z'
    body = {
        "metadata": {
            "labels": {
                "category": "Availability",
                "indicator_name": "exploring-reliability-guide-service-availability-indicator",
            }
        },
        "spec": {"from": timenow, "to": timenow, "percent": 90.0},
    }

    requests.put(
        url=f"http://{HOST}/entities/{ORG}/reliably.com/v1/indicator",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
