"""Launch arguments as the package's launch files read them, without the launch API.

`launch/*.launch.py` import this (it needs neither `launch` nor rclpy), so what a user
may type on `ros2 launch ... name:=value` is tested here, where launch is not installable.
Booleans follow launch's own conditions (`IfCondition`): 'true'/'1' and 'false'/'0', in
any case and with surrounding spaces, so `use_sim_time:=True` works as in most launch files.
"""

from __future__ import annotations

TRUE_TEXTS = ("true", "1")  # as launch.conditions.evaluate_condition_expression
FALSE_TEXTS = ("false", "0")


def launch_bool(text: str, name: str) -> bool:
    """The boolean a launch argument's text stands for.

    Args:
        text: the argument's value as typed (`True`, `false`, `1`, ...).
        name: the argument's name, for the error message.

    Returns:
        True for 'true' or '1', False for 'false' or '0' (any case, spaces ignored).

    Raises:
        ValueError: any other text, with one line naming the argument and what it accepts.
    """
    value = str(text).strip().lower()
    if value in TRUE_TEXTS:
        return True
    if value in FALSE_TEXTS:
        return False
    raise ValueError(f"launch argument '{name}' is {text!r}; use true or false (any case), "
                     "or 1 or 0")
