"""A custom control with the Chaos Toolkit's hooks: it counts activities, hands a
value to the rest of the run through the configuration, and prints a summary."""
seen = []


def configure_control(configuration=None, owner: str = "sre"):
    configuration["game_day_owner"] = owner


def after_activity_control(context, state, **kwargs):
    seen.append("%s=%s" % (context["name"], state["status"]))


def after_experiment_control(context, state, **kwargs):
    print("game day: %d activities (%s), status %s" % (len(seen), ", ".join(seen), state["status"]))
