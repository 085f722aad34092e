"""Configuration: TOML, environment overrides, secrets from files, plain-word problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.runtime.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "homebound.toml"
    path.write_text(text)
    return path


def test_secrets_come_from_files_and_environment_overrides_win(tmp_path: Path) -> None:
    secret = tmp_path / "tsig"
    secret.write_text("c2VjcmV0\n")
    path = write(tmp_path, f"""
[dns]
server = "192.0.2.53"
tsig_key_name = "homebound-key"
tsig_secret_file = "{secret}"

[runtime]
workers = 4
""")
    config = load_config(path, env={"HOMEBOUND_RUNTIME_WORKERS": "12",
                                    "HOMEBOUND_RUNTIME_RETRY_DELAYS": "1, 2.5"})
    assert config.dns is not None
    assert config.dns.tsig_secret is not None
    assert config.dns.tsig_secret.get_secret_value() == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(config)  # SecretStr never prints
    assert config.runtime.workers == 12
    assert config.runtime.retry_delays == [1.0, 2.5]


def test_a_secret_file_named_in_the_environment_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2")
    path = write(tmp_path, """
[active_directory]
url = "ldaps://127.0.0.1:636"
bind_user = "Administrator@LAB.EXAMPLE"
base_dn = "DC=lab,DC=example"
users_ou = "OU=Migrated Users,DC=lab,DC=example"
""")
    config = load_config(path, env={"HOMEBOUND_ACTIVE_DIRECTORY_PASSWORD_FILE": str(secret)})
    assert config.active_directory is not None
    assert config.active_directory.password is not None
    assert config.active_directory.password.get_secret_value() == "hunter2"


def test_every_problem_is_reported_by_section_in_plain_words(tmp_path: Path) -> None:
    path = write(tmp_path, """
[amqp]
url = "http://broker"

[active_directory]
url = "ldap://dc1"
bind_user = "admin"
password = "in-the-file"
base_dn = "DC=x"

[dns]
tsig_key_name = "k"
tsig_secret_file = "/nonexistent/secret"

[runtime]
workers = 0
colour = "blue"

[bogus]
x = 1
""")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    problems = caught.value.problems
    assert problems["amqp"] == ["url: must start with amqp:// or amqps://"]
    ad = " | ".join(problems["active_directory"])
    assert "secrets do not belong in the configuration file" in ad
    assert "url: must be an ldaps:// URL" in ad
    assert "users_ou: required but not set" in ad
    assert "in-the-file" not in str(caught.value)  # the secret is not echoed
    assert "cannot read the secret file /nonexistent/secret" in problems["dns"][0]
    runtime = " | ".join(problems["runtime"])
    assert "workers: Input should be greater than or equal to 1" in runtime
    assert "colour: unknown key" in runtime
    assert problems["bogus"][0].startswith("unknown section")


def test_a_missing_explicit_file_is_an_error_but_no_file_means_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    config = load_config(None, env={"HOMEBOUND_AMQP_URL": "amqp://u:p@broker:5672/%2F"})
    assert config.amqp.url == "amqp://u:p@broker:5672/%2F"
    assert config.exchange_online is None
    with pytest.raises(ConfigError, match=r"ad-provisioner needs a \[active_directory\] section"):
        config.require("active_directory", needed_by="ad-provisioner")


def test_a_secret_in_the_environment_wins_over_a_secret_file_named_in_the_toml(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("from-the-file")
    path = write(tmp_path, f"""
[dns]
tsig_key_name = "k"
tsig_secret_file = "{tmp_path / 'old'}"
""")
    config = load_config(path, env={"HOMEBOUND_DNS_TSIG_SECRET": "from-the-environment"})
    assert config.dns is not None and config.dns.tsig_secret is not None
    assert config.dns.tsig_secret.get_secret_value() == "from-the-environment"
