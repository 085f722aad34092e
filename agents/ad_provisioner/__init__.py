"""The ad-provisioner agent: one Active Directory account per discovered mailbox.

On `mailbox.discovered` it finds the person's existing account (by UPN, mail
or SMTP proxy address, looked up in batches) or creates one in the configured
OU, then publishes `mailbox.provisioned`. Importing this package imports
nothing heavy; ldap3 is loaded by `adapters` only.
"""
