"""Every kind of audit event, named source:subject:action, in one place."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    REPORT_STUDENTS_READ = "report:students:read"
    REPORT_DOWNLOAD_ISSUED = "report:download:issued"
    REPORT_DOWNLOAD_REVOKED = "report:download:revoked"
    REPORT_DOWNLOAD_STARTED = "report:download:started"
    REPORT_DOWNLOAD_COMPLETED = "report:download:completed"
    REPORT_DOWNLOAD_ABORTED = "report:download:aborted"
    REPORT_DOWNLOAD_REFUSED = "report:download:refused"
    AUDIT_EVENTS_READ = "audit:events:read"
    AUDIT_DISCLOSURES_READ = "audit:disclosures:read"
    AUDIT_TRAIL_VERIFIED = "audit:trail:verified"
    RELEASE_LOADED = "admin:release:loaded"
    RELEASE_CREATED = "admin:release:created"
    RELEASE_PUBLISHED = "admin:release:published"
    RELEASE_AVAILABILITY_CHANGED = "admin:release:availability_changed"
    RELEASE_WITHDRAWN = "admin:release:withdrawn"
    ROLE_GRANTED = "admin:role:granted"
    ROLE_REVOKED = "admin:role:revoked"
    ORGS_LOADED = "admin:organizations:loaded"


class Outcome(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    FAILED = "failed"


class ActorKind(StrEnum):
    PERSON = "person"
    CLIENT = "client"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


class Purpose(StrEnum):
    """Why student records are read: the legitimate interest a disclosure carries."""

    ACCOUNTABILITY_REVIEW = "accountability_review"
    DATA_CORRECTION = "data_correction"
    STUDENT_SUPPORT = "student_support"
    PROGRAM_PLANNING = "program_planning"
    SYSTEM_INTEGRATION = "system_integration"
    COMPLIANCE_REVIEW = "compliance_review"
