"""The exchange-configurator: prepares the on-prem organisation and mail-enables accounts.

Modules, outside in: factory (builds the real clients), agent (the two
handlers), enabling (read, mail-enable what differs, per batch), batching
(many handlers, one command), recipients and org_plan (what is wanted and
what differs, no I/O), ports and adapters (on-prem Exchange through
`agents.shared.exchange_shell`), scripts/ (the PowerShell templates, the only
code that runs on the Exchange server).
"""
