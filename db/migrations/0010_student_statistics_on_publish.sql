-- Statistics of the student tables, refreshed when a release is published.
--
-- A keyset page of students filters by report and SSID; with statistics that
-- predate a load, the planner expects a few hundred rows where tens of
-- thousands remain, and sorts the rest of the report for every page (12-22
-- ms of database time instead of under a millisecond). Autovacuum would
-- analyze the table in its own time, or never where it is turned off; a
-- release is published once, before anyone reads it, so that is when its
-- statistics are brought up to date. ANALYZE needs the table's owner: the
-- service (which publishes through the runtime role) calls this function,
-- which runs as the owner and does nothing else.

create function refresh_student_statistics(report_type text) returns void
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    if report_type = 'cci' then
        analyze public.cci_students;
    elsif report_type = 'ltel' then
        analyze public.ltel_students;
    else
        raise exception 'no student table for report type %', report_type
            using errcode = 'invalid_parameter_value';
    end if;
end
$$;

revoke all on function refresh_student_statistics(text) from public;
grant execute on function refresh_student_statistics(text) to soars_app;
