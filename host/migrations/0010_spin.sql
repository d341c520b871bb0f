-- Spin apps (issue 20). An app is a function whose versions are whole
-- apps: `function_versions.source` holds the manifest (`spin.toml`) and
-- every component's bytes are a row below, so a deploy, rollback or
-- delete moves all of an app's components at once.

alter table selfdb.function_versions drop constraint if exists function_versions_kind_check;
alter table selfdb.function_versions add constraint function_versions_kind_check
    check (kind in ('ts', 'js', 'wasm', 'spin'));

create table if not exists selfdb.spin_components (
    function  text not null,
    version   integer not null,
    -- The id of `[component.<id>]`.
    component text not null,
    wasm      bytea not null,
    sha256    text not null,
    primary key (function, version, component),
    foreign key (function, version)
        references selfdb.function_versions (function, version) on delete cascade
);

-- The files a component's manifest mounts (`files`), read-only, at their
-- path in the component's filesystem.
create table if not exists selfdb.spin_files (
    function  text not null,
    version   integer not null,
    component text not null,
    path      text not null check (path like '/%'),
    content   bytea not null,
    primary key (function, version, component, path),
    foreign key (function, version)
        references selfdb.function_versions (function, version) on delete cascade
);

-- Spin's key-value stores: the app's, whatever version runs, and kept
-- until the app is deleted.
create table if not exists selfdb.spin_key_value (
    app        text not null references selfdb.functions (name) on delete cascade,
    store      text not null,
    key        text not null,
    value      bytea not null,
    updated_at timestamptz not null default now(),
    primary key (app, store, key)
);
