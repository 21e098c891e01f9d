-- Organizations, role assignments, releases, reports and CCI student records.
--
-- Migrations run as the owner role (soars_owner). The runtime role (soars_app)
-- gets only what the service needs; see the GRANTs at the end of each file.

create table organizations (
    cds_code      text primary key check (cds_code ~ '^[0-9]{14}$'),
    kind          text not null check (kind in ('state', 'coe', 'lea', 'school', 'charter')),
    name          text not null,
    lea_cds       text not null check (lea_cds ~ '^[0-9]{7}0000000$'),
    county        text not null default '',
    charter       boolean not null default false,
    funding_type  text,
    status        text not null,
    doc_type      text,
    soc_type      text,
    grades_served text,
    source        text not null check (source in ('state', 'directory', 'dashboard')),
    loaded_at     timestamptz not null default now()
);
create index organizations_lea_idx on organizations (lea_cds);

-- The state itself: compliance officers and administrators at the state hold
-- their assignments here, and events without an organization chain here.
insert into organizations (cds_code, kind, name, lea_cds, status, source)
values ('00000000000000', 'state', 'California Department of Education',
        '00000000000000', 'Active', 'state');

-- Which report types a role may read. Kept in SQL so that scope checks are
-- one join, never a Python filter over rows already fetched.
create table role_report_types (
    role        text not null,
    report_type text not null,
    primary key (role, report_type)
);
insert into role_report_types values
    ('accountability_coordinator', 'cci'),
    ('dashboard_coordinator', 'cci'),
    ('calpads_coordinator', 'ltel');

create table role_assignments (
    id          bigint generated always as identity primary key,
    issuer      text not null,
    subject     text not null,
    org_cds     text not null references organizations (cds_code),
    role        text not null check (role in (
                    'accountability_coordinator', 'dashboard_coordinator',
                    'calpads_coordinator', 'compliance_officer', 'state_admin')),
    ends_on     date,
    granted_at  timestamptz not null default now(),
    granted_by  text not null,
    revoked_at  timestamptz,
    revoked_by  text
);
create unique index role_assignments_active_idx
    on role_assignments (issuer, subject, org_cds, role) where revoked_at is null;

create table releases (
    id              bigint generated always as identity primary key,
    report_type     text not null check (report_type in ('cci', 'ltel')),
    year            integer not null check (year between 2000 and 2100),
    layout          text not null,
    label           text not null,
    notes           text not null default '',
    status          text not null default 'draft'
                    check (status in ('draft', 'loaded', 'published', 'withdrawn')),
    available_until date,
    supersedes      bigint references releases (id),
    source_name     text,
    rows_loaded     integer,
    created_at      timestamptz not null default now(),
    loaded_at       timestamptz,
    published_at    timestamptz,
    withdrawn_at    timestamptz,
    check (status <> 'published' or available_until is not null)
);

create table reports (
    id            bigint generated always as identity primary key,
    release_id    bigint not null references releases (id),
    org_cds       text not null references organizations (cds_code),
    student_count integer not null,
    unique (release_id, org_cds)
);
create index reports_org_idx on reports (org_cds);

-- Student records are stored as the validated text of the file: a download
-- is then a COPY of the stored bytes, and the GraphQL layer types them.
create table cci_students (
    report_id                bigint not null references reports (id),
    ssid                     text not null,
    last_name                text not null,
    first_name               text not null,
    birth_date               text not null,
    gender                   text not null,
    school_cds               text not null,
    student_groups           text,
    graduated                text not null,
    ag_complete              text not null,
    cte_pathway              text not null,
    ap_exams_passed          text not null,
    ib_exams_passed          text not null,
    college_credit_semesters text not null,
    sbac_ela_level           text,
    sbac_math_level          text,
    seal_of_biliteracy       text not null,
    military_science_years   text not null,
    pre_apprenticeship       text,
    primary key (report_id, ssid)
);

grant usage on schema public to soars_app;
grant select on organizations, role_report_types, releases, reports, cci_students
    to soars_app;
grant select on role_assignments to soars_app;
