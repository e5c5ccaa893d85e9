"""Generate edgesparse/runtime/c/esb_unicode.h: the Unicode tables of the C text featurizer.

The C runtime must tokenize exactly as Python does (edgesparse/ir/text.py's contract), so
every table is read off this Python's own ``str`` methods and ``unicodedata``, not off the
Unicode data files:

- ``WORD``: ``\\w`` of ``re`` for str patterns: ``c.isalnum() or c == "_"``;
- ``SPACE``: ``\\s`` of ``re`` and ``str.split()``: ``c.isspace()``;
- ``LOWER``: ``str.lower`` for every character that maps to one character, as runs of
  (first, last, stride, delta); U+0130 (to two characters) and the final sigma are code;
- ``CASE_IGNORABLE`` / ``CASED``: the two properties CPython's final-sigma rule reads, probed
  through ``str.lower`` itself (only the cased characters that are not case-ignorable matter);
- ``DECOMP``: per character, its NFKD form without combining characters (what both
  strip_accents modes keep, the ascii mode then keeping the ASCII ones); characters whose
  form is empty (combining marks) as ranges in ``STRIPPED``; Hangul syllables are algorithmic.

Run ``python scripts/gen_unicode_tables.py`` to rewrite the file, ``--check`` to compare
(tests/test_c_text.py does, when this Python's Unicode version is the file's).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import unicodedata

OUT = pathlib.Path(__file__).resolve().parent.parent / "edgesparse/runtime/c/esb_unicode.h"
MAX_CP = 0x110000
HANGUL = (0xAC00, 0xD7A3)


def ranges(cps: list[int]) -> list[tuple[int, int]]:
    """Sorted code points as inclusive (first, last) runs."""
    out: list[list[int]] = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return [(a, b) for a, b in out]


def lower_runs() -> list[tuple[int, int, int, int]]:
    """(first, last, stride, delta): every ``first + k * stride`` lowers to itself + delta."""
    pairs = []
    for cp in range(MAX_CP):
        low = chr(cp).lower()
        if len(low) == 1 and ord(low) != cp:
            pairs.append((cp, ord(low) - cp))
    runs: list[list[int]] = []
    for cp, delta in pairs:
        if runs:
            first, last, stride, d = runs[-1]
            if d == delta and (
                (stride == 0 and cp - last in (1, 2)) or (stride and cp - last == stride)
            ):
                runs[-1][1], runs[-1][2] = cp, cp - first if stride == 0 else stride
                continue
        runs.append([cp, cp, 0, delta])
    return [(a, b, s or 1, d) for a, b, s, d in runs]


def case_classes() -> tuple[list[int], list[int]]:
    """(case-ignorable, cased and not case-ignorable) code points, probed via str.lower's
    final-sigma rule: ``c + "Σ"`` ends in ς iff c is cased and not ignorable; ``"A" + c + "Σ"``
    iff c is ignorable or cased."""
    ignorable, cased = [], []
    for cp in range(MAX_CP):
        c = chr(cp)
        if cp == 0x3A3:
            cased.append(cp)
            continue
        alone = (c + "Σ").lower()[-1] == "ς"
        after_a = ("A" + c + "Σ").lower()[-1] == "ς"
        if alone:
            cased.append(cp)
        elif after_a:
            ignorable.append(cp)
    return ignorable, cased


def decompositions() -> tuple[list[tuple[int, str]], list[int]]:
    """(code point, NFKD without combining characters) where that differs from the character
    and is not empty; and the code points where it is empty."""
    table, empty = [], []
    for cp in range(MAX_CP):
        if HANGUL[0] <= cp <= HANGUL[1]:
            continue
        c = chr(cp)
        s = "".join(ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch))
        if s == c:
            continue
        if s:
            table.append((cp, s))
        else:
            empty.append(cp)
    return table, empty


def expansion() -> int:
    """Most code points one UTF-8 byte of a document can become after lowercasing and
    stripping accents (the workspace bound of esb_text_workspace_size)."""
    worst = 1
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        out = "".join(
            ch
            for low in c.lower()
            for ch in unicodedata.normalize("NFKD", low)
            if not unicodedata.combining(ch)
        )
        worst = max(worst, -(-len(out) // len(c.encode("utf-8"))))
    return worst


def _array(ctype: str, name: str, values: list[int], per_line: int = 8) -> str:
    rows = [
        "    " + ", ".join(f"0x{v:X}" for v in values[i : i + per_line]) + ","
        for i in range(0, len(values), per_line)
    ]
    return f"static const {ctype} {name}[{max(len(values), 1)}] = {{\n" + "\n".join(rows) + "\n};\n"


def _flat(pairs: list[tuple[int, ...]]) -> list[int]:
    return [v for p in pairs for v in p]


def generate() -> str:
    """The header's text."""
    word = ranges([cp for cp in range(MAX_CP) if chr(cp).isalnum() or cp == 0x5F])
    space = ranges([cp for cp in range(MAX_CP) if chr(cp).isspace()])
    low = lower_runs()
    ignorable, cased = case_classes()
    decomp, empty = decompositions()
    pool: list[int] = []
    starts = []
    for _, s in decomp:
        starts.append(len(pool))
        pool.extend(ord(ch) for ch in s)
    starts.append(len(pool))
    assert len(pool) < 1 << 16
    parts = [
        "/* esb_unicode.h - GENERATED by scripts/gen_unicode_tables.py from Python "
        f"{sys.version_info.major}.{sys.version_info.minor}'s str methods and unicodedata "
        f"(Unicode {unicodedata.unidata_version}). Do not edit. Included by esb_text.c. */\n",
        f'#define ESB_UNICODE_VERSION "{unicodedata.unidata_version}"\n',
        f"#define ESB_U_WORD_N {len(word)}\n#define ESB_U_SPACE_N {len(space)}\n",
        f"#define ESB_U_LOWER_N {len(low)}\n#define ESB_U_IGNORABLE_N "
        f"{len(ranges(ignorable))}\n#define ESB_U_CASED_N {len(ranges(cased))}\n",
        f"#define ESB_U_DECOMP_N {len(decomp)}\n#define ESB_U_STRIPPED_N {len(ranges(empty))}\n",
        f"#define ESB_U_DECOMP_MAX {max(len(s) for _, s in decomp)}\n",
        f"#define ESB_U_EXPAND {expansion()}\n",
        "/* Inclusive (first, last) code point ranges, sorted. */\n",
        _array("uint32_t", "U_WORD", _flat(word)),
        _array("uint32_t", "U_SPACE", _flat(space)),
        _array("uint32_t", "U_IGNORABLE", _flat(ranges(ignorable))),
        _array("uint32_t", "U_CASED", _flat(ranges(cased))),
        _array("uint32_t", "U_STRIPPED", _flat(ranges(empty))),
        "/* Lowercase runs (first, last, stride, delta as int32 two's complement). */\n",
        _array("uint32_t", "U_LOWER", [v & 0xFFFFFFFF for v in _flat(low)]),
        "/* Decompositions: code points (sorted), their forms' starts in U_DECOMP_POOL. */\n",
        _array("uint32_t", "U_DECOMP_CP", [cp for cp, _ in decomp]),
        _array("uint16_t", "U_DECOMP_AT", starts),
        _array("uint32_t", "U_DECOMP_POOL", pool),
    ]
    return "".join(parts)


def main() -> int:
    """Write the header, or with --check compare it with the committed one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    text = generate()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{OUT} is stale: run scripts/gen_unicode_tables.py\n")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
