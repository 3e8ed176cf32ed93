"""The REST API: a Litestar app over ``TaskQueue``."""

from taskqueue.api.app import create_app

__all__ = ["create_app"]
