"""The YAML loader: positions, YAML 1.2 scalars, duplicate keys, and no tracebacks on any text."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver import yamlsource
from resolver.yamlsource import Checker, ConfigError, load_yaml, load_yaml_text

ROOT = Path(__file__).resolve().parents[2]


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml_text("a:\n  b: [x, y]\n  c: 1\n", "f.yaml")
    assert doc.keys[("a", "c")] == (3, 3)
    assert doc.values[("a", "b", 1)] == (2, 10)
    assert doc.where(("a", "missing", 3)) == (2, 3)


def test_yaml_12_scalars() -> None:
    doc = load_yaml_text("a: off\nb: 07:00\nc: no\nd: true\ne: 0123\nf: 12\n")
    assert doc.data == {"a": "off", "b": "07:00", "c": "no", "d": True, "e": "0123", "f": 12}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: duplicate key 'a' (first defined on line 1)"),
        ("a:\n\tb: 1\n", "f.yaml:2:1: tab character in indentation"),
        ("a: &x [*x]\n", "recursive alias"),
        ("a: !!python/object:os.system x\n", "f.yaml:1:4: unsupported value"),
        ("d: 2026-13-01\n", "f.yaml:1:4: bad value '2026-13-01'"),
        ("<<: {a: 1}\n", "merge keys"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "f.yaml")
    assert message in str(info.value)
    assert "\n" not in str(info.value.problems[0])


def test_missing_and_binary_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin.yaml:2:4: file is not UTF-8"):
        load_yaml(bad)


def test_checker_collects_every_problem() -> None:
    doc = load_yaml_text("mode: fast\ncount: yes\nextra: 1\n", "c.yaml")
    check = Checker(doc)
    data = check.mapping((), doc.data, ["mode", "count"])
    check.choice(("mode",), data["mode"], ("slow", "fast-ish"))
    check.type_ok(("count",), data["count"], int)
    messages = [str(p) for p in check.problems]
    assert messages == [
        "c.yaml:3:1: unknown key 'extra' in the document",
        'c.yaml:1:7: "mode" must be one of slow, fast-ish, not \'fast\' (did you mean "fast-ish"?)',
        "c.yaml:2:8: \"count\" must be an integer, not str 'yes'",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"#\t\n 12.\\%@`?<=")), max_size=60))
def test_any_text_gives_document_or_problems(text: str) -> None:
    try:
        load_yaml_text(text, "h.yaml")
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert str(problem).startswith("h.yaml:")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_unicode_text(text: str) -> None:
    try:
        load_yaml_text(text, "u.yaml")
    except ConfigError as exc:
        assert exc.problems


def _load_both(text: str) -> tuple[object, object]:
    """`load_yaml_text` as shipped (libyaml first) and with PyYAML alone: a Document's
    (data, values, keys), or the problems as text."""
    results = []
    for loaders in (yamlsource._LOADERS, yamlsource._LOADERS[-1:]):
        saved, yamlsource._LOADERS = yamlsource._LOADERS, loaders
        try:
            doc = load_yaml_text(text, "f.yaml")
            results.append((doc.data, doc.values, doc.keys))
        except ConfigError as exc:
            results.append([str(p) for p in exc.problems])
        finally:
            yamlsource._LOADERS = saved
    return results[0], results[1]


@pytest.mark.parametrize("path", sorted((ROOT / "policy").glob("*.yaml")), ids=lambda p: p.name)
def test_libyaml_reads_the_example_policies_as_pyyaml_does(path) -> None:
    fast, pure = _load_both(path.read_text())
    assert fast == pure


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"#\t\n 12.\\%@`?<=")), max_size=60))
def test_libyaml_and_pyyaml_agree(text: str) -> None:
    """What PyYAML reads, libyaml reads the same (except `!`-tagged empty values: '' not None).
    libyaml also reads a few texts PyYAML refuses (a tab after a value, `a:\t1`; `>#`)."""
    fast, pure = _load_both(text)
    if isinstance(pure, tuple):
        assert isinstance(fast, tuple)
        assert fast[0] == pure[0] or "!" in text
