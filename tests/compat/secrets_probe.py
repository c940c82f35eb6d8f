"""Functions for the compatibility case python-configuration-and-secrets: what a
python provider's function receives as `configuration` and `secrets` (on PYTHONPATH
for both tools)."""


def token_is(expected, secrets=None):
    """The flattened `secrets` hold `token` == expected."""
    return isinstance(secrets, dict) and secrets.get("token") == expected


def got_secrets(secrets=None):
    """Whether a `secrets` argument was passed at all."""
    return secrets is not None


def config_value(key, configuration=None):
    """One configuration value."""
    return (configuration or {}).get(key)
