"""What the portal says: release availability, return addresses, browsers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.render import availability, browser
from portal.signin import safe_next

TODAY = date.today()
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:133.0) Gecko/20100101 "
    "Firefox/133.0"
)


@pytest.mark.parametrize(
    ("release", "label", "readable", "words"),
    [
        (
            {
                "status": "PUBLISHED",
                "availableUntil": str(TODAY + timedelta(days=9)),
                "daysRemaining": 9,
                "expired": False,
            },
            "Available",
            True,
            "9 days left",
        ),
        (
            {
                "status": "PUBLISHED",
                "availableUntil": str(TODAY),
                "daysRemaining": 0,
                "expired": False,
            },
            "Available",
            True,
            "last day today",
        ),
        (
            {
                "status": "PUBLISHED",
                "availableUntil": "2020-06-30",
                "daysRemaining": 0,
                "expired": True,
            },
            "Expired",
            False,
            "Was available until June 30, 2020; it has expired.",
        ),
        (
            {
                "status": "WITHDRAWN",
                "availableUntil": "2030-06-30",
                "withdrawnAt": "2026-03-02T17:00:00+00:00",
                "withdrawalReason": "Wrong school codes.",
            },
            "Withdrawn",
            False,
            "withdrew this release on March 2, 2026 (Wrong school codes)",
        ),
        ({"status": "LOADED"}, "Not published", False, "Not yet published"),
    ],
)
def test_a_release_says_whether_it_can_be_read(
    release: dict[str, object], label: str, readable: bool, words: str
) -> None:
    said = availability(release)

    assert said["label"] == label
    assert said["open"] is readable
    assert words in said["text"]


@pytest.mark.parametrize(
    ("asked", "returned"),
    [
        (
            "/reports/UmVwb3J0OjE/students?size=50",
            "/reports/UmVwb3J0OjE/students?size=50",
        ),
        ("//attacker.example/", "/"),
        ("https://attacker.example/", "/"),
        ("/\\attacker.example", "/"),
        ("/reports\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_signing_in_a_person_returns_only_to_this_site(
    asked: str | None, returned: str
) -> None:
    assert safe_next(asked) == returned


@pytest.mark.parametrize(
    ("user_agent", "words"),
    [
        (CHROME, "Chrome 131 on Windows"),
        (FIREFOX, "Firefox 133 on macOS"),
        ("python-httpx/0.28.1", "python-httpx/0.28.1"),
        (None, "unknown browser"),
    ],
)
def test_the_trail_names_a_browser_in_a_few_words(
    user_agent: str | None, words: str
) -> None:
    assert browser(user_agent) == words
