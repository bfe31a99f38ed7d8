"""The error every part of simulations raises for bad input (a config, a preset, a family name).

Its own module so that the config loader and the family registry can both raise it without importing
each other.
"""


class ConfigError(ValueError):
    """An invalid configuration; the message is one line naming the field and what is allowed."""
