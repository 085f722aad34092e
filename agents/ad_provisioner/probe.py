"""`homebound config check --connect` for [active_directory]: bind and read the OUs.

Cheap to import: ldap3 is loaded only when the check runs.
"""

from __future__ import annotations

from agents.runtime.config import ActiveDirectorySection, HomeboundConfig

__all__ = ["check_directory"]


def check_directory(config: HomeboundConfig) -> str:
    """Bind over LDAPS as the configured account and find base_dn and users_ou."""
    from agents.ad_provisioner.factory import directory_from_config

    section: ActiveDirectorySection = config.require("active_directory", needed_by="ad-provisioner")
    directory = directory_from_config(section)
    try:
        return directory.describe(section.users_ou)
    finally:
        directory.close()
