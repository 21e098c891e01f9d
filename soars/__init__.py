"""SOARS: student-level accountability files for LEAs, every access audited."""

__version__ = "0.1.0"
