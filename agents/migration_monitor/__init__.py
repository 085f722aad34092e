"""The migration monitor: starts, paces and watches the moves; owns the wave ledger."""
