"""The store's URL: where it comes from (:func:`resolve_url`) and how messages show it (:func:`safe_url`).

Kept below :mod:`core.store` and :mod:`core.store.faults` so that both can name the database
without importing each other.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import sqlalchemy as sa

from core import config


def _secret(key: str) -> str | None:
    """``key`` of secrets.toml's ``[connections.cartsight]`` (the project's file first, then the home one), or None."""
    for secrets in (Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"):
        if secrets.is_file():
            with secrets.open("rb") as fh:
                section = tomllib.load(fh).get("connections", {}).get(config.SECRETS_SECTION, {})
            if section.get(key):
                return str(section[key])
    return None


def resolve_url(url: str | None = None) -> str:
    """The store URL: ``url`` if given, else secrets.toml, else ``$CARTSIGHT_DB_URL``, else a DuckDB file."""
    if url:
        return url
    secret = _secret("url")  # read once: the app resolves its store on every page run
    if secret:
        return secret
    if os.environ.get(config.DB_URL_ENV):
        return os.environ[config.DB_URL_ENV]
    return f"duckdb:///{config.home_dir() / 'cartsight.duckdb'}"


def resolve_spark_connect() -> str | None:
    """The Spark Connect URL (``sc://host:port``) of the cluster behind a Spark store, where cartsight runs its
    scoring and segment assignment on the executors: secrets.toml's ``spark_connect`` (beside ``url``), else
    ``$CARTSIGHT_SPARK_CONNECT``, else None (everything runs in the app)."""
    return _secret("spark_connect") or os.environ.get(config.SPARK_CONNECT_ENV) or None


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
