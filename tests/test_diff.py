"""``snapmixin.diff``: what changed between two JSON states, one entry per path."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from snapmixin.diff import Change, diff

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20,
)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_one_line_per_changed_path_in_document_order() -> None:
    old = {"players": [{"name": "Ann", "hp": 8}, {"name": "Bo", "hp": 5}], "turn": 3, "log": ["a"]}
    new = {"players": [{"name": "Ann", "hp": 3}, {"name": "Bo", "hp": 5}], "log": ["a", "b"],
           "odd key": {"x": None}}
    assert [str(c) for c in diff(old, new)] == [
        "$.players[0].hp: 8 -> 3",
        "$.turn: removed 3",
        '$.log[1]: added "b"',
        """$['odd key']: added {"x":null}""",
    ]
    assert [c.as_json() for c in diff(old, new)] == [
        {"path": "$.players[0].hp", "op": "changed", "old": 8, "new": 3},
        {"path": "$.turn", "op": "removed", "old": 3},
        {"path": "$.log[1]", "op": "added", "new": "b"},
        {"path": "$['odd key']", "op": "added", "new": {"x": None}},
    ]


def test_json_types_are_told_apart() -> None:
    assert diff({"a": 1}, {"a": 1.0}) == [Change("$.a", "changed", 1, 1.0)]
    assert diff([1], [True]) == [Change("$[0]", "changed", 1, True)]
    assert diff({"a": []}, {"a": {}}) == [Change("$.a", "changed", [], {})]
    assert diff({"a": None}, {}) == [Change("$.a", "removed", old=None)]


def test_long_values_are_shortened_in_text_only() -> None:
    change = diff({"a": "x" * 500}, {"a": "y"})[0]
    assert len(str(change)) < 200 and str(change).endswith('-> "y"')
    assert change.as_json()["old"] == "x" * 500


def test_deep_states_need_no_recursion() -> None:
    old: Any = [0]
    new: Any = [1]
    for _ in range(20_000):
        old, new = [old], [new]
    (change,) = diff(old, new)
    assert change.path == "$" + "[0]" * 20_001 and (change.old, change.new) == (0, 1)


@given(JSON, JSON)
def test_no_change_exactly_when_equal(a: Any, b: Any) -> None:
    changes = diff(a, b)
    assert (changes == []) == (canonical(a) == canonical(b))
    assert diff(a, a) == [] and diff(b, b) == []
    assert len({c.path for c in changes}) == len(changes)  # one entry per path


OBJECTS = st.dictionaries(st.text(max_size=3), JSON, max_size=5)


@given(OBJECTS, OBJECTS)
def test_added_and_removed_keys_are_exactly_the_key_differences(a: dict[str, Any], b: dict[str, Any]) -> None:
    changes = diff(a, b)
    removed = {c.path for c in changes if c.op == "removed" and _is_top_key(c.path, a)}
    added = {c.path for c in changes if c.op == "added" and _is_top_key(c.path, b)}
    assert len(removed) == len(a.keys() - b.keys())
    assert len(added) == len(b.keys() - a.keys())


def _is_top_key(path: str, d: dict[str, Any]) -> bool:
    from snapmixin.codec.paths import key_seg

    return any(path == "$" + key_seg(k) for k in d)


# -- the command line: snapmixin diff DIR [--from SEQ] [--to SEQ] [--json] -------------------------

def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    from snapmixin import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _store(tmp_path: Any) -> str:
    from snapmixin import SnapStore

    d = tmp_path / "s"
    store = SnapStore(d, keep=4)
    store.create({"players": [{"name": "Ann", "hp": 8}, {"name": "Bo", "hp": 5}], "turn": 1}, 1)
    store.create({"players": [{"name": "Ann", "hp": 8}, {"name": "Bo", "hp": 3}], "turn": 2}, 2)
    store.create({"players": [{"name": "Ann", "hp": 8}, {"name": "Bo", "hp": 3}], "turn": 2,
                  "log": ["won"]}, 3)
    return str(d)


def test_cli_diff_defaults_to_the_previous_and_the_current_generation(tmp_path: Any, capsys: Any) -> None:
    d = _store(tmp_path)
    assert _run(capsys, "diff", d) == (1, '$.log: added ["won"]\n', "")
    code, out, _ = _run(capsys, "diff", d, "--from", "1")
    assert code == 1 and out.splitlines() == ["$.players[1].hp: 5 -> 3", "$.turn: 1 -> 2",
                                              '$.log: added ["won"]']
    code, out, _ = _run(capsys, "diff", d, "--from", "1", "--to", "2", "--json")
    assert code == 1 and json.loads(out) == [
        {"path": "$.players[1].hp", "op": "changed", "old": 5, "new": 3},
        {"path": "$.turn", "op": "changed", "old": 1, "new": 2},
    ]
    code, out, _ = _run(capsys, "diff", d, "--to", "1", "--from", "3")
    assert code == 1 and '$.log: removed ["won"]' in out.splitlines()


def test_cli_diff_exit_codes(tmp_path: Any, capsys: Any) -> None:
    d = _store(tmp_path)
    assert _run(capsys, "diff", d, "--from", "3", "--to", "3", "--json") == (0, "[]\n", "")
    code, out, err = _run(capsys, "diff", d, "--from", "9")
    assert (code, out) == (2, "") and "no kept generation has seq 9" in err and "kept: 3, 2, 1" in err
    code, _, err = _run(capsys, "diff", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    from snapmixin import SnapStore

    SnapStore(tmp_path / "one").create({"a": 1}, 1)
    code, _, err = _run(capsys, "diff", str(tmp_path / "one"))
    assert code == 2 and "only one generation is kept" in err
    # damage is an error too, never a diff
    hist = sorted((tmp_path / "s" / "history").iterdir())
    hist[0].write_text(hist[0].read_text().replace('"Ann"', '"Eve"'))
    code, _, err = _run(capsys, "diff", d, "--from", "1")
    assert code == 2 and "checksum" in err
    assert _run(capsys, "diff", d, "--from", "x")[0] == 2  # bad usage
