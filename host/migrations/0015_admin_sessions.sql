-- Admins' dashboard sessions: a refresh token (only its SHA-256 kept)
-- that rotates on every use, and the session id the short-lived admin
-- access tokens carry, checked on every admin API call so that signing out
-- or removing an admin takes effect at once there.

create table if not exists selfdb.admin_sessions (
    id            uuid primary key default gen_random_uuid(),
    admin_id      uuid not null references selfdb.admins (id) on delete cascade,
    -- The current refresh token's hash, and the one it replaced: a replaced
    -- token presented again means it leaked, and ends the session.
    refresh_hash  text not null unique,
    previous_hash text unique,
    created_at    timestamptz not null default now(),
    refreshed_at  timestamptz not null default now(),
    expires_at    timestamptz not null,
    revoked_at    timestamptz,
    ip            text,
    user_agent    text
);

create index if not exists admin_sessions_admin on selfdb.admin_sessions (admin_id);

alter table selfdb.admins add column if not exists last_sign_in_at timestamptz;

-- One admin per email whatever its case (sign-in matches case-insensitively).
create unique index if not exists admins_email_lower on selfdb.admins (lower(email));
