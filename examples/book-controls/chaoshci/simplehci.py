# -*- coding: utf-8 -*-
"""The book's "Press any key to continue ..." control, as printed in
"Learning Chaos Engineering" (ch. 11). It needs the Chaos Toolkit's Python
libraries (chaoslib, click): faultline does not import it (see ../README.md).
"""
from chaoslib.types import Activity
import click

__all__ = ["before_activity_control"]


def before_activity_control(context: Activity, **kwargs):
    """
    Prompt to press a key before an activity is executed.
    """
    click.pause()
