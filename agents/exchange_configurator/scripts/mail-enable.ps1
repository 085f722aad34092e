# homebound-op: mail-enable/1
# Homebound: mail-enable AD users so Exchange Online can move mailboxes onto them (contracts/onprem.py).
$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'
Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction SilentlyContinue
$req = [Console]::In.ReadToEnd() | ConvertFrom-Json
function Out-Json($o) { [regex]::Replace(($o | ConvertTo-Json -Depth 6 -Compress), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value }) }
function S($v) { if ("$v") { "$v" } }
$remote = $req.mode -eq 'remote-mailbox'
$want, $route = if ($remote) { 'RemoteUserMailbox', 'RemoteRoutingAddress' } else { 'MailUser', 'ExternalEmailAddress' }
function Get-Target($id) { if ($remote) { Get-RemoteMailbox -Identity $id } else { Get-MailUser -Identity $id } }

$results = @(foreach ($r in $req.recipients) {
 $id = $r.identity; $res = @{ identity = $id; ok = $false; changed = $false }
 try {
  $u = Get-User -Identity $id; $t = "$($u.RecipientTypeDetails)"
  if ($t -eq 'User' -or $t -eq 'DisabledUser') {
   $p = @{ Identity = $id; Alias = $r.alias; PrimarySmtpAddress = $r.primary_smtp_address; $route = $r.external_email_address; Confirm = $false }
   $null = if ($remote) { Enable-RemoteMailbox @p } else { Enable-MailUser @p }
   $res.changed = $true
  } elseif ($t -ne $want) { throw [InvalidOperationException]"The user '$($u.Identity)' is a $t, not a $want." }
  $m = Get-Target $id
  $have = @($m.EmailAddresses | % { "$_" })
  $s = @{ Identity = $id; Confirm = $false; EmailAddressPolicyEnabled = $false }
  $add = @($r.email_addresses | ? { $have -notcontains $_ -or ($_ -clike 'SMTP:*' -and $have -cnotcontains $_) })
  if ($add.Count) { $s.EmailAddresses = @{ Add = $add } }
  if ("$($m.ExchangeGuid)" -ne $r.exchange_guid) { $s.ExchangeGuid = $r.exchange_guid }
  if ($r.archive_guid -and "$($m.ArchiveGuid)" -ne $r.archive_guid) { $s.ArchiveGuid = $r.archive_guid }
  if ("$($m.$route)" -ne "SMTP:$($r.external_email_address)") { $s[$route] = $r.external_email_address }
  if ($s.Count -gt 3 -or $m.EmailAddressPolicyEnabled) {
   if ($remote) { Set-RemoteMailbox @s } else { Set-MailUser @s }
   $res.changed = $true; $m = Get-Target $id
  }
  $res.recipient = @{ identity = "$($m.Guid)"; distinguished_name = "$($m.DistinguishedName)"
   recipient_type_details = $want; alias = (S $m.Alias); display_name = (S $m.DisplayName)
   primary_smtp_address = (S $m.PrimarySmtpAddress); external_email_address = (S $m.$route)
   exchange_guid = (S $m.ExchangeGuid); archive_guid = $(if ($m.ArchiveGuid -ne [guid]::Empty) { S $m.ArchiveGuid })
   email_addresses = @($m.EmailAddresses | % { "$_" }); legacy_exchange_dn = (S $m.LegacyExchangeDN) }
  $res.ok = $true
 } catch { $res.error = @{ type = $_.Exception.GetType().Name; message = "$($_.Exception.Message)" } }
 $res
})
Out-Json @{ results = $results }
