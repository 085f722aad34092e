"""The lab: real servers where they run on Linux, protocol-level stand-ins where they cannot.

* Active Directory: a Samba AD DC (`lab.samba`), extended with the Exchange attributes.
* DNS: BIND9 with TSIG-signed dynamic updates (`lab.bind`).
* Exchange Online: an HTTPS stand-in for the token and admin API endpoints (`lab.exo`).
* On-prem Exchange: a WinRM stand-in running the Exchange Management Shell
  operations Homebound ships (`lab.onprem`).
"""
