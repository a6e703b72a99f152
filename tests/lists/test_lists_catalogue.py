"""The bundled catalogue, its curated core lists, and resolving a policy's `lists:` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from resolver.build.listfile import read_list
from resolver.lists.catalogue import (
    CatalogueError,
    fetched_copy,
    lists_settings,
    load_catalogue,
    resolve_sources,
)

REQUIRED = {
    "adult",
    "gambling",
    "drugs",
    "violence",
    "self-harm",
    "weapons",
    "hate",
    "dating",
    "malware",
    "phishing",
    "scam",
    "cryptojacking",
    "proxy",
    "doh",
    "social",
    "games",
    "video",
    "chat",
    "ads",
    "piracy",
    "search-unsafe",
    "mandated",
}


def test_bundled_catalogue_covers_every_category() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.categories) >= REQUIRED
    for category in catalogue.categories.values():
        assert category.name_vi and category.name_en and category.description_en
        for source in category.sources:
            assert source.url.startswith("https://") and source.licence
    assert catalogue.categories["mandated"].sources == ()


def test_core_lists_parse_cleanly() -> None:
    catalogue = load_catalogue()
    for cid, category in catalogue.categories.items():
        if cid == "mandated":
            assert category.core_path is None
            continue
        assert category.core_path is not None, cid
        result = read_list(category.core_path)
        assert result.format == "domains" and result.rejects == [], cid
        assert result.entries, cid
    names = {
        cid: {e.name for e in read_list(c.core_path).entries}
        for cid, c in catalogue.categories.items()
        if c.core_path
    }
    assert {"facebook.com", "tiktok.com", "instagram.com", "x.com"} <= names["social"]
    assert {"zalo.me", "telegram.org"} <= names["chat"]
    assert {"roblox.com", "garena.vn"} <= names["games"]
    assert {"dns.google", "cloudflare-dns.com"} <= names["doh"]
    assert "youtube.com" in names["video"]
    all_names = [n for group in names.values() for n in group]
    assert len(all_names) == len(set(all_names)), "a name sits in two core lists"


def test_resolve_sources(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    local = tmp_path / "mandated.rpz"
    local.write_text("bad.example CNAME .\n")
    (tmp_path / "var/lists").mkdir(parents=True)
    fetched_copy(tmp_path / "var/lists", "hostsvn-adult").write_text("x.example\n")
    section = {
        "sources": [
            {"id": "moet", "category": "mandated", "path": "mandated.rpz", "format": "rpz"},
            {"id": "extra", "category": "adult", "url": "https://lists.example/a.txt"},
        ]
    }
    sources = resolve_sources(catalogue, section, tmp_path, {"adult", "mandated"})
    by_id = {s.id: s for s in sources}
    assert list(by_id) == ["core-adult", "blp-porn", "hostsvn-adult", "extra", "moet"]
    assert by_id["core-adult"].core and by_id["core-adult"].present
    assert not by_id["blp-porn"].present  # not fetched yet
    assert by_id["hostsvn-adult"].present
    assert by_id["hostsvn-adult"].local_path == tmp_path / "var/lists/hostsvn-adult.list"
    assert by_id["moet"].local_path == local and by_id["moet"].format == "rpz"
    assert by_id["extra"].format == "auto"
    only_core = resolve_sources(catalogue, {"catalogue_sources": False}, tmp_path, {"adult"})
    assert [s.id for s in only_core] == ["core-adult"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sources": [{"id": "a", "category": "nope", "url": "https://x"}]}, "sources[0].category"),
        ({"sources": [{"id": "a", "category": "adult"}]}, "'url', 'path' or 'transfer'"),
        ({"sources": [{"id": "a", "category": "adult", "url": "ftp://x"}]}, "sources[0].url"),
        (
            {"sources": [{"id": "a", "category": "adult", "url": "https://x", "format": "csv"}]},
            "sources[0].format",
        ),
        ({"sources": [{"id": "A B", "category": "adult", "url": "https://x"}]}, "sources[0].id"),
        (
            {"sources": [{"id": "a", "category": "adult", "path": "x", "colour": "red"}]},
            "unknown keys ['colour']",
        ),
        (
            {"sources": [{"id": "a", "category": "adult", "path": "x"}] * 2},
            "sources[1].id",
        ),
        ({"min_keep_ratio": 2}, "lists.min_keep_ratio"),
        ({"max_bytes": 0}, "lists.max_bytes"),
        ({"catalogue_sources": "yes"}, "lists.catalogue_sources"),
        ({"dirs": "x"}, "unknown keys ['dirs']"),
    ],
)
def test_bad_lists_section_names_the_key(section: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_sources(load_catalogue(), section, tmp_path)


def test_unknown_category_requested(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="unknown categories"):
        resolve_sources(load_catalogue(), None, tmp_path, {"cooking"})


def test_settings_defaults_and_relative_dir(tmp_path: Path) -> None:
    settings = lists_settings(None, tmp_path)
    assert settings.dir == tmp_path / "var/lists"
    assert settings.min_keep_ratio == 0.5 and settings.catalogue_sources


def test_catalogue_location_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.txt").write_text("x.example\n")
    (tmp_path / "catalogue.yaml").write_text(
        "categories:\n  - {id: x, name_vi: X, name_en: X, description: d}\n"
    )
    monkeypatch.setenv("SAFE_RESOLVER_BLOCKLISTS", str(tmp_path))
    catalogue = load_catalogue()
    assert list(catalogue.categories) == ["x"]
    assert catalogue.categories["x"].core_path == tmp_path / "core" / "x.txt"


def test_broken_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("categories:\n  - {id: x, name_vi: X}\n")
    with pytest.raises(CatalogueError, match=r"categories\[0\].name_en"):
        load_catalogue(path)
    path.write_text("categories: [\n")
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        load_catalogue(path)
