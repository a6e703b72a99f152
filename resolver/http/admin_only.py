"""The one check every dashboard action that changes something calls: only an admin may.

INTEGRATION(school-admin): accounts and roles (admin, teacher, viewer) come with the accounts
branch; its role check replaces the body of `require_admin` (the one call sites use). Until
then any request the admin app's middleware let in (bearer token, logged-in session, loopback)
is an admin, as for the rest of the admin API.
"""

from __future__ import annotations

from aiohttp import web

from resolver.http.admin_keys import ACCESS


def require_admin(request: web.Request) -> None:
    """Raise 403 unless the request may change the policy or delete reports."""
    if not request.get(ACCESS):
        raise web.HTTPForbidden(
            text='{"error": "only an admin may do this"}', content_type="application/json"
        )
