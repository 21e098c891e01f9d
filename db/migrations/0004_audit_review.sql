-- Reviewing the audit trail, and signed checkpoints over its chains.
--
-- 1. The chain step takes the head lock before it reads the clock, so that
--    timestamps never go backwards along a chain (0002 read the clock first:
--    a writer that waited for the lock could store an earlier time than the
--    event before it). It also searches pg_catalog before public, so that no
--    object created in public can stand in for sha256() or string functions
--    inside this SECURITY DEFINER function.
-- 2. An event's SSID list must encode unambiguously: the canonical encoding
--    joins SSIDs with commas and drops NULL elements, so {"a,b"} and
--    {"a","b"} (or {} and {""}) would hash alike. The verifier refuses such
--    lists too, for a trail where this constraint was dropped.
-- 3. Indexes for the compliance officer's questions, newest first: the events
--    of a report, of a person, and whole-file downloads of a report (a
--    student's disclosure history finds the downloads of the reports the
--    student is in).
-- 4. audit_checkpoints: signed (Ed25519) statements of chain heads,
--    append-only like the events. Each checkpoint signs the heads of the
--    chains that grew since the one before it and the SHA-256 of the message
--    before it, so together they cover every chain. audit_checkpoint_chains
--    repeats each signed head as a row, so that the next checkpoint finds
--    what changed, and an export finds the checkpoints of one chain, without
--    parsing every message; the verifier checks the two agree. The service
--    makes checkpoints on a schedule, so the runtime role may INSERT and
--    SELECT them and read the chain heads; it cannot sign without the key,
--    and cannot change or remove a checkpoint.

create or replace function audit_chain_step() returns trigger
language plpgsql security definer
set search_path = pg_catalog, public
as $$
declare
    head_seq  bigint;
    head_hash bytea;
begin
    new.chain_org := coalesce(new.org_cds, '00000000000000');

    -- The head row lock orders concurrent writers of one chain; it is held
    -- until the inserting transaction ends, so callers keep that short.
    select h.seq, h.hash into head_seq, head_hash
    from public.audit_chain_heads h where h.chain_org = new.chain_org for update;
    if not found then
        insert into public.audit_chain_heads (chain_org, seq, hash)
        values (new.chain_org, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        on conflict (chain_org) do nothing;
        select h.seq, h.hash into head_seq, head_hash
        from public.audit_chain_heads h where h.chain_org = new.chain_org for update;
    end if;

    new.occurred_at := date_trunc('microseconds', clock_timestamp());
    new.seq := head_seq + 1;
    new.prev_hash := head_hash;
    new.hash := sha256(head_hash || convert_to(public.audit_canonical(new), 'UTF8'));

    update public.audit_chain_heads set seq = new.seq, hash = new.hash
    where chain_org = new.chain_org;
    return new;
end
$$;

alter table audit_events add constraint audit_events_ssids_unambiguous check (
    array_position(ssids, null) is null
    and array_position(ssids, '') is null
    and strpos(array_to_string(ssids, ''), ',') = 0
);

create index audit_events_report_idx on audit_events (report_id, occurred_at desc)
    where report_id is not null;
create index audit_events_actor_idx on audit_events (actor_subject, occurred_at desc);
create index audit_events_download_idx
    on audit_events (report_id, occurred_at desc, id desc)
    where action = 'report:download:started' and outcome = 'granted';

create table audit_checkpoints (
    number     bigint primary key check (number > 0),
    made_at    timestamptz not null,
    key_id     text not null,
    message    text not null,
    signature  bytea not null check (length(signature) = 64)
);

create table audit_checkpoint_chains (
    number    bigint not null references audit_checkpoints (number),
    chain_org text not null,
    seq       bigint not null check (seq > 0),
    hash      bytea not null check (length(hash) = 32),
    primary key (chain_org, number)
);

create trigger audit_checkpoints_no_update_delete
    before update or delete on audit_checkpoints
    for each row execute function audit_refuse_change();
create trigger audit_checkpoints_no_truncate
    before truncate on audit_checkpoints
    for each statement execute function audit_refuse_change();

create trigger audit_checkpoint_chains_no_update_delete
    before update or delete on audit_checkpoint_chains
    for each row execute function audit_refuse_change();
create trigger audit_checkpoint_chains_no_truncate
    before truncate on audit_checkpoint_chains
    for each statement execute function audit_refuse_change();

revoke all on function audit_chain_step() from public;
grant select, insert on audit_checkpoints, audit_checkpoint_chains to soars_app;
grant select on audit_chain_heads to soars_app;
