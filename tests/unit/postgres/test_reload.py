"""What PostgreSQL refused at a reload: pg_file_settings rows and its own words from the log."""

from __future__ import annotations

from pgtopo.postgres import reload

# Seen on 17.12: the log of two reloads, shared_buffers = '1kB' then work_mem = 10.
LOG = """\
2026-12-01 00:01:43.834 UTC [1] LOG:  received SIGHUP, reloading configuration files
2026-12-01 00:01:43.838 UTC [1] LOG:  0 8kB is outside the valid range for parameter "shared_buffers" (16 8kB .. 1073741823 8kB)
2026-12-01 00:01:43.838 UTC [1] LOG:  configuration file "/etc/pgtopo/postgresql.conf" contains errors; unaffected \
changes were applied
2026-12-01 00:01:45.212 UTC [1] LOG:  received SIGHUP, reloading configuration files
2026-12-01 00:01:45.225 UTC [1] LOG:  invalid value for parameter "wal_level": "bogus"
2026-12-01 00:01:45.225 UTC [1] HINT:  Available values: minimal, replica, logical.
2026-12-01 00:01:45.226 UTC [1] LOG:  parameter "work_mem" changed to "12MB"
"""


def test_the_words_postgres_logged_about_a_setting() -> None:
    assert reload.words_in_log(LOG, "shared_buffers") == (
        '0 8kB is outside the valid range for parameter "shared_buffers" (16 8kB .. 1073741823 8kB)')
    assert reload.words_in_log(LOG, "wal_level") == (
        'invalid value for parameter "wal_level": "bogus"; Available values: minimal, replica, logical.')
    assert reload.words_in_log(LOG, "max_connections") == ""
    # The file says timezone, PostgreSQL's message says TimeZone: names are case-insensitive.
    tz = '2026-12-01 00:44:50.104 GMT [7] LOG:  invalid value for parameter "TimeZone": "Mars/Olympus"\n'
    assert reload.words_in_log(tz, "timezone") == 'invalid value for parameter "TimeZone": "Mars/Olympus"'
    # The same line seen twice (overlapping log reads) is said once.
    assert reload.words_in_log(LOG + LOG, "shared_buffers").count("outside") == 1


def test_refused_rows() -> None:
    sep = "\x1f"
    rows = f"shared_buffers{sep}1kB{sep}/etc/pgtopo/postgresql.conf{sep}58{sep}setting could not be applied\n" \
           f"{sep}{sep}/etc/pgtopo/postgresql.conf{sep}3{sep}syntax error\nnot a row\n"
    refused = reload.parse_refused(rows)
    assert refused == [
        reload.Refused(name="shared_buffers", setting="1kB", file="/etc/pgtopo/postgresql.conf", line=58,
                       error="setting could not be applied"),
        reload.Refused(name="", setting="", file="/etc/pgtopo/postgresql.conf", line=3, error="syntax error"),
    ]
    assert refused[1].text() == "a line (/etc/pgtopo/postgresql.conf line 3): syntax error"
    worded = reload.Refused(name="shared_buffers", setting="1kB", file="/etc/pgtopo/postgresql.conf", line=58,
                            error="setting could not be applied", words="0 8kB is outside the valid range")
    assert worded.text() == "shared_buffers = '1kB' (/etc/pgtopo/postgresql.conf line 58): 0 8kB is outside the valid range"
