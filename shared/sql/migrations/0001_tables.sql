-- The sink's tables: one row per directory, user, group and membership of every WorkOS environment that shares the
-- database (`environment`). A row is never removed: a deletion is a tombstone (`deleted_at` set, personal data and
-- the organization erased), so a late, stale event cannot bring it back. `version` is the mirror's version (vkey:
-- microseconds x 2, +1 for a deletion): a write lands only if its version is newer (shared/sql/writer.py).
-- {schema} is replaced by the configured schema's quoted name.

CREATE TABLE {schema}.directories (
    environment     text        NOT NULL,
    id              text        NOT NULL,
    organization_id text,
    name            text,
    type            text,
    state           text,
    created_at      timestamptz,
    updated_at      timestamptz,
    version         bigint      NOT NULL,
    deleted_at      timestamptz,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, id)
);
-- The guide's organizations(workos_directory_id): a tenant's directories.
CREATE INDEX directories_by_organization ON {schema}.directories (environment, organization_id);

CREATE TABLE {schema}.users (
    environment       text        NOT NULL,
    id                text        NOT NULL,
    directory_id      text        NOT NULL,
    organization_id   text,
    idp_id            text,
    email             text,
    first_name        text,
    last_name         text,
    state             text,
    role              text,
    roles             text[]      NOT NULL DEFAULT '{}',
    custom_attributes jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz,
    updated_at        timestamptz,
    version           bigint      NOT NULL,
    deleted_at        timestamptz,
    synced_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, id)
);
-- The guide's access patterns: an organization's users by state, a user by email (case-insensitive) in a
-- directory, a person by IdP id (WorkOS recreates a returning person with a new id), a directory's users.
CREATE INDEX users_by_organization_state ON {schema}.users (environment, organization_id, state)
    WHERE deleted_at IS NULL;
CREATE INDEX users_by_email ON {schema}.users (environment, directory_id, lower(email))
    WHERE deleted_at IS NULL;
CREATE INDEX users_by_idp_id ON {schema}.users (environment, directory_id, idp_id)
    WHERE deleted_at IS NULL;
CREATE INDEX users_by_directory ON {schema}.users (environment, directory_id, id);

CREATE TABLE {schema}.groups (
    environment     text        NOT NULL,
    id              text        NOT NULL,
    directory_id    text        NOT NULL,
    organization_id text,
    idp_id          text,
    name            text,
    created_at      timestamptz,
    updated_at      timestamptz,
    version         bigint      NOT NULL,
    deleted_at      timestamptz,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, id)
);
CREATE INDEX groups_by_organization ON {schema}.groups (environment, organization_id)
    WHERE deleted_at IS NULL;
CREATE INDEX groups_by_directory ON {schema}.groups (environment, directory_id, id);

CREATE TABLE {schema}.memberships (
    environment  text        NOT NULL,
    group_id     text        NOT NULL,
    user_id      text        NOT NULL,
    directory_id text        NOT NULL,
    version      bigint      NOT NULL,
    deleted_at   timestamptz,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, group_id, user_id)
);
CREATE INDEX memberships_by_user ON {schema}.memberships (environment, user_id);
CREATE INDEX memberships_by_directory ON {schema}.memberships (environment, directory_id);

-- `dsync sql backfill`'s progress: the last directory copied whole, so an interrupted backfill resumes after it.
CREATE TABLE {schema}.backfill_progress (
    environment  text        NOT NULL,
    run          text        NOT NULL,
    directory_id text        NOT NULL,
    rows_written bigint      NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, run, directory_id)
);
