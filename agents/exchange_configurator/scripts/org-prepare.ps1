# homebound-op: org-prepare/1
# Homebound: prepare the organisation for moves from Exchange Online. Each item is
# read first and changed only when it differs; a failed item goes to "errors".
# stdin: OrgPrepareRequest JSON; stdout: OrgPrepareResponse JSON (contracts/onprem.py).
$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'
Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction SilentlyContinue
$req = [Console]::In.ReadToEnd() | ConvertFrom-Json
function Out-Json($o) { [regex]::Replace(($o | ConvertTo-Json -Depth 6 -Compress), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value }) }
$changes = New-Object Collections.ArrayList; $errors = New-Object Collections.ArrayList
function Step([scriptblock]$change) {
  try { $done = & $change; if ($done) { [void]$changes.Add("$done") } }
  catch { [void]$errors.Add(@{ type = $_.Exception.GetType().Name; message = "$($_.Exception.Message)" }) }
}

foreach ($d in $req.accepted_domains) { Step {
  $have = Get-AcceptedDomain | Where-Object { "$($_.DomainName)" -eq $d.domain_name }
  if (-not $have) {
    New-AcceptedDomain -Name $d.domain_name -DomainName $d.domain_name -DomainType $d.domain_type -Confirm:$false | Out-Null
    "Accepted domain '$($d.domain_name)' added as $($d.domain_type)"
  } elseif ("$($have.DomainType)" -ne $d.domain_type) {
    Set-AcceptedDomain -Identity $have.Identity -DomainType $d.domain_type -Confirm:$false
    "Accepted domain '$($d.domain_name)' changed from $($have.DomainType) to $($d.domain_type)"
  } } }

foreach ($c in $req.send_connectors) { Step {
  $have = Get-SendConnector | Where-Object { $_.Name -eq $c.name }
  $hosts = @($c.smart_hosts)
  $p = @{ AddressSpaces = @($c.address_spaces); Confirm = $false }
  if ($hosts.Count) { $p.SmartHosts = $hosts; $p.DNSRoutingEnabled = $false }
  if (-not $have) {
    New-SendConnector -Name $c.name @p | Out-Null
    "Send connector '$($c.name)' created"
  } elseif (Compare-Object @(@($have.AddressSpaces) + @($have.SmartHosts) | ForEach-Object { "$_" }) @($p.AddressSpaces + $hosts)) {
    Set-SendConnector -Identity $have.Identity @p
    "Send connector '$($have.Name)' address spaces updated"
  } } }

foreach ($v in $req.enable_mrsproxy) { Step {
  if (-not (Get-WebServicesVirtualDirectory -Identity $v -ADPropertiesOnly).MRSProxyEnabled) {
    Set-WebServicesVirtualDirectory -Identity $v -MRSProxyEnabled $true -Confirm:$false
    "MRSProxy enabled on '$v'"
  } } }

foreach ($n in $req.mount_databases) { Step {
  if (-not (Get-MailboxDatabase -Identity $n -Status).Mounted) {
    Mount-Database -Identity $n -Confirm:$false
    "Database '$n' mounted"
  } } }

Out-Json @{ changes = @($changes); errors = @($errors) }
