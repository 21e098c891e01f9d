-- Download tokens: short-lived, single-use credentials for one report file.
--
-- Only the SHA-256 of a token is stored. The token is a bearer credential,
-- shown once to the principal that asked for it; a copy of this table (a
-- backup, a replica, a support dump) must not be enough to download anything.
-- Tokens carry 256 random bits, so a fast hash leaves nothing to guess.
--
-- A token is bound to one report and to the principal (issuer, subject) that
-- asked for it. The statement that redeems it checks, in one step, that it is
-- unused, unrevoked and unexpired, that the release is still published and
-- available, and that the principal still holds a role covering the report:
-- a token never outlives any of them.

create table download_tokens (
    id             bigint generated always as identity primary key,
    token_hash     bytea not null unique check (length(token_hash) = 32),
    report_id      bigint not null references reports (id),
    issuer         text not null,
    subject        text not null,
    actor_kind     text not null check (actor_kind in ('person', 'client')),
    role           text not null,
    purpose        text not null,
    purpose_detail text,
    issued_at      timestamptz not null default now(),
    expires_at     timestamptz not null,
    redeemed_at    timestamptz,
    revoked_at     timestamptz,
    -- The service caps a token's life with a setting; this is the backstop
    -- should that setting ever be raised past what a bearer link may live.
    check (expires_at > issued_at and expires_at <= issued_at + interval '1 hour')
);
create index download_tokens_principal_idx on download_tokens (issuer, subject, id);
create index download_tokens_report_idx on download_tokens (report_id);

-- Redeeming and revoking are one-way: once set, redeemed_at and revoked_at
-- never change, so "single use" holds even against a faulty caller that holds
-- the UPDATE grant below.
create function download_tokens_one_way() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
    if (old.redeemed_at is not null
            and new.redeemed_at is distinct from old.redeemed_at)
       or (old.revoked_at is not null
            and new.revoked_at is distinct from old.revoked_at) then
        raise exception 'download token %: redeemed_at and revoked_at are set once',
            old.id
            using errcode = 'insufficient_privilege';
    end if;
    return new;
end
$$;

create trigger download_tokens_one_way
    before update on download_tokens
    for each row execute function download_tokens_one_way();

revoke all on function download_tokens_one_way() from public;
grant select, insert on download_tokens to soars_app;
grant update (redeemed_at, revoked_at) on download_tokens to soars_app;
