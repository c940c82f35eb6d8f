"""A stand-in for a Chaos Toolkit extension: a module-level client made once at import
(as a Kubernetes or cloud client is) and state kept between activities."""
import time

# Made once per run: faultline imports the module once, in the run's Python worker.
CLIENT_CREATED_AT = time.time()
_replicas = {"web": 3}


def replicas(name: str = "web") -> int:
    return _replicas[name]


def scale(name: str = "web", count: int = 1) -> int:
    _replicas[name] = count
    return count


def client_age() -> float:
    return round(time.time() - CLIENT_CREATED_AT, 3)
