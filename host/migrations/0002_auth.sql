-- Supabase Auth's tables, with Supabase's names and columns, so app
-- migrations that reference auth.users(id) apply unchanged. Only the auth
-- component reaches them, through the host's privileged `auth-db`
-- interface, which runs as `supabase_auth_admin`.

do $$
begin
    if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
        begin
            create role supabase_auth_admin nologin noinherit;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end
$$;

grant usage, create on schema auth to supabase_auth_admin;

create table if not exists auth.users (
    instance_id                 uuid,
    id                          uuid primary key,
    aud                         varchar(255),
    role                        varchar(255),
    email                       varchar(255),
    encrypted_password          varchar(255),
    email_confirmed_at          timestamptz,
    invited_at                  timestamptz,
    confirmation_token          varchar(255),
    confirmation_sent_at        timestamptz,
    recovery_token              varchar(255),
    recovery_sent_at            timestamptz,
    email_change_token_new      varchar(255),
    email_change                varchar(255),
    email_change_sent_at        timestamptz,
    last_sign_in_at             timestamptz,
    raw_app_meta_data           jsonb,
    raw_user_meta_data          jsonb,
    is_super_admin              boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz,
    phone                       text unique default null,
    phone_confirmed_at          timestamptz,
    phone_change                text default '',
    phone_change_token          varchar(255) default '',
    phone_change_sent_at        timestamptz,
    confirmed_at                timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    email_change_token_current  varchar(255) default '',
    email_change_confirm_status smallint default 0,
    banned_until                timestamptz,
    reauthentication_token      varchar(255) default '',
    reauthentication_sent_at    timestamptz,
    is_sso_user                 boolean not null default false,
    deleted_at                  timestamptz,
    is_anonymous                boolean not null default false
);
create unique index if not exists users_email_partial_key on auth.users (lower(email)) where is_sso_user = false;
create index if not exists users_instance_id_idx on auth.users (instance_id);

create table if not exists auth.identities (
    provider_id     text not null,
    user_id         uuid not null references auth.users (id) on delete cascade,
    identity_data   jsonb not null,
    provider        text not null,
    last_sign_in_at timestamptz,
    created_at      timestamptz,
    updated_at      timestamptz,
    email           text generated always as (lower(identity_data ->> 'email')) stored,
    id              uuid primary key default gen_random_uuid(),
    unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);

create table if not exists auth.sessions (
    id           uuid primary key,
    user_id      uuid not null references auth.users (id) on delete cascade,
    created_at   timestamptz,
    updated_at   timestamptz,
    factor_id    uuid,
    aal          text,
    not_after    timestamptz,
    refreshed_at timestamp,
    user_agent   text,
    ip           inet,
    tag          text
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

-- `token` holds the SHA-256 of the opaque refresh token, never the token.
create table if not exists auth.refresh_tokens (
    instance_id uuid,
    id          bigserial primary key,
    token       varchar(255) unique,
    user_id     varchar(255),
    revoked     boolean,
    created_at  timestamptz,
    updated_at  timestamptz,
    parent      varchar(255),
    session_id  uuid references auth.sessions (id) on delete cascade
);
create index if not exists refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);
create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);

-- The dev outbox: every mail the auth service sends, so flows that need
-- mail are testable without a mail server.
create table if not exists selfdb.mail_outbox (
    id         bigserial primary key,
    recipient  text not null,
    subject    text not null,
    body       text not null,
    kind       text not null,
    created_at timestamptz not null default now()
);

grant all on all tables in schema auth to supabase_auth_admin;
grant all on all sequences in schema auth to supabase_auth_admin;
grant usage on schema selfdb to supabase_auth_admin;
grant insert on selfdb.mail_outbox to supabase_auth_admin;
grant usage on sequence selfdb.mail_outbox_id_seq to supabase_auth_admin;
-- App schemas reference auth.users(id); apps read users through their own
-- views or functions, not directly, as on Supabase.
grant references on auth.users to authenticated, service_role;
