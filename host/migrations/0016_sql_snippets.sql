-- The dashboard SQL editor's saved snippets, shared by every admin.
create table if not exists selfdb.sql_snippets (
    id         uuid primary key default gen_random_uuid(),
    name       text not null check (length(name) between 1 and 200),
    sql        text not null,
    -- The admin who saved it last; null for the service key or a removed admin.
    updated_by uuid references selfdb.admins (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
