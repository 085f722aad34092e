# homebound-op: org-inspect/1
# Homebound: what the move back on-premises depends on. Reads only, changes nothing.
# stdin: OrgInspectRequest JSON; stdout: OrgInspectResponse JSON (contracts/onprem.py).
$ProgressPreference='SilentlyContinue'; $ErrorActionPreference='Stop'
Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction SilentlyContinue
$null = [Console]::In.ReadToEnd() | ConvertFrom-Json
# ASCII-only JSON, whatever the console code page
function Out-Json($o) { [regex]::Replace(($o | ConvertTo-Json -Depth 6 -Compress), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value }) }
function Num($v) { if ("$v" -match '^\d+$') { [long]"$v" } }

$server = @(Get-ExchangeServer | Sort-Object AdminDisplayVersion -Descending)[0]
Out-Json @{
  exchange_version = "$($server.AdminDisplayVersion)"
  accepted_domains = @(Get-AcceptedDomain | ForEach-Object {
    @{ name = "$($_.Name)"; domain_name = "$($_.DomainName)"; domain_type = "$($_.DomainType)"; default = [bool]$_.Default } })
  send_connectors = @(Get-SendConnector | ForEach-Object {
    @{ name = "$($_.Name)"; address_spaces = @($_.AddressSpaces | ForEach-Object { "$_" })
       smart_hosts = @($_.SmartHosts | ForEach-Object { "$_" })
       dns_routing_enabled = [bool]$_.DNSRoutingEnabled; enabled = [bool]$_.Enabled } })
  ews_virtual_directories = @(Get-WebServicesVirtualDirectory -ADPropertiesOnly | ForEach-Object {
    @{ identity = "$($_.Identity)"; server = "$($_.Server)"; mrsproxy_enabled = [bool]$_.MRSProxyEnabled
       mrsproxy_max_connections = (Num $_.MRSProxyMaxConnections) } })
  mailbox_databases = @(Get-MailboxDatabase -Status | ForEach-Object {
    $free = $_.AvailableNewMailboxSpace
    @{ name = "$($_.Name)"; server = "$($_.Server)"; mounted = [bool]$_.Mounted
       available_new_mailbox_space_bytes = $(if ($free) { $free.ToBytes() }) } })
  recipient_validation_enabled = [bool](Get-RecipientFilterConfig).RecipientValidationEnabled
}
