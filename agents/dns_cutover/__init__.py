"""The DNS cutover agent: SPF and MX TTL before the moves, MX and autodiscover after, rollback on demand."""
