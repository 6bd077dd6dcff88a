"""The command line's own behaviour: exit codes and messages users read."""

from crm_pipeline.cli import main


def test_audiences_validate_accepts_a_good_file_and_names_the_bad_key(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(
        "audiences:\n"
        "  big_spenders:\n"
        "    label: Big spenders\n"
        "    rule: {all: [{field: revenue, '>=': 500}, {field: last_order_date, within_days: 90}]}\n", encoding="utf-8")
    assert main(["audiences", "validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "audiences:\n"
        "  sneaky:\n"
        "    rule: {field: \"revenue; DROP TABLE contacts\", '>=': 1}\n", encoding="utf-8")
    assert main(["audiences", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "sneaky" in err and "field" in err


def test_a_bad_setting_stops_with_the_key_named(tmp_path, capsys):
    config = tmp_path / "crm.yaml"
    config.write_text("quarantine_hold_share: 7\n", encoding="utf-8")
    assert main(["--config", str(config), "dq", "report"]) == 2
    assert "quarantine_hold_share" in capsys.readouterr().err
