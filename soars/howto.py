"""What `make run` prints before the service starts: how to get in."""

from soars.settings import load_settings


def main() -> None:
    settings = load_settings()
    url = settings.public_url.rstrip("/")
    # Tokens name the service's address as their issuer: the token command
    # must know the port too.
    port = "" if settings.port == 8000 else f"SOARS_PORT={settings.port} "
    print(
        f"""
SOARS is starting at {url}  (GraphiQL: {url}/graphql)

The portal: open {url}/ in a browser and sign in as a sample user.

Get a token for a Los Angeles Unified accountability coordinator:

  TOKEN=$({port}.venv/bin/soars dev token --subject lausd-coordinator)

List your reports and read the first page of students:

  curl -s {url}/graphql -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' \\
       -d '{{"query": "{{ reports {{ totalCount edges {{ node {{ id studentCount organization {{ name }} }} }} }} }}"}}'

  curl -s {url}/graphql -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' \\
       -d '{{"query": "query($id: ID!) {{ report(id: $id) {{ students(first: 5, purpose: ACCOUNTABILITY_REVIEW) {{ totalCount edges {{ node {{ ssid lastName firstName graduated }} }} }} }} }}", "variables": {{"id": "<an id from above>"}}}}'

Other demo subjects: sfusd-coordinator, lausd-calpads, lausd-compliance,
state-compliance, state-admin. Stop with Ctrl-C (the embedded PostgreSQL stops too).
"""
    )


if __name__ == "__main__":
    main()
