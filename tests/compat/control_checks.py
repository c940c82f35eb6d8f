"""Functions for the compatibility cases of Python controls (control-*): an action
whose output a control keeps, and checks that raise (the activity fails) when the
configuration or secrets do not hold what a control set."""


def generate_token():
    """The token the fixture controls dummy_changed_configuration/secrets keep."""
    return "token-from-the-action"


def configuration_must_hold(key, expected, configuration=None):
    """Raises unless configuration[key] == expected."""
    got = (configuration or {}).get(key)
    if got != expected:
        raise AssertionError("configuration %r is %r, not %r" % (key, got, expected))
    return True


def secret_must_hold(key, expected, secrets=None):
    """Raises unless the (flattened) secrets' key == expected."""
    got = (secrets or {}).get(key)
    if got != expected:
        raise AssertionError("secret %r is %r, not %r" % (key, got, expected))
    return True
