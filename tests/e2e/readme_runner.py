"""Running the shell examples of the README and the guides in docs/ as a reader would, and checking each
answer against what the text promises next to it.

What is run: every ```sh block preceded by the line `<!-- runnable -->`, in the order of the files given,
in one bash session (variables, `cd` and `. .venv/bin/activate` carry over from block to block and from
file to file), in a folder of its own that has a `.venv` (this Python's environment) as a checkout has.

What the text promises, written next to a command as a comment starting with `# →` (on the command's last
line, or on the lines right after it):
- a three-digit HTTP status: the answer of the command's last `curl` (every command that runs curl must
  promise one);
- `exit N`: the command's exit status (otherwise it must be 0);
- JSON values: an object is a part of the JSON answer (objects: these members, recursively; lists: these
  items in this order, others may come between; `[]`: empty); a string is text found in the output
  (standard output and error).

What the reader substitutes, as the text tells them: `NAME=cck_...` with a comment naming the
`"<role> key"` line of the demo's output becomes that key; `localhost:8000` (and `127.0.0.1:8000`) the
server's address.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNABLE = "<!-- runnable -->"
ARROW = "# →"
_FENCE = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
_HEREDOC = re.compile(r"(?<!<)<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")
_PROMISE = re.compile(r"(?:^|\s)# →(.*)$")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*)=cck_\.\.\.(\s+#.*)?$")
_ROLE = re.compile(r"\"(\w+) key\"")
_STATUS_MARK = "@@HTTP "
_STATUS_LINE = re.compile(r"^@@HTTP (\d{3})\n?", re.M)


class UnreadablePromise(ValueError):
    """A `# →` comment that says something the runner cannot check."""


@dataclass(frozen=True)
class Promise:
    status: int | None = None  # the HTTP status of the command's last curl
    exit: int = 0
    items: tuple[Any, ...] = ()  # JSON objects (parts of the answer) and strings (found in the output)


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str
    promise: Promise | None
    calls_curl: bool


@dataclass
class Result:
    command: Command
    rc: int | None  # None: it never ended (or never ran)
    stdout: str
    stderr: str
    statuses: list[int] = field(default_factory=list)


def parse_promise(text: str) -> Promise:
    """`201 {"outcome": "approve"}`, `exit 1 "line 2:"`, `"valid"`: see the module's docstring."""
    rest = text.strip()
    exit_code, status = 0, None
    if m := re.match(r"exit (\d+)\b\s*", rest):
        exit_code, rest = int(m.group(1)), rest[m.end() :]
    if m := re.match(r"([1-5]\d\d)\b\s*", rest):
        status, rest = int(m.group(1)), rest[m.end() :]
    items: list[Any] = []
    decoder = json.JSONDecoder()
    while rest:
        try:
            value, end = decoder.raw_decode(rest)
        except json.JSONDecodeError as exc:
            raise UnreadablePromise(f"cannot read {rest!r} as JSON: {exc.msg}") from None
        if not isinstance(value, dict | str):
            raise UnreadablePromise(f"{value!r}: promise an object (part of the answer) or a string")
        items.append(value)
        rest = rest[end:].strip()
    if status is None and exit_code == 0 and not items:
        raise UnreadablePromise(f"{text.strip()!r} promises nothing")
    return Promise(status=status, exit=exit_code, items=tuple(items))


