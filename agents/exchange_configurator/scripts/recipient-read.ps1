# homebound-op: recipient-read/1
# Homebound: read on-premises recipients by objectGUID, as Get-User/Get-MailUser show them.
# stdin: RecipientReadRequest JSON; stdout: RecipientReadResponse JSON (contracts/onprem.py).
$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'
Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction SilentlyContinue
$req = [Console]::In.ReadToEnd() | ConvertFrom-Json
function Out-Json($o) { [regex]::Replace(($o | ConvertTo-Json -Depth 6 -Compress), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value }) }
function S($v) { if ("$v") { "$v" } }

$results = @(foreach ($id in $req.identities) {
  $u = Get-User -Identity $id -ErrorAction SilentlyContinue
  if (-not $u) { @{ identity = $id; found = $false; recipient = $null }; continue }
  $t = "$($u.RecipientTypeDetails)"
  # the contract knows User, MailUser, RemoteUserMailbox, UserMailbox, SharedMailbox
  if ($t -eq 'MailUser') { $m = Get-MailUser -Identity $id }
  elseif ($t -like 'Remote*') { $m = Get-RemoteMailbox -Identity $id; $t = 'RemoteUserMailbox' }
  elseif ($t -like '*Mailbox') { $m = Get-Mailbox -Identity $id; if ($t -ne 'SharedMailbox') { $t = 'UserMailbox' } }
  else { $m = $u; $t = 'User' }
  $route = if ($m.RemoteRoutingAddress) { $m.RemoteRoutingAddress } else { $m.ExternalEmailAddress }
  @{ identity = $id; found = $true; recipient = @{ identity = "$($u.Guid)"; distinguished_name = "$($u.DistinguishedName)"
    recipient_type_details = $t; alias = (S $m.Alias); display_name = (S $u.DisplayName)
    primary_smtp_address = (S $m.PrimarySmtpAddress); external_email_address = (S $route)
    exchange_guid = $(if ($m.ExchangeGuid -and $m.ExchangeGuid -ne [guid]::Empty) { S $m.ExchangeGuid })
    archive_guid = $(if ($m.ArchiveGuid -and $m.ArchiveGuid -ne [guid]::Empty) { S $m.ArchiveGuid })
    email_addresses = @($m.EmailAddresses | ForEach-Object { "$_" }); legacy_exchange_dn = (S $m.LegacyExchangeDN) } }
})
Out-Json @{ results = $results }
