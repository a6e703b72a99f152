"""The reader: compression by magic bytes, broken files, line caps, format detection."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from resolver.build.listfile import read_list
from resolver.lists.common import MAX_LINE
from resolver.lists.detect import detect_format
from resolver.lists.model import Scope
from resolver.lists.reader import PARSERS, check_format, parse_lines

DATA = Path(__file__).resolve().parent.parent / "data" / "lists"
SHARED = Path("/work/shared/data")
LIST = "".join(f"site{i}.example\n" for i in range(5000)).encode()


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".txt", bytes), (".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress)],
)
def test_compressed_inputs(tmp_path: Path, suffix: str, compress) -> None:
    path = tmp_path / f"list{suffix}"
    path.write_bytes(compress(LIST))
    result = read_list(path)
    assert len(result.entries) == 5000 and result.rejects == []


def test_compression_is_found_by_magic_not_name(tmp_path: Path) -> None:
    path = tmp_path / "misnamed.txt"
    path.write_bytes(lzma.compress(LIST))
    assert len(read_list(path).entries) == 5000


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress])
def test_truncated_compressed_file_keeps_what_was_read(tmp_path: Path, compress) -> None:
    big = "".join(f"name{i}.example\n" for i in range(200_000)).encode()
    data = compress(big)
    path = tmp_path / "cut"
    path.write_bytes(data[: len(data) // 2])
    result = read_list(path)
    assert 0 < len(result.entries) < 200_000
    assert result.rejects[-1].reason == "truncated-file"


def test_corrupt_compressed_file(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(LIST))
    data[20:40] = b"\xff" * 20
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    result = read_list(path)
    assert result.rejects[-1].reason in {"corrupt-file", "truncated-file"}


def test_binary_garbage_is_rejects_not_exceptions(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 400 + b"\nok.example\n")
    result = read_list(path, "domains")
    assert [e.name for e in result.entries] == ["ok.example"]
    assert set(result.reject_counts()) <= {"binary-data", "line-too-long", "invalid-name"}


def test_overlong_line_is_cut_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("a.example\n" + "x" * (MAX_LINE * 50) + "\nb.example\n")
    result = read_list(path, "domains")
    assert [(e.name, e.line) for e in result.entries] == [("a.example", 1), ("b.example", 3)]
    assert [(r.line, r.reason, len(r.text)) for r in result.rejects] == [(2, "line-too-long", 200)]


def test_missing_file_is_a_reject(tmp_path: Path) -> None:
    result = read_list(tmp_path / "nope.txt")
    assert result.entries == [] and result.rejects[0].reason == "unreadable-file"


def test_empty_file_and_utf8_bom(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_list(empty).entries == []
    bom = tmp_path / "bom"
    bom.write_bytes("\ufeffbóng-đá.vn\r\n".encode())
    assert [e.name for e in read_list(bom).entries] == ["xn--bng--8na8hpj.vn"]


def test_format_names() -> None:
    assert set(PARSERS) == {
        "domains",
        "hosts",
        "adblock",
        "dnsmasq",
        "unbound",
        "wildcard",
        "rpz",
        "keywords",
    }
    assert check_format("auto") == "auto"
    with pytest.raises(ValueError, match="unknown list format 'csv'"):
        check_format("csv")


def test_explicit_format_overrides_detection() -> None:
    lines = ["cá độ", "casino"]
    assert parse_lines(lines).format == "domains"
    assert [k.text for k in parse_lines(lines, "keywords").keywords] == ["cado", "casino"]


@pytest.mark.parametrize(
    ("lines", "fmt"),
    [
        (["# c", "example.com"], "domains"),
        (["google.com A"], "domains"),
        (["# c", "0.0.0.0 example.com"], "hosts"),
        (["! c", "||example.com^"], "adblock"),
        (["|www.google.com^$dnsrewrite=NOERROR;CNAME;x.google.com"], "adblock"),
        (["server=/example.com/"], "dnsmasq"),
        (["server:", 'local-zone: "example.com." always_nxdomain'], "unbound"),
        (["# c", "*.example.com", "*.other.com"], "wildcard"),
        (["$TTL 300", "@ SOA a. b. 1 2 3 4 5"], "rpz"),
        (["; c", "example.com IN CNAME ."], "rpz"),
        (["1.1.1.1             # one.one.one.one"], "domains"),
    ],
)
def test_detect_format(lines: list[str], fmt: str) -> None:
    assert detect_format(lines) == fmt


def test_samples_detected_by_name_suffix() -> None:
    for path in DATA.iterdir():
        if path.suffix in (".txt", ".conf"):
            expected = path.name.split(".")[1]
            assert read_list(path).format == {"conf": "unbound"}.get(expected, expected), path


DRUGS = [
    SHARED / f"blocklistproject/drugs.{fmt}.txt.xz"
    for fmt in ("domains", "hosts", "adblock", "dnsmasq")
]


@pytest.mark.skipif(not all(p.exists() for p in DRUGS), reason="shared data absent")
def test_four_formats_of_one_list_agree() -> None:
    results = [read_list(p) for p in DRUGS]
    assert [r.format for r in results] == ["domains", "hosts", "adblock", "dnsmasq"]
    names = [{e.name for e in r.entries} for r in results]
    assert len(names[0]) > 20_000
    assert names[0] == names[1] == names[2] == names[3]
    scopes = [{e.scope for e in r.entries} for r in results]
    assert scopes == [{Scope.SUBTREE}, {Scope.EXACT}, {Scope.SUBTREE}, {Scope.SUBTREE}]
    assert all(r.rejects == [] for r in results)
