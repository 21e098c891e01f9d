-- The audit trail: append-only at the database level, hash-chained per
-- organization.
--
-- The runtime role may INSERT and SELECT and nothing else. Every row's place
-- in its chain (seq, prev_hash, hash) and its timestamp are assigned by a
-- trigger that runs with the owner's rights, so a writer cannot choose them.
-- Chains are per organization: writers for different LEAs lock different head
-- rows and never queue behind one another.

create table audit_events (
    id              bigint generated always as identity primary key,
    chain_org       text not null,
    seq             bigint not null,
    prev_hash       bytea not null,
    hash            bytea not null,
    occurred_at     timestamptz not null,
    action          text not null,
    outcome         text not null check (outcome in ('granted', 'denied', 'failed')),
    actor_issuer    text,
    actor_subject   text,
    actor_kind      text not null check (actor_kind in ('person', 'client', 'system', 'anonymous')),
    actor_role      text,
    org_cds         text,
    purpose         text,
    purpose_detail  text,
    release_id      bigint,
    report_id       bigint,
    ssids           text[] not null default '{}',
    student_count   integer not null default 0,
    request_id      text,
    trace_id        text,
    client_addr     text,
    user_agent      text,
    detail          text not null default '{}',
    unique (chain_org, seq)
);
create index audit_events_org_time_idx on audit_events (org_cds, occurred_at desc);
create index audit_events_time_idx on audit_events (occurred_at desc);
create index audit_events_ssids_idx on audit_events using gin (ssids);

create table audit_chain_heads (
    chain_org text primary key,
    seq       bigint not null,
    hash      bytea not null
);

-- The canonical encoding of an event's stored values, hashed into the chain.
-- Each value is written as <length>:<text>| (or ~| for NULL), so no value can
-- be shifted into its neighbour. Timestamps are UTC to the microsecond, exactly
-- as stored. audit/chain.py implements the same encoding for `soars audit
-- verify` and for LEAs verifying an export; the two must change together.
create function audit_canonical(e audit_events) returns text
language sql immutable parallel safe
set search_path = pg_catalog
as $$
    select string_agg(
        case when v is null then '~' else length(v)::text || ':' || v end,
        '|' order by ord) || '|'
    from unnest(array[
        e.chain_org,
        e.seq::text,
        to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        e.action,
        e.outcome,
        e.actor_issuer,
        e.actor_subject,
        e.actor_kind,
        e.actor_role,
        e.org_cds,
        e.purpose,
        e.purpose_detail,
        e.release_id::text,
        e.report_id::text,
        array_to_string(e.ssids, ','),
        e.student_count::text,
        e.request_id,
        e.trace_id,
        e.client_addr,
        e.user_agent,
        e.detail
    ]) with ordinality as t(v, ord)
$$;

create function audit_chain_step() returns trigger
language plpgsql security definer
set search_path = public, pg_catalog
as $$
declare
    head_seq  bigint;
    head_hash bytea;
begin
    new.chain_org := coalesce(new.org_cds, '00000000000000');
    new.occurred_at := date_trunc('microseconds', clock_timestamp());

    -- The head row lock orders concurrent writers of one chain; it is held
    -- until the inserting transaction ends, so callers keep that short.
    select seq, hash into head_seq, head_hash
    from audit_chain_heads where chain_org = new.chain_org for update;
    if not found then
        insert into audit_chain_heads (chain_org, seq, hash)
        values (new.chain_org, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        on conflict (chain_org) do nothing;
        select seq, hash into head_seq, head_hash
        from audit_chain_heads where chain_org = new.chain_org for update;
    end if;

    new.seq := head_seq + 1;
    new.prev_hash := head_hash;
    new.hash := sha256(head_hash || convert_to(audit_canonical(new), 'UTF8'));

    update audit_chain_heads set seq = new.seq, hash = new.hash
    where chain_org = new.chain_org;
    return new;
end
$$;

create trigger audit_events_chain
    before insert on audit_events
    for each row execute function audit_chain_step();

create function audit_refuse_change() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
    raise exception 'the audit trail is append-only: % on % is not allowed',
        tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
end
$$;

create trigger audit_events_no_update_delete
    before update or delete on audit_events
    for each row execute function audit_refuse_change();
create trigger audit_events_no_truncate
    before truncate on audit_events
    for each statement execute function audit_refuse_change();
create trigger audit_heads_no_delete
    before delete on audit_chain_heads
    for each row execute function audit_refuse_change();
create trigger audit_heads_no_truncate
    before truncate on audit_chain_heads
    for each statement execute function audit_refuse_change();

revoke all on function audit_chain_step() from public;
revoke all on function audit_canonical(audit_events) from public;
grant select, insert on audit_events to soars_app;
