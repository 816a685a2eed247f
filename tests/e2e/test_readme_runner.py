"""The README runner itself: what it reads as a command and a promise, and that it fails on an answer the
text does not promise (a runner that passes everything would prove nothing)."""

from __future__ import annotations

import pytest

from tests.e2e.readme_runner import (
    Command,
    Promise,
    Result,
    UnreadablePromise,
    contains,
    parse_promise,
    problems,
    runnable_blocks,
    split_commands,
    substitute,
)

pytestmark = pytest.mark.e2e

DOC = """Intro.

<!-- runnable -->
```sh
H='Content-Type: application/json'
curl -s -X POST localhost:8000/v1/decisions -H "$H" \\
  -d '{"order_id":"PO-1"}'            # → 201 {"outcome": "approve"}
cat > rules.test.json <<'JSON'
{"cases": []}   # → not a promise: a here-document's body
JSON
ID=$(curl -s localhost:8000/v1/x | python3 -c '
import json, sys
print(json.load(sys.stdin)["id"])')
# → 200
```

```sh
not-runnable
```
"""


class TestReading:
    def test_only_blocks_marked_runnable_are_read_with_their_line(self) -> None:
        [(line, block)] = runnable_blocks(DOC)
        assert line == 5 and block.startswith("H=") and "not-runnable" not in block

    def test_commands_span_continuations_here_documents_and_open_quotes(self) -> None:
        [(line, block)] = runnable_blocks(DOC)
        commands = split_commands(block, line, "DOC.md")
        assert [c.where for c in commands] == ["DOC.md:5", "DOC.md:6", "DOC.md:8", "DOC.md:11"]
        assert [c.calls_curl for c in commands] == [False, True, False, True]
        assert commands[1].promise == Promise(status=201, items=({"outcome": "approve"},))
        assert commands[2].promise is None and commands[2].text.endswith("JSON")
        assert commands[3].promise == Promise(status=200) and commands[3].text.endswith('["id"])\')')

    @pytest.mark.parametrize(
        ("text", "promise"),
        [
            ("201", Promise(status=201)),
            ('exit 1 "line 2:"', Promise(exit=1, items=("line 2:",))),
            ('"valid" {"a": [1]}', Promise(items=("valid", {"a": [1]}))),
        ],
    )
    def test_promises(self, text: str, promise: Promise) -> None:
        assert parse_promise(text) == promise

    @pytest.mark.parametrize("text", ["", "approve", "201 [1]", "201 {"])
    def test_a_promise_it_cannot_check_is_refused(self, text: str) -> None:
        with pytest.raises(UnreadablePromise):
            parse_promise(text)

    def test_keys_and_the_address_are_substituted_as_the_reader_would(self) -> None:
        text = 'ORDERS=cck_...   # paste the "orders key" line\ncurl -s localhost:8000/healthz'
        done = substitute(text, keys={"orders": "cck_real"}, base_url="http://127.0.0.1:5555")
        assert done.startswith("ORDERS=cck_real ") and "127.0.0.1:5555/healthz" in done
        with pytest.raises(UnreadablePromise, match="which demo key"):
            substitute("X=cck_...  # some key", keys={}, base_url="http://h")


def result(promise: Promise | None, *, rc: int = 0, out: str = "", statuses: tuple[int, ...] = ()) -> Result:
    command = Command(where="x:1", text="curl …", promise=promise, calls_curl=bool(statuses))
    return Result(command=command, rc=rc, stdout=out, stderr="", statuses=list(statuses))


class TestChecking:
    def test_the_answer_promised_passes(self) -> None:
        answer = '{"outcome": "block", "reasons": [{"reason": "A"}, {"reason": "B"}], "hold": null}'
        promise = Promise(status=201, items=({"outcome": "block", "reasons": [{"reason": "B"}]},))
        assert problems(result(promise, out=answer, statuses=(201,))) == []

    @pytest.mark.parametrize(
        ("promise", "rc", "out", "statuses", "complaint"),
        [
            (Promise(status=201), 0, "{}", (409,), "HTTP status [409], promised 201"),
            (None, 0, "{}", (200,), "promises no status"),
            (Promise(status=200, items=({"a": "1.50"},)), 0, '{"a": "1.5"}', (200,), "does not hold"),
            (Promise(items=("valid",)), 0, "invalid?", (), ""),
            (Promise(items=("sealed 3",)), 0, "sealed 0", (), "does not contain 'sealed 3'"),
            (Promise(), 1, "", (), "exit status 1, promised 0"),
            (Promise(exit=1), 0, "", (), "exit status 0, promised 1"),
        ],
    )
    def test_an_answer_not_promised_fails(self, promise, rc, out, statuses, complaint) -> None:
        found = problems(result(promise, rc=rc, out=out, statuses=statuses))
        if complaint:
            assert found and complaint in "; ".join(found)
        else:
            assert found == []  # "valid" is in "invalid?": text promises are substrings

    def test_a_command_that_never_ended_fails(self) -> None:
        stuck = result(Promise(status=200), statuses=())
        stuck.rc = None
        assert problems(stuck) == ["it did not finish"]

    @pytest.mark.parametrize(
        ("actual", "expected", "holds"),
        [
            ({"a": 1, "b": 2}, {"a": 1}, True),
            ({"a": {"b": [1, 2, 3]}}, {"a": {"b": [1, 3]}}, True),
            ({"a": [1, 2]}, {"a": [2, 1]}, False),
            ({"a": [1]}, {"a": []}, False),
            ({"a": []}, {"a": []}, True),
            ({"a": "1"}, {"a": 1}, False),
            ({"a": None}, {"a": None}, True),
            ({"a": True}, {"a": 1}, False),
        ],
    )
    def test_contains(self, actual, expected, holds) -> None:
        assert contains(actual, expected) is holds
