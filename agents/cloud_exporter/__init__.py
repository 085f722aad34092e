"""The cloud-exporter agent: prepares Exchange Online for a wave and exports its mailboxes.

    ports.py       what the agent needs from Exchange Online, in its own words
    adapters.py    those needs met by the admin API (the only code calling the EXO client)
    opath.py       the wave's domains as an OPATH filter, quoted so data never becomes code
    mapping.py     a Get-Mailbox record (plus its statistics) -> CloudMailbox
    preparation.py the cloud side of mail flow and the migration endpoint, checked before changed
    export.py      the in-scope mailboxes, page by page, never the whole tenant in memory
    agent.py       the handler: wave.requested in, wave.cloud_ready/mailbox.discovered/wave.exported out
    factory.py     the only place the real adapters are built
    probe.py       `homebound config check --connect` for [exchange_online]
"""
