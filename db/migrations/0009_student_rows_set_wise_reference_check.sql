-- Student rows reference their report through a set-wise check instead of a
-- foreign key.
--
-- A statewide load inserts about 500,000 student rows in one statement. The
-- foreign key to reports checked each of them with a query of its own
-- (PostgreSQL's RI trigger), about half of the load's time; the frozen-release
-- guard then read every new row again from its transition table. Both now run
-- once per statement over the distinct report ids of the new rows (a thousand
-- for a statewide file), in one trigger, with the foreign key's guarantees:
--
--  * a student row's report exists: the referenced reports are locked FOR KEY
--    SHARE, as the foreign key's own check does, so a report deleted by a
--    concurrent transaction either makes the lock fail to find it (and the
--    statement fails) or waits for the insert to commit and then finds its
--    rows (and the delete fails);
--  * a report that student rows reference is not deleted, renumbered or
--    truncated away. The check reads the student tables with the statement's
--    snapshot, which in READ COMMITTED includes everything committed before
--    the report's row lock was granted. REPEATABLE READ and SERIALIZABLE
--    transactions keep an older snapshot that could miss such rows (the
--    foreign key works around that with a snapshot of its own, which PL/pgSQL
--    cannot take), so a report is only ever removed in READ COMMITTED.
--
-- Reports keep their own frozen-release guard (0005); download tokens keep
-- their foreign key (one row at a time is what they insert).

alter table cci_students drop constraint cci_students_report_id_fkey;
alter table ltel_students drop constraint ltel_students_report_id_fkey;

drop trigger cci_students_frozen_insert on cci_students;
drop trigger cci_students_frozen_update_new on cci_students;
drop trigger ltel_students_frozen_insert on ltel_students;
drop trigger ltel_students_frozen_update_new on ltel_students;

-- New or changed student rows: their reports exist (and stay, locked until
-- commit) and belong to draft releases. SECURITY DEFINER as the foreign key's
-- check is: locking the reports needs a privilege the inserting role need not
-- hold itself.
create function student_rows_check_new() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
    keys bigint[];
    locked integer;
    missing bigint;
    frozen bigint;
begin
    select array_agg(report_id) into keys
    from (select distinct report_id from new_rows) distinct_keys;
    if keys is null then
        return null;
    end if;

    select count(*) into locked
    from (select id from reports where id = any (keys) for key share) found;
    if locked < cardinality(keys) then
        select k into missing from unnest(keys) k
        where not exists (select from reports where id = k) limit 1;
        raise exception 'report % does not exist: every % row belongs to a report',
            missing, tg_table_name
            using errcode = 'foreign_key_violation';
    end if;

    select rel.id into frozen
    from reports r join releases rel on rel.id = r.release_id
    where r.id = any (keys) and rel.status <> 'draft' limit 1;
    if frozen is not null then
        raise exception 'release % is no longer a draft: its % rows do not change '
            '(a correction is a new release that supersedes it)',
            frozen, tg_table_name
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    return null;
end
$$;

-- Reports whose id is gone (deleted, renumbered) are referenced by no student
-- row. Called for DELETE (old_rows) and UPDATE (old_rows and new_rows).
create function reports_check_unreferenced() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
    gone bigint[];
    referenced bigint;
begin
    if tg_op = 'UPDATE' then
        select array_agg(id) into gone
        from (select id from old_rows except select id from new_rows) renumbered;
    else
        select array_agg(id) into gone from old_rows;
    end if;
    if gone is null then
        return null;
    end if;
    perform reports_require_read_committed();

    select report_id into referenced from (
        select report_id from cci_students where report_id = any (gone)
        union all
        select report_id from ltel_students where report_id = any (gone)
    ) students
    limit 1;
    if referenced is not null then
        raise exception 'report % has student rows: it cannot be deleted or '
            'renumbered while they reference it', referenced
            using errcode = 'foreign_key_violation';
    end if;
    return null;
end
$$;

-- TRUNCATE reports leaves no student row behind. An AFTER trigger, so that
-- truncating the student tables in the same statement is allowed.
create function reports_check_truncate() returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    perform reports_require_read_committed();
    if exists (select from cci_students) or exists (select from ltel_students) then
        raise exception 'reports cannot be truncated while student rows reference them'
            using errcode = 'foreign_key_violation';
    end if;
    return null;
end
$$;

create function reports_require_read_committed() returns void
language plpgsql
set search_path = pg_catalog
as $$
begin
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'reports are removed only in a READ COMMITTED transaction, '
            'whose check sees every student row committed before it'
            using errcode = 'feature_not_supported';
    end if;
end
$$;

do $$
declare
    guarded text;
begin
    foreach guarded in array array['cci_students', 'ltel_students'] loop
        execute format(
            'create trigger %1$s_report_check_insert after insert on %1$I '
            'referencing new table as new_rows for each statement '
            'execute function student_rows_check_new()', guarded);
        execute format(
            'create trigger %1$s_report_check_update after update on %1$I '
            'referencing new table as new_rows for each statement '
            'execute function student_rows_check_new()', guarded);
    end loop;
end
$$;

create trigger reports_referenced_delete
    after delete on reports
    referencing old table as old_rows for each statement
    execute function reports_check_unreferenced();
create trigger reports_referenced_update
    after update on reports
    referencing old table as old_rows new table as new_rows for each statement
    execute function reports_check_unreferenced();
create trigger reports_referenced_truncate
    after truncate on reports
    for each statement execute function reports_check_truncate();

revoke all on function student_rows_check_new() from public;
revoke all on function reports_check_unreferenced() from public;
revoke all on function reports_check_truncate() from public;
revoke all on function reports_require_read_committed() from public;
