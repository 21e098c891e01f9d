-- The release lifecycle as state administrators run it, and LTEL reports.
--
-- State administrators act through GraphQL, so the runtime role now writes a
-- few columns of releases and role_assignments, and nothing else: column
-- grants at the end of this file. Triggers hold the rules that must survive
-- a faulty caller (the service or the owner's command line alike):
--
--  * a release moves draft -> loaded -> published -> withdrawn and never
--    back; what it is (type, year, layout, the release it corrects) and what
--    was loaded into it never change;
--  * reports and student records change only while their release is a
--    draft, that is, inside the load that fills it. Published reports are
--    immutable: a correction is a new release that supersedes the old one;
--  * a revoked role assignment stays revoked.

-- Long-term English learners and students at risk of becoming one, stored as
-- the validated text of the file like cci_students (see db/layouts.py).
create table ltel_students (
    report_id                   bigint not null references reports (id),
    ssid                        text not null,
    last_name                   text not null,
    first_name                  text not null,
    birth_date                  text not null,
    school_cds                  text not null,
    grade                       text not null,
    years_in_us_schools         text not null,
    elpac_level_current         text,
    elpac_level_prior_year      text,
    elpac_level_two_years_prior text,
    sbac_ela_level_prior_year   text,
    designation                 text not null,
    primary key (report_id, ssid)
);

alter table releases
    add column superseded_by     bigint references releases (id),
    add column withdrawal_reason text;

-- A load that was refused: the file is all or nothing, so nothing of it is
-- kept but this record of why, for the load summary. Messages name lines and
-- fields, never a student's values.
create table release_load_failures (
    id          bigint generated always as identity primary key,
    release_id  bigint not null references releases (id) on delete cascade,
    failed_at   timestamptz not null default now(),
    source_name text not null,
    bad_lines   integer not null check (bad_lines >= 0)
);
create index release_load_failures_release_idx
    on release_load_failures (release_id, failed_at desc);

create table release_load_rejections (
    failure_id bigint not null references release_load_failures (id) on delete cascade,
    line       integer not null,
    field      text,
    message    text not null
);
create index release_load_rejections_failure_idx
    on release_load_rejections (failure_id, line);

create function releases_lifecycle() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
    if tg_op = 'INSERT' then
        if new.status <> 'draft' or new.superseded_by is not null then
            raise exception 'a new release starts as a draft'
                using errcode = 'check_violation';
        end if;
        return new;
    end if;

    if tg_op = 'DELETE' then
        if old.status <> 'draft' then
            raise exception 'release % is %: only a draft release can be deleted',
                old.id, old.status
                using errcode = 'object_not_in_prerequisite_state';
        end if;
        return old;
    end if;

    if (new.id, new.report_type, new.year, new.layout, new.created_at)
            is distinct from
       (old.id, old.report_type, old.year, old.layout, old.created_at)
       or new.supersedes is distinct from old.supersedes then
        raise exception 'release %: its type, year, layout and the release it '
            'corrects never change', old.id
            using errcode = 'object_not_in_prerequisite_state';
    end if;

    if (new.source_name, new.rows_loaded, new.loaded_at)
            is distinct from (old.source_name, old.rows_loaded, old.loaded_at)
       and not (old.status = 'draft' and new.status = 'loaded') then
        raise exception 'release %: what was loaded is set once, by the load',
            old.id
            using errcode = 'object_not_in_prerequisite_state';
    end if;

    if old.superseded_by is not null
       and new.superseded_by is distinct from old.superseded_by then
        raise exception 'release % is already superseded by release %',
            old.id, old.superseded_by
            using errcode = 'object_not_in_prerequisite_state';
    end if;

    if old.status = 'withdrawn' then
        -- Only the link to the correction that replaces it may be added.
        if (new.status, new.available_until, new.published_at, new.withdrawn_at,
            new.withdrawal_reason, new.label, new.notes)
                is distinct from
           (old.status, old.available_until, old.published_at, old.withdrawn_at,
            old.withdrawal_reason, old.label, old.notes) then
            raise exception 'release % is withdrawn and does not change', old.id
                using errcode = 'object_not_in_prerequisite_state';
        end if;
        return new;
    end if;

    if not (
        new.status = old.status
        or (old.status = 'draft' and new.status in ('loaded', 'withdrawn'))
        or (old.status = 'loaded' and new.status in ('published', 'withdrawn'))
        or (old.status = 'published' and new.status = 'withdrawn')
    ) then
        raise exception 'release %: % cannot become %', old.id, old.status, new.status
            using errcode = 'object_not_in_prerequisite_state';
    end if;

    if old.published_at is not null
       and new.published_at is distinct from old.published_at then
        raise exception 'release %: the publication time is set once', old.id
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return new;
end
$$;

create trigger releases_lifecycle
    before insert or update or delete on releases
    for each row execute function releases_lifecycle();

-- Reports and student rows change only while their release is a draft. These
-- are statement triggers over the transition tables: the load inserts
-- hundreds of thousands of rows in one statement, and one join per statement
-- costs a fraction of a per-row lookup.
create function report_rows_guard_new() returns trigger
language plpgsql
set search_path = pg_catalog, public
as $$
declare
    frozen bigint;
begin
    if tg_table_name = 'reports' then
        select rel.id into frozen
        from new_rows n join releases rel on rel.id = n.release_id
        where rel.status <> 'draft' limit 1;
    else
        select rel.id into frozen
        from new_rows n
        join reports r on r.id = n.report_id
        join releases rel on rel.id = r.release_id
        where rel.status <> 'draft' limit 1;
    end if;
    if frozen is not null then
        raise exception 'release % is no longer a draft: its % rows do not change '
            '(a correction is a new release that supersedes it)',
            frozen, tg_table_name
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return null;
end
$$;

create function report_rows_guard_old() returns trigger
language plpgsql
set search_path = pg_catalog, public
as $$
declare
    frozen bigint;
begin
    if tg_table_name = 'reports' then
        select rel.id into frozen
        from old_rows o join releases rel on rel.id = o.release_id
        where rel.status <> 'draft' limit 1;
    else
        select rel.id into frozen
        from old_rows o
        join reports r on r.id = o.report_id
        join releases rel on rel.id = r.release_id
        where rel.status <> 'draft' limit 1;
    end if;
    if frozen is not null then
        raise exception 'release % is no longer a draft: its % rows do not change '
            '(a correction is a new release that supersedes it)',
            frozen, tg_table_name
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return null;
end
$$;

create function report_rows_no_truncate() returns trigger
language plpgsql
set search_path = pg_catalog, public
as $$
begin
    if exists (select 1 from releases where status <> 'draft') then
        raise exception '% holds rows of releases that are no longer drafts',
            tg_table_name
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return null;
end
$$;

do $$
declare
    guarded text;
begin
    foreach guarded in array array['reports', 'cci_students', 'ltel_students'] loop
        execute format(
            'create trigger %1$s_frozen_insert after insert on %1$I '
            'referencing new table as new_rows for each statement '
            'execute function report_rows_guard_new()', guarded);
        execute format(
            'create trigger %1$s_frozen_update_new after update on %1$I '
            'referencing new table as new_rows for each statement '
            'execute function report_rows_guard_new()', guarded);
        execute format(
            'create trigger %1$s_frozen_update_old after update on %1$I '
            'referencing old table as old_rows for each statement '
            'execute function report_rows_guard_old()', guarded);
        execute format(
            'create trigger %1$s_frozen_delete after delete on %1$I '
            'referencing old table as old_rows for each statement '
            'execute function report_rows_guard_old()', guarded);
        execute format(
            'create trigger %1$s_frozen_truncate before truncate on %1$I '
            'for each statement execute function report_rows_no_truncate()',
            guarded);
    end loop;
end
$$;

-- An assignment is history once revoked: it is never revived or edited, and
-- who it was given to, where and as what never changes.
create function role_assignments_history() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
    if old.revoked_at is not null then
        raise exception 'role assignment % was revoked and does not change', old.id
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    if (new.id, new.issuer, new.subject, new.org_cds, new.role, new.granted_at,
        new.granted_by)
            is distinct from
       (old.id, old.issuer, old.subject, old.org_cds, old.role, old.granted_at,
        old.granted_by) then
        raise exception 'role assignment %: only its end date or its revocation '
            'change', old.id
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return new;
end
$$;

create trigger role_assignments_history
    before update on role_assignments
    for each row execute function role_assignments_history();

revoke all on function releases_lifecycle() from public;
revoke all on function report_rows_guard_new() from public;
revoke all on function report_rows_guard_old() from public;
revoke all on function report_rows_no_truncate() from public;
revoke all on function role_assignments_history() from public;

-- State administrators, through the service: create, publish, extend or
-- shorten, withdraw releases; grant, end and revoke role assignments. Loading
-- a file stays with the owner's command line.
grant select on ltel_students, release_load_failures, release_load_rejections
    to soars_app;
grant insert (report_type, year, layout, label, notes, supersedes)
    on releases to soars_app;
grant update (status, available_until, published_at, withdrawn_at, superseded_by,
              withdrawal_reason)
    on releases to soars_app;
grant insert (issuer, subject, org_cds, role, ends_on, granted_by)
    on role_assignments to soars_app;
grant update (ends_on, revoked_at, revoked_by) on role_assignments to soars_app;
