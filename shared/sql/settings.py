"""Settings of the SQL sink's two functions (pydantic-settings, loaded once; names are the fields upper-cased)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.sql.migrate import DEFAULT_SCHEMA
from shared.sql.writer import DEFAULT_ENVIRONMENT


class SqlSinkSettings(BaseSettings):
    """The feed: the table's stream into PostgreSQL."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    sql_sink_secret_id: str = Field(min_length=1)  # the connection (URL or RDS JSON), read at runtime
    sql_schema: str = Field(default=DEFAULT_SCHEMA, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    sql_environment: str = Field(default=DEFAULT_ENVIRONMENT, min_length=1, max_length=100)


class SqlVerifySettings(SqlSinkSettings):
    """The scheduled verify: the mirror's live rows against the sink's, per directory."""

    table_name: str = Field(min_length=1)
    # A directory that differs is compared again after this many seconds before it counts: changes in flight (the
    # feed's lag) are not differences.
    sql_verify_settle_seconds: float = Field(default=30.0, ge=0, le=600)