def runnable_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line of the block's first command, its text) for every ```sh block marked runnable."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        before = markdown[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() == RUNNABLE:
            blocks.append((markdown.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


def split_commands(block: str, first_line: int, source: str) -> list[Command]:
    """The block's commands: a logical line (continued by a final backslash, or while a quote, loop or
    substitution is open) with the bodies of its here-documents, and its promise."""
    lines = block.split("\n")
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            if stripped.startswith(ARROW):
                raise UnreadablePromise(f"{source}:{first_line + i}: a promise that follows no command")
            i += 1
            continue
        start, chunk, own = i, [], []
        while i < len(lines):
            line = lines[i]
            i += 1
            chunk.append(line)
            own.append(line)
            for terminator in (m.group(2) for m in _HEREDOC.finditer(_code_of(line))):
                while i < len(lines):
                    chunk.append(lines[i])
                    i += 1
                    if chunk[-1].lstrip("\t") == terminator:
                        break
            if not line.endswith("\\") and _complete("\n".join(chunk)):
                break
        promises = [m.group(1) for m in (_PROMISE.search(x) for x in own) if m]
        while i < len(lines) and lines[i].strip().startswith(ARROW):
            promises.append(lines[i].strip()[len(ARROW) :])
            i += 1
        where = f"{source}:{first_line + start}"
        if len(promises) > 1:
            raise UnreadablePromise(f"{where}: more than one promise for one command")
        try:
            promise = parse_promise(promises[0]) if promises else None
        except UnreadablePromise as exc:
            raise UnreadablePromise(f"{where}: {exc}") from None
        text = "\n".join(chunk)
        calls_curl = any(re.search(r"\bcurl\b", _code_of(x)) for x in own)
        commands.append(Command(where=where, text=text, promise=promise, calls_curl=calls_curl))
    return commands


def _code_of(line: str) -> str:
    """A line without its trailing comment (the README's style: a `#` after a space starts one)."""
    return re.split(r"(?:^|\s)#(?![!{])", line, maxsplit=1)[0]


def _complete(text: str) -> bool:
    """Does bash read `text` as complete commands (no open quote, loop or substitution)?"""
    done = subprocess.run(["bash", "-n"], input=text + "\n", capture_output=True, text=True, check=False)
    return done.returncode == 0


def substitute(text: str, *, keys: Mapping[str, str], base_url: str) -> str:
    """What the reader does by hand: paste the keys the demo printed, use the server's address."""
    lines = []
    for line in text.split("\n"):
        if m := _KEY_LINE.match(line):
            role = _ROLE.search(m.group(3) or "")
            if role is None or role.group(1) not in keys:
                raise UnreadablePromise(f'{line.strip()!r}: which demo key? (name its "<role> key" line)')
            line = f"{m.group(1)}{m.group(2)}={keys[role.group(1)]}{m.group(3) or ''}"
        lines.append(line)
    host = base_url.removeprefix("http://")
    return "\n".join(lines).replace("localhost:8000", host).replace("127.0.0.1:8000", host)


def script(commands: Sequence[Command], results: Path, *, keys: Mapping[str, str], base_url: str) -> str:
    """One bash script that runs every command in turn, each one's output and exit status in `results`;
    curl reports each answer's status on its standard error."""
    parts = [
        "curl() { command curl -w '%{stderr}\\n" + _STATUS_MARK + '%{http_code}\\n\' "$@"; }',
        f"R={_quote(str(results))}",
    ]
    for n, command in enumerate(commands):
        parts.append(f"# {command.where}")
        parts.append(
            "{\n"
            + substitute(command.text, keys=keys, base_url=base_url)
            + "\n}"
            + f' >"$R/{n}.out" 2>"$R/{n}.err" </dev/null'
        )
        parts.append(f'echo $? >"$R/{n}.rc"')
    return "\n".join(parts) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def results_of(commands: Sequence[Command], results: Path) -> list[Result]:
    out = []
    for n, command in enumerate(commands):
        rc_file = results / f"{n}.rc"
        err = _read(results / f"{n}.err")
        out.append(
            Result(
                command=command,
                rc=int(rc_file.read_text()) if rc_file.exists() else None,
                stdout=_read(results / f"{n}.out"),
                stderr=_STATUS_LINE.sub("", err),
                statuses=[int(s) for s in _STATUS_LINE.findall(err)],
            )
        )
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def problems(result: Result) -> list[str]:
    """What the answer does that the text does not promise (empty: as promised)."""
    command, promise = result.command, result.command.promise
    if result.rc is None:
        return ["it did not finish"]
    if command.calls_curl and (promise is None or promise.status is None):
        return ["it calls curl but promises no status (add `# → <status>`)"]
    promise = promise or Promise()
    found = []
    if result.rc != promise.exit:
        found.append(f"exit status {result.rc}, promised {promise.exit}")
    if promise.status is not None and (not result.statuses or result.statuses[-1] != promise.status):
        found.append(f"HTTP status {result.statuses or 'none'}, promised {promise.status}")
    for item in promise.items:
        if isinstance(item, str):
            if item not in result.stdout + result.stderr:
                found.append(f"the output does not contain {item!r}")
            continue
        try:
            answer = json.loads(result.stdout)
        except ValueError:
            found.append(f"the output is not JSON, promised {json.dumps(item, ensure_ascii=False)}")
            continue
        if not contains(answer, item):
            found.append(f"the answer does not hold {json.dumps(item, ensure_ascii=False)}")
    return found


def contains(actual: Any, expected: Any) -> bool:
    """Is `expected` a part of `actual`? Objects: these members, recursively; lists: these items in this
    order (others may come between; [] means empty); anything else: equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        if not expected:
            return not actual
        items = iter(actual)
        return all(any(contains(a, e) for a in items) for e in expected)
    return bool(actual == expected and type(actual) is type(expected)) or (
        isinstance(actual, int | float) and not isinstance(actual, bool) and actual == expected
    )


def commands_of(paths: Iterable[Path], root: Path) -> list[Command]:
    out = []
    for path in paths:
        source = str(path.relative_to(root))
        for line, block in runnable_blocks(path.read_text(encoding="utf-8")):
            out.extend(split_commands(block, line, source))
    return out


def report(results: Sequence[Result], limit: int = 8) -> str:
    """The commands whose answers break a promise, each with what it answered."""
    lines = []
    for result in results:
        found = problems(result)
        if not found:
            continue
        lines.append(f"{result.command.where}: {'; '.join(found)}\n  $ {result.command.text[:400]}")
        lines.append(f"  stdout: {result.stdout[:800]!r}\n  stderr: {result.stderr[:400]!r}")
        if len(lines) >= 2 * limit:
            lines.append("(more after these)")
            break
    return "\n".join(lines)
