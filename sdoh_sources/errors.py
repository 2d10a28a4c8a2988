"""The root of the project's exception tree, shared by every package."""


class SdohError(Exception):
    """Base class of every error this project raises on purpose."""
