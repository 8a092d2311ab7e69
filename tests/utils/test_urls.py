"""Database URLs are shown without their passwords, whatever characters those hold."""

from urllib.parse import quote

import pytest

from geoconvnet.utils.errors import ConfigError
from geoconvnet.utils.urls import check_storage_url, scrubbed, shown_url

SECRETS = ["Pw/Secret", "p@ss", "pa:ss", "pa%ss", "pa#ss", "p/@:%#w", "s3cret"]


@pytest.mark.parametrize("secret", SECRETS)
def test_no_form_of_the_password_is_ever_shown(secret):
    for written in (secret, quote(secret, safe="")):
        url = f"postgresql://optuna:{written}@db.example:5432/studies"
        shown = shown_url(url)
        assert secret not in shown and written not in shown
        assert shown.startswith("postgresql://optuna:***@")
        assert shown.endswith("/studies") or "@" in secret  # an unescaped @: host unknown


def test_the_database_librarys_reading_of_a_url_is_kept():
    # SQLAlchemy reads Pw/Secret as the password: the old split at the first / showed it.
    assert shown_url("postgresql://u:Pw/Secret@host/db") == "postgresql://u:***@host/db"
    assert shown_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert shown_url("sqlite:///studies/s/study.db") == "sqlite:///studies/s/study.db"
    shown = shown_url("postgresql://h/db?user=u&password=s3cret&sslmode=require")
    assert "s3cret" not in shown and "password=***" in shown and "sslmode=require" in shown


def test_an_ambiguous_url_is_refused_without_showing_its_password():
    with pytest.raises(ConfigError) as error:
        check_storage_url("postgresql://u:p@ss@h/db")
    assert "%40" in str(error.value) and "p@ss" not in str(error.value)
    check_storage_url("postgresql://u:p%40ss@h/db")  # escaped: fine


def test_driver_messages_lose_the_password():
    url = "postgresql://u:p%2F%40w@h/db"
    assert scrubbed('could not connect with "p/@w" or p%2F%40w', url) == \
        'could not connect with "***" or ***'
