"""A control for the compatibility case control-failing-init-still-applied: its
configure_control raises (as the CTK fixture dummy_with_failing_init.py), and its
before_activity_control interrupts the run, so the outcome shows whether a control
whose initialisation failed is still applied."""

from chaoslib.exceptions import InterruptExecution


def configure_control(experiment, configuration, secrets, settings):
    raise RuntimeError("init control")


def before_activity_control(context, **kwargs):
    raise InterruptExecution("a control whose configure_control failed still ran")
