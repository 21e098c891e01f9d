-- Sign-in sessions of the web portal.
--
-- Kept here rather than in the cookie so that signing out ends a session at
-- once, on every replica, even for a copy of the cookie; and so that replicas
-- share nothing in memory (any replica serves any page of any session).
--
-- The cookie carries a random session id (256 bits). This table stores only
-- its SHA-256, and the person's access token encrypted with a key derived
-- from that id (see portal/sessions.py): a copy of this table (a backup, a
-- replica, a support dump) holds neither a usable session nor a usable token.

create table portal_sessions (
    id_hash          bytea primary key check (length(id_hash) = 32),
    issuer           text not null,
    subject          text not null,
    display_name     text not null check (length(display_name) <= 200),
    token_sealed     bytea not null check (length(token_sealed) <= 16384),
    token_expires_at timestamptz not null,
    -- Why the person reads student records, asked once per session and
    -- sent with every page read; null until they have said.
    purpose          text check (length(purpose) <= 40),
    purpose_detail   text check (length(purpose_detail) <= 500),
    created_at       timestamptz not null default now(),
    last_seen_at     timestamptz not null default now()
);
create index portal_sessions_last_seen_idx on portal_sessions (last_seen_at);
create index portal_sessions_subject_idx on portal_sessions (issuer, subject);

grant select, insert, update, delete on portal_sessions to soars_app;
