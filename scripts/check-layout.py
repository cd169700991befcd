#!/usr/bin/env python3
"""Checks two rules of the source layout (README, "Layout"):

1. no file under src/ is longer than 600 lines;
2. no two files under src/ import each other.

A file "imports" another when it names an item of the other's module by path: a `use` (also
inside `{...}` groups), or a `crate::`, `super::`, `self::` or submodule path in code. A bare path that starts with a submodule (`use rules::decide;` in a
`mod.rs`) is relative to the file's module. A path is resolved to
the longest module prefix that is a file (`crate::domain::order::Placement` ->
src/domain/order/mod.rs). `super::` inside an inline module (`mod tests { use super::*; }`)
names the file itself. Re-exports count like any other import.

Usage: scripts/check-layout.py [SRC_DIR]   (exit 1 and a list of the offences when a rule fails)
"""

import re
import sys
from pathlib import Path

MAX_LINES = 600


def module_of(path: Path, src: Path) -> tuple:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def use_paths(text: str):
    """Yields (indented, path) for every path a `use` names, groups expanded."""
    for m in re.finditer(r"^([ \t]*)(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text, flags=re.M):
        indented = len(m.group(1)) > 0
        for p in expand(re.sub(r"\s+", "", m.group(2))):
            yield indented, p


def expand(tree: str):
    """`a::{b,c::{d,e}}` -> a::b, a::c::d, a::c::e."""
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix = tree[:start]
                inner, rest = tree[start + 1 : i], tree[i + 1 :]
                for item in split_top(inner):
                    for p in expand(prefix + item + rest):
                        yield p
                return
    yield tree


def split_top(s: str):
    depth, cur = 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            if cur:
                yield cur
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        yield cur


def resolve(path: str, here: tuple, indented: bool, modules: dict):
    segs = [s.split(" as ")[0] for s in path.split("::") if s]
    segs = [s for s in segs if s not in ("*",)]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        # Inside an inline module, the first `super` is the file itself.
        base = here
        first = True
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super" and not (first and indented):
                base = base[:-1]
            first = False
            segs = segs[1:]
    elif here + (segs[0],) in modules:
        # A path relative to this module: one of its submodules.
        base = here
    else:
        return None
    best = None
    for n in range(len(segs) + 1):
        cand = base + tuple(segs[:n])
        if cand in modules:
            best = cand
    return best


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src")
    files = sorted(p for p in src.rglob("*.rs"))
    modules = {module_of(p, src): p for p in files if p.name != "main.rs"}
    failures = []
    edges = {}
    for path in files:
        raw = path.read_text()
        lines = raw.count("\n")
        if lines > MAX_LINES:
            failures.append(f"{path.relative_to(src.parent)}: {lines} lines (at most {MAX_LINES})")
        if path.name == "main.rs":
            continue
        here = module_of(path, src)
        text = strip_comments(raw)
        targets = set()
        for indented, p in use_paths(text):
            targets.add(resolve(p, here, indented, modules))
        code = re.sub(r"^[ \t]*(?:pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", "", text, flags=re.M)
        for m in re.finditer(r"(?<![\w:])[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+", code):
            targets.add(resolve(m.group(0), here, False, modules))
        targets.discard(None)
        targets.discard(here)
        edges[here] = targets
    seen = set()
    for a, targets in edges.items():
        for b in targets:
            if a in edges.get(b, ()) and (b, a) not in seen:
                seen.add((a, b))
                fa, fb = modules[a].relative_to(src.parent), modules[b].relative_to(src.parent)
                failures.append(f"{fa} and {fb} import each other")
    for f in failures:
        print(f)
    if failures:
        return 1
    print(f"layout ok: {len(files)} files, none over {MAX_LINES} lines, no two importing each other")
    return 0


if __name__ == "__main__":
    sys.exit(main())
