"""The web portal: the pages coordinators, compliance officers and state
administrators use, served by the same service under `/`.

It reads and changes nothing itself: every page is built from GraphQL calls
made with the signed-in person's own access token, so scope, refusals and the
audit trail are exactly those of any other API client.
"""

from portal.app import portal_mount

__all__ = ["portal_mount"]
