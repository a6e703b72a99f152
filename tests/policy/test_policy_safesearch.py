"""The safe-search data file: coverage cross-checked against AdGuard Home's rules (GPL data, read
only here from /work/shared/data, never copied into blocklists/)."""

import re
from pathlib import Path

import pytest

from resolver.build.compile import load_safesearch

ADGUARD = Path("/work/shared/data/safesearch")


def test_bundled_table() -> None:
    table = load_safesearch()
    google = [h for h, e in table.hosts.items() if e.id == "google"]
    assert len(google) >= 190 and "www.google.com.vn" in google and "google.com" in google
    assert table.hosts["youtubei.googleapis.com"].targets == {
        "strict": "restrict.youtube.com", "moderate": "restrictmoderate.youtube.com"}  # fmt: skip
    assert table.hosts["edgeservices.bing.com"].targets["strict"] == "strict.bing.com"
    assert table.hosts["www.yandex.ru"].targets["strict"] == "familysearch.yandex.ru"


@pytest.mark.skipif(not ADGUARD.exists(), reason="shared test data not present")
def test_covers_adguard_cname_rules() -> None:
    table = load_safesearch()
    rule = re.compile(r"^\|([a-z0-9.-]+)\^\$dnsrewrite=NOERROR;CNAME;([a-z0-9.-]+)$")
    checked = 0
    for path in ADGUARD.glob("adguardhome-*.txt"):
        for line in path.read_text().splitlines():
            m = rule.match(line)
            if not m:
                continue
            host, target = m.groups()
            assert host in table.hosts, host
            assert target in table.hosts[host].targets.values(), (host, target)
            checked += 1
    assert checked > 190


def test_bad_safesearch_file(tmp_path) -> None:
    bad = tmp_path / "ss.yaml"
    bad.write_text("engines:\n  g:\n    setting: serch\n    target: x.example\n    hosts: [a]\n")
    from resolver.yamlsource import ConfigError

    with pytest.raises(
        ConfigError, match=r'ss.yaml:3:14: "setting" must be one of search, youtube'
    ):
        load_safesearch(bad)
