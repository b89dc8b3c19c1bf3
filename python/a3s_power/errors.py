"""The one error hierarchy of A3S Power. Each API family maps these to its wire format."""

from __future__ import annotations


class PowerError(Exception):
    """Base class. `status` is the HTTP status the server answers with."""

    status = 500


class InvalidRequest(PowerError):
    status = 400


class ModelNotFound(PowerError):
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f'model "{name}" not found, try pulling it first')
        self.name = name


class NotFound(PowerError):
    """A 404 whose message is already the wire text (e.g. `model 'x' not found`)."""

    status = 404


class ModelLoadError(PowerError):
    status = 500


class Busy(PowerError):
    status = 503


class Cancelled(PowerError):
    status = 499


class Unsupported(PowerError):
    status = 501
