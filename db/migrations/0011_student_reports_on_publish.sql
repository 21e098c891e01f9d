-- Which published reports hold a student: the lookup behind a student's
-- disclosure history.
--
-- Whole-file downloads name a report, not its students, so finding the
-- downloads that disclosed one student means finding the reports the student
-- is in. The student tables are keyed (report, SSID) for keyset pages; asking
-- them by SSID alone took one primary-key probe per report in scope, about
-- 3 ms of a 4-5 ms query for a statewide officer. An index on their SSID would
-- answer in one probe but slow every load by about a fifth. This table is the
-- same index built once per release when it is published, the moment its
-- students can first be disclosed; a release's student rows never change once
-- published (migration 0005's guard), so it stays exact. Drafts are not in it:
-- nothing of theirs can have been disclosed.

create table student_reports (
    ssid      text   not null,
    report_id bigint not null,
    primary key (ssid, report_id)
);

create function index_published_students(release bigint) returns void
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
    insert into public.student_reports (ssid, report_id)
    select s.ssid, s.report_id
    from public.cci_students s join public.reports r on r.id = s.report_id
    where r.release_id = release
    union all
    select s.ssid, s.report_id
    from public.ltel_students s join public.reports r on r.id = s.report_id
    where r.release_id = release
    on conflict do nothing;
end
$$;

-- Releases published before this migration.
select index_published_students(id) from releases
where status in ('published', 'withdrawn');

revoke all on function index_published_students(bigint) from public;
grant execute on function index_published_students(bigint) to soars_app;
grant select on student_reports to soars_app;
