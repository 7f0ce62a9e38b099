"""The scopes an API token can carry. Each package adds its own here."""

SCOPES: dict[str, str] = {
    "consent:read": "Read customers' consent state, history and receipts",
    "consent:write": "Record consent decisions",
    "profiles:read": "Read pseudonymous customer ids and identifiers",
    "segmentation:read": "Read clustering runs, their metrics and personas (aggregates only)",
    "segmentation:write": "Start clustering runs",
    "segments:read": "List segments and their members (pseudonymous ids and user ids)",
    "segments:webhooks": "Manage webhook subscriptions to segment enter/leave changes",
    "personalization:read": "Read a customer's recommendations and personalization decision",
    "imports:write": "Upload CSV files of profiles or transactions",
    "imports:read": "Read import jobs: status, counts, quality and error reports (no values)",
    "privacy:read": "Read data-subject requests and regulations (ids, dates, statuses)",
    "privacy:write": "Forward data-subject requests and regulations",
    "privacy:export": "Download data-subject export packages (personal data)",
}
