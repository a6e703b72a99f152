"""The bundled services catalogue (blocklists/services.yaml): the services the issue names, each
with its names in both languages and a known category, covering the names real traffic asks
(Cisco Umbrella's top list, when /work/shared/data is present); mistakes named by place."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from resolver.lists.catalogue import CatalogueError, load_catalogue
from resolver.lists.services import load_services

UMBRELLA = Path("/work/shared/data/popularity/umbrella-top-100k.txt.xz")
# The services children in Vietnam use, by id.
WANTED = ("tiktok", "youtube", "facebook", "instagram", "zalo", "messenger", "discord",
          "telegram", "roblox", "lien-quan", "free-fire", "pubg-mobile", "minecraft", "steam",
          "netflix")  # fmt: skip
# service -> the brand its own domains carry (Umbrella names whose registrable label has it)
BRANDS = {"tiktok": "tiktok", "facebook": "facebook", "roblox": "roblox", "discord": "discord",
          "zalo": "zalo", "instagram": "instagram", "telegram": "telegram",
          "minecraft": "minecraft", "steam": "steampowered"}  # fmt: skip


def covered(name: str, domains: tuple[str, ...]) -> bool:
    return any(name == d or name.endswith("." + d) for d in domains)


def test_the_bundled_catalogue_has_the_services_with_names_and_known_categories() -> None:
    services = load_services().services
    categories = set(load_catalogue().categories)
    for sid in WANTED:
        assert sid in services, sid
    for service in services.values():
        assert service.name_vi and service.name_en and service.domains
        assert service.category in categories, (service.id, service.category)
    assert services["lien-quan"].name("vi").startswith("Liên Quân")
    assert covered("www.tiktok.com", services["tiktok"].domains)
    assert covered("chat.zalo.me", services["zalo"].domains)


@pytest.mark.skipif(not UMBRELLA.exists(), reason="no /work/shared/data (real traffic names)")
def test_the_names_real_traffic_asks_are_covered() -> None:
    services = load_services().services
    with lzma.open(UMBRELLA, "rt") as f:
        top = f.read().split()
    for sid, brand in BRANDS.items():
        names = [n for n in top if "." in n and brand in n.split(".")[-2]]
        hit = sum(covered(n, services[sid].domains) for n in names)
        assert names and hit / len(names) >= 0.9, (sid, hit, len(names))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services: {}", "'services' must be a list"),
        ("services: [{id: Bad, name_vi: a, name_en: a, category: x, domains: [a.vn]}]",
         "services[0].id: 'Bad' must be lower-case"),
        ("services: [{id: a, name_vi: a, name_en: a, category: x, domains: [localhost]}]",
         "services[0].domains[0]: 'localhost': not a domain name"),
        ("services: [{id: a, name_vi: a, category: x, domains: [a.vn]}]",
         "services[0].name_en: required text is missing"),
        ("services: [{id: a, name_vi: a, name_en: a, category: x, domains: [a.vn], url: x}]",
         "unknown keys ['url']"),
        ("services: [{id: a, name_vi: a, name_en: a, category: x, domains: [a.vn]},"
         " {id: a, name_vi: a, name_en: a, category: x, domains: [b.vn]}]",
         "services[1].id 'a' repeated"),
    ],
)  # fmt: skip
def test_a_bad_catalogue_is_refused_with_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    with pytest.raises(CatalogueError) as caught:
        load_services(path)
    assert message in str(caught.value)
