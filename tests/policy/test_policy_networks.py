"""Client networks: the prefix sweep, the networks file, longest-match lookup, at ISP scale.

The sweep and the lookup are checked against a naive reference built on `ipaddress` (every
prefix tried, the longest containing one wins); the networks file through whole policies, as
`check` and a reload read it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.build.compile import compile_policy
from resolver.holder import SnapshotHolder
from resolver.policy.compile import PolicyError
from resolver.policy.networks import SHOW, ClientNetworks
from resolver.policy.prefixes import CHUNK, parse_network, parse_prefix, release, sorted_keys
from resolver.stats import Stats

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("standard", "family", "kids")

POLICY = """\
clients:
  default: standard
{clients}
profiles:
  standard: {{age: unrestricted}}
  family: {{age: 11-14}}
  kids: {{age: 6-10}}
lists: {{dir: lists, catalogue_sources: false}}
"""


def write_policy(folder: Path, clients: str, subscribers: str | None = None) -> Path:
    if subscribers is not None:
        (folder / "subscribers.txt").write_text(subscribers)
    path = folder / "policy.yaml"
    path.write_text(POLICY.format(clients=clients))
    return path


def swept(*entries: tuple[str, str]) -> tuple[ClientNetworks, list[str]]:
    """Networks added in order from a file named `f`, swept; the problems as text."""
    networks = ClientNetworks(PROFILES, "standard")
    networks.begin("f")
    for line, (text, profile) in enumerate(entries, 1):
        assert networks.add(text, profile, line, 1) is None
    table, problems = networks.table()
    networks.lookup = table  # type: ignore[attr-defined]
    return networks, [str(p) for p in problems]


def owner_of(networks: ClientNetworks, address: str) -> str:
    ip = ipaddress.ip_address(address)
    return networks.owners[networks.lookup.owner(ip.version, int(ip))]  # type: ignore[attr-defined]


# (networks written, in order) -> (problems expected, {address: profile it gets})
SWEEP_CASES = {
    "nested": (
        [("10.0.0.0/8", "family"), ("10.1.0.0/16", "kids")],
        ["f:2:1: warning: network 10.1.0.0/16 (kids) lies inside 10.0.0.0/8 (family, f:1:1); "
         "the longer prefix wins for its addresses"],
        {"10.0.255.255": "family", "10.1.0.0": "kids", "10.1.255.255": "kids",
         "10.2.0.0": "family", "11.0.0.0": "standard", "9.255.255.255": "standard"},
    ),
    "nested, same profile": (
        [("10.0.0.0/8", "family"), ("10.1.0.0/16", "family")],
        ["f:2:1: warning: network 10.1.0.0/16 (family) lies inside 10.0.0.0/8 (f:1:1), "
         "with the same profile"],
        {"10.1.2.3": "family", "10.200.0.1": "family"},
    ),
    "three deep, the innermost enclosing one named": (
        [("10.1.2.0/24", "kids"), ("10.0.0.0/8", "family"), ("10.1.0.0/16", "standard")],
        ["f:3:1: warning: network 10.1.0.0/16 (standard) lies inside 10.0.0.0/8 (family, f:2:1)",
         "f:1:1: warning: network 10.1.2.0/24 (kids) lies inside 10.1.0.0/16 (standard, f:3:1)"],
        {"10.1.2.9": "kids", "10.1.3.0": "standard", "10.9.0.0": "family"},
    ),
    "same start, both ends shared": (
        [("10.0.0.0/8", "family"), ("10.0.0.0/9", "kids"), ("10.128.0.0/9", "standard"),
         ("10.255.255.255/32", "kids")],
        ["lies inside 10.0.0.0/8", "lies inside 10.0.0.0/8", "lies inside 10.128.0.0/9"],
        {"10.0.0.0": "kids", "10.127.255.255": "kids", "10.128.0.0": "standard",
         "10.255.255.254": "standard", "10.255.255.255": "kids", "11.0.0.0": "standard"},
    ),
    "adjacent, no overlap": (
        [("10.0.0.0/25", "family"), ("10.0.0.128/25", "kids"), ("10.0.1.0/24", "family")],
        [],
        {"10.0.0.127": "family", "10.0.0.128": "kids", "10.0.1.0": "family",
         "10.0.2.0": "standard"},
    ),
    "the same network twice, same profile": (
        [("10.0.0.0/24", "family"), ("10.0.0.0/24", "family")],
        ["f:2:1: warning: network 10.0.0.0/24 (family) is listed twice (also at f:1:1)"],
        {"10.0.0.1": "family"},
    ),
    "the same network twice, different profiles": (
        [("10.0.0.0/24", "family"), ("10.0.0.0/24", "kids")],
        ["f:2:1: network 10.0.0.0/24 (kids) is listed twice with different profiles "
         "(also at f:1:1, for family)"],
        {"10.0.0.1": "family"},
    ),
    "IPv6 spelled two ways is one network": (
        [("2001:db8::/32", "family"), ("2001:0DB8:0:0::/32", "kids")],
        ["network 2001:db8::/32 (kids) is listed twice with different profiles"],
        {"2001:db8::1": "family"},
    ),
    "v4 and v6 apart; host routes; the whole space": (
        [("0.0.0.0/0", "kids"), ("::/0", "family"), ("192.0.2.1/32", "standard"),
         ("2001:db8::1/128", "kids"), ("255.255.255.255/32", "family"),
         ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "standard")],
        ["inside 0.0.0.0/0", "inside 0.0.0.0/0", "inside ::/0", "inside ::/0"],
        {"192.0.2.0": "kids", "192.0.2.1": "standard", "192.0.2.2": "kids",
         "255.255.255.255": "family", "2001:db8::": "family", "2001:db8::1": "kids",
         "2001:db8::2": "family", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe": "family",
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "standard", "0.0.0.0": "kids", "::": "family"},
    ),
    "IPv6 halves: a boundary inside one /64": (
        [("2001:db8::/64", "family"), ("2001:db8::8000:0:0:0/65", "kids"),
         ("2001:db8:0:1::/64", "kids")],
        ["inside 2001:db8::/64"],
        {"2001:db8::7fff:ffff:ffff:ffff": "family", "2001:db8::8000:0:0:0": "kids",
         "2001:db8::ffff:ffff:ffff:ffff": "kids", "2001:db8:0:1::5": "kids",
         "2001:db8:0:2::": "standard", "2001:db7:ffff:ffff::": "standard"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SWEEP_CASES))
def test_sweep(case: str) -> None:
    entries, expected, lookups = SWEEP_CASES[case]
    networks, problems = swept(*entries)
    assert len(problems) == len(expected), problems
    for text, want in zip(problems, expected, strict=True):
        assert want in text
    for address, profile in lookups.items():
        assert owner_of(networks, address) == profile, address


def test_many_findings_are_counted_not_listed() -> None:
    entries = [("10.0.0.0/8", "family")]
    entries += [(f"10.0.{i}.0/24", "kids") for i in range(40)]
    entries += [(f"10.0.{i}.0/24", "family") for i in range(25)]  # conflicts
    _, problems = swept(*entries)
    errors = [p for p in problems if "listed twice" in p]
    nested = [p for p in problems if "inside" in p]
    assert len(errors) == SHOW + 1 and len(nested) == SHOW + 1
    assert (
        errors[-1]
        == "f:52:1: 15 more networks listed twice with different profiles not shown (25 in all)"
    )
    assert (
        nested[-1]
        == "f:12:1: warning: 30 more networks inside another network not shown (40 in all)"
    )


def test_sorted_keys_in_slices_equals_sorted() -> None:
    import random

    rnd = random.Random(5)
    for size in (0, 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7):
        keys = [rnd.randrange(1 << rnd.choice((8, 40, 170))) for _ in range(size)]
        assert list(sorted_keys(list(keys))) == sorted(keys)
    values = list(range(3 * CHUNK + 5))
    release(values)
    assert values == []


# --------------------------------------------------------------- parsing, against ipaddress

PREFIX_TEXTS = [
    "10.1.0.0/16", "10.1.0.1/16", "10.1.0.0", "10.1.0.0/33", "10.1.0.0/016", "010.1.0.0/16",
    "10.1.0.0/255.255.0.0", "10.1.0/24", "1.2.3.4.5/32", "256.1.1.1/32", " 10.0.0.0/8",
    "10.0.0.0/+8", "10.0.0.0/８", "2001:db8::/32", "2001:DB8::/32", "2001:db8::1/32",
    "::/0", "::/129", "1::2::3/128", ":1::/16", "1:2:3:4:5:6:7:8/128", "1:2:3:4:5:6:7::/128",
    "1:2:3:4:5:6:7:8::/128", "12345::/16", "::ffff:10.0.0.0/120", "fe80::%eth0/64",
    "2001:db8::/", "/24", "", "::", "1:2:3:4:5:6:7/112", "g::/16", "0x1::/16",
]  # fmt: skip


def v6_text(value: int, *, exploded: bool) -> str:
    address = ipaddress.IPv6Address(value)
    return address.exploded if exploded else str(address)


def reference(text: str) -> tuple[int, int, int] | None:
    net = parse_network(text)
    return None if isinstance(net, str) else (net.version, int(net.network_address), net.prefixlen)


@pytest.mark.parametrize("text", PREFIX_TEXTS)
def test_parse_prefix_agrees_with_ipaddress(text: str) -> None:
    got = parse_prefix(text)
    want = reference(text)
    if want is None:
        assert got == parse_network(text)  # the same message
    else:
        assert got == want


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
            lambda t: f"{ipaddress.IPv4Address(t[0])}/{t[1]}"
        ),
        st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128), st.booleans()).map(
            lambda t: f"{v6_text(t[0], exploded=t[2])}/{t[1]}"
        ),
        st.text(alphabet="0123456789abcdefABCDEF:./x%", max_size=45),
    )
)
def test_parse_prefix_agrees_with_ipaddress_generated(text: str) -> None:
    want = reference(text)
    assert parse_prefix(text) == (parse_network(text) if want is None else want)


# ------------------------------------------------------- lookup, against a naive reference

prefixes = st.one_of(
    st.tuples(st.just(4), st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.tuples(st.just(6), st.integers(0, 2**128 - 1), st.integers(0, 128)),
)


def as_network(
    version: int, value: int, length: int
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    width = 32 if version == 4 else 128
    value &= ~((1 << (width - length)) - 1) & ((1 << width) - 1)
    return ipaddress.ip_network((value, length))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(prefixes, st.sampled_from(PROFILES)), max_size=40),
    st.lists(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                       st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)), max_size=30),
    st.data(),
)  # fmt: skip
def test_lookup_equals_longest_match(entries, addresses, data) -> None:
    written = [(as_network(*p), profile) for p, profile in entries]
    # Addresses at and next to every boundary, where an off-by-one would show.
    for net, _ in written:
        addresses += [net.network_address, net.broadcast_address]
        if int(net.broadcast_address) < (2**net.max_prefixlen) - 1:
            addresses.append(net.broadcast_address + 1)
        if int(net.network_address) > 0:
            addresses.append(net.network_address - 1)
    networks = ClientNetworks(PROFILES, "standard")
    networks.begin("f")
    for line, (net, profile) in enumerate(written, 1):
        assert networks.add(str(net), profile, line, 1) is None
    table, _ = networks.table()
    first: dict[object, str] = {}
    for net, profile in written:
        first.setdefault(net, profile)  # the first written wins a duplicate
    for ip in addresses:
        holding = [net for net in first if net.version == ip.version and ip in net]
        want = first[max(holding, key=lambda n: n.prefixlen)] if holding else "standard"
        assert networks.owners[table.owner(ip.version, int(ip))] == want, ip


# --------------------------------------------------------------------- the networks file


def test_networks_file_and_mapping_together(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        "  networks: {10.0.0.0/8: family}\n  networks_file: subscribers.txt",
        "# exported 2026-03-01\n"
        "\n"
        "10.1.0.0/16 kids     # a school district\n"
        "  2001:db8::/48\tkids\n"
        "192.0.2.0/24 family\n",
    )
    snap = compile_policy(policy)
    assert snap.profile_for("10.1.2.3") == "kids"
    assert snap.profile_for("10.2.0.1") == "family"
    assert snap.profile_for("2001:db8::5") == "kids"
    assert snap.profile_for("::ffff:192.0.2.7") == "family"
    assert snap.profile_for("2001:db9::") == "standard"
    texts = [str(w) for w in snap.warnings]
    assert (
        f"{tmp_path}/subscribers.txt:3:1: warning: network 10.1.0.0/16 (kids) lies inside "
        f"10.0.0.0/8 (family, {policy}:3:14); the longer prefix wins for its addresses" in texts
    )


def test_networks_file_bad_lines(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        "  networks: {10.1.0.0/16: family}\n  networks_file: subscribers.txt",
        "10.0.0.1/8 family\n"
        "10.2.0.0/16 famly\n"
        "10.3.0.0/16\n"
        "10.4.0.0/16 family extra\n"
        "not-a-network kids\n"
        "10.1.0.0/16 kids\n"
        "10.5.0.0/16 family\n",
    )
    with pytest.raises(PolicyError) as caught:
        compile_policy(policy)
    texts = [str(p) for p in caught.value.problems]
    file = f"{tmp_path}/subscribers.txt"
    assert texts[:6] == [
        f"{file}:1:1: bad network '10.0.0.1/8': host bits set (did you mean 10.0.0.0/8?)",
        f"{file}:2:13: unknown profile 'famly' (did you mean \"family\"?)",
        f"{file}:3:1: expected `prefix profile`, not '10.3.0.0/16'",
        f"{file}:4:1: expected `prefix profile`, not '10.4.0.0/16 family extra'",
        f"{file}:5:1: bad network 'not-a-network': "
        "'not-a-network' does not appear to be an IPv4 or IPv6 network",
        f"{file}:6:1: network 10.1.0.0/16 (kids) is listed twice with different profiles "
        f"(also at {policy}:3:14, for family)",
    ]


def test_many_bad_lines_are_counted(tmp_path: Path) -> None:
    lines = [f"10.{i}.0.0/16 {'nobody' if i % 2 else 'kids'}" for i in range(200)]
    policy = write_policy(tmp_path, "  networks_file: subscribers.txt", "\n".join(lines))
    with pytest.raises(PolicyError) as caught:
        compile_policy(policy)
    texts = [str(p) for p in caught.value.errors]
    assert len(texts) == SHOW + 1
    assert texts[0] == f"{tmp_path}/subscribers.txt:2:13: unknown profile 'nobody'"
    assert (
        texts[-1] == f"{tmp_path}/subscribers.txt:22:14: 90 more bad lines not shown (100 in all)"
    )


def test_many_bad_networks_in_the_policy_are_counted(tmp_path: Path) -> None:
    written = "".join(f"\n    10.{i}.0.1/16: kids" for i in range(30))
    policy = write_policy(tmp_path, f"  networks:{written}")
    with pytest.raises(PolicyError) as caught:
        compile_policy(policy)
    texts = [str(p) for p in caught.value.errors]
    assert len(texts) == SHOW + 1
    assert texts[0].startswith(f"{policy}:4:5: bad network '10.0.0.1/16': host bits set")
    assert texts[-1] == f"{policy}:14:5: 20 more bad networks not shown (30 in all)"


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        ("  networks_file: missing.txt", "3:18: cannot read networks file '{tmp}/missing.txt': "
         "No such file or directory"),
        ("  networks_file: [a, b]", '3:18: "networks_file" must be a string, not a list'),
    ],
)  # fmt: skip
def test_networks_file_unusable(tmp_path: Path, clients: str, message: str) -> None:
    policy = write_policy(tmp_path, clients)
    with pytest.raises(PolicyError) as caught:
        compile_policy(policy)
    assert f"{policy}:{message.format(tmp=tmp_path)}" in [str(p) for p in caught.value.problems]


def test_networks_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "subscribers.txt").write_bytes(b"10.0.0.0/8 kids\n10.1.0.0/16 f\xe9mily\n")
    policy = write_policy(tmp_path, "  networks_file: subscribers.txt")
    with pytest.raises(PolicyError) as caught:
        compile_policy(policy)
    assert [str(p) for p in caught.value.errors] == [
        f"{tmp_path}/subscribers.txt:2:13: unknown profile 'f\ufffdmily' (did you mean \"family\"?)"
    ]


def test_profile_named_only_in_the_file_is_used(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path, "  networks_file: subscribers.txt", "10.0.0.0/8 kids\n10.1.0.0/16 family\n"
    )
    assert not [w for w in compile_policy(policy).warnings if "not used" in str(w)]


def test_reload_reads_the_changed_file_and_refuses_a_broken_one(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path, "  networks_file: subscribers.txt", "10.0.0.0/8 kids\n10.1.0.0/16 family\n"
    )
    holder = SnapshotHolder(Stats())

    async def reload(generation: int) -> dict[str, object]:
        built = await holder.build(policy, generation)
        if built["ok"]:
            holder.commit(generation)
        return built

    assert asyncio.run(reload(1))["ok"]
    assert holder.current is not None and holder.current.profile_for("10.1.0.1") == "family"

    (tmp_path / "subscribers.txt").write_text("10.0.0.0/8 kids\n10.1.0.0/16 standard\n")
    result = asyncio.run(reload(2))
    assert result["ok"], result
    assert holder.current.profile_for("10.1.0.1") == "standard"

    good = holder.current
    (tmp_path / "subscribers.txt").write_text("10.0.0.0/8 kids\n10.1.0.0/16 nobody\n")
    result = asyncio.run(reload(3))
    assert not result["ok"]
    assert "subscribers.txt:2:13: unknown profile 'nobody'" in "".join(result["errors"])
    assert holder.current is good


# ------------------------------------------------------------------------- at ISP scale


def test_check_200k_networks_from_the_command_line(tmp_path: Path) -> None:
    """200,000 networks: half in the policy's own mapping, half in the
    networks file, one pool enclosing many of them. Only completion and the report are checked;
    the time is measured in bench/networks_bench.py."""
    inline = "".join(
        f'\n    "2001:db8:{i >> 8:x}:{i & 255:x}00::/56": family' for i in range(100_000)
    )
    subscribers = "".join(
        f"100.{64 + (i >> 16)}.{i >> 8 & 255}.{i & 255}/32 {PROFILES[i % 3]}\n"
        for i in range(100_000)
    )
    policy = write_policy(
        tmp_path,
        f"  networks_file: subscribers.txt\n  networks:\n    100.64.0.0/10: standard{inline}",
        subscribers,
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("safe-resolver")), "check", str(policy)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) < 40  # summarized, not 100,000 warnings
    assert (
        f"{tmp_path}/subscribers.txt:11:1: warning: 99990 more networks inside another network "
        "not shown (100000 in all)" in lines
    )
    assert lines[-1].startswith(f"{policy}: OK (3 profiles")
