"""Write the hostile blobs and data files that tests/test_reader_attacks.py feeds to
``edgesparse inspect`` and ``edgesparse predict`` (issue 16, round 3: tiny or moderate files
whose reading would cost far more than their size).

    python tests/attacks/make_reader_attacks.py OUT_DIR

writes ``model.esb`` (a valid 1000-input model the data files are predicted with), one file per
attack and ``manifest.json``: name, file, the command, and the exact ``Error:`` line
(``{path}`` stands for the file's path).
"""

from __future__ import annotations

import argparse
import json
import struct
import zlib
from pathlib import Path

import numpy as np


def _reseal(blob: bytearray) -> bytes:
    """Recompute every section CRC and the header CRC of an edited version-1 blob."""
    n = struct.unpack_from("<I", blob, 12)[0]
    for i in range(n):
        off, length = struct.unpack_from("<II", blob, 64 + 16 * i + 4)
        struct.pack_into("<I", blob, 64 + 16 * i + 12, zlib.crc32(blob[off : off + length]))
    crc = zlib.crc32(bytes(blob[64 : 64 + 16 * n]), zlib.crc32(bytes(blob[:60])))
    struct.pack_into("<I", blob, 60, crc)
    return bytes(blob)


def exponent_blob() -> bytes:
    """Two weights of very different size (so int8 keeps a column exponent each), a list of
    the two used columns, and then n_features (header offset 20) set to 2**31 - 1: 290 bytes,
    and the reader would hold one exponent byte per feature."""
    from edgesparse.formats import esb
    from edgesparse.ir import from_dense
    from edgesparse.passes.quantize import quantize_int8

    w = np.zeros((1, 64))
    w[0, 3], w[0, 40] = 1.0, 1000.0
    ir = quantize_int8(from_dense(w, bias=np.zeros(1), head="identity"), columns="pow2")
    blob = bytearray(esb.encode(ir, columns="varint", indices="raw"))
    struct.pack_into("<I", blob, 20, 2**31 - 1)
    return _reseal(blob)


def model_blob() -> bytes:
    from edgesparse.formats import esb
    from edgesparse.ir import from_dense

    return esb.encode(from_dense(np.ones((1, 1000)), bias=np.zeros(1), head="identity"))


def big_table() -> bytes:
    """65 MiB of ``0.5`` cells, 1000 a row: 1.3 GB of Python strings if it were read."""
    row = (",".join(["0.5"] * 1000) + "\n").encode()
    return row * ((65 << 20) // len(row) + 1)


ATTACKS = [
    {
        "name": "esb-exponents-2g-features",
        "file": "esb-exponents-2g-features.esb",
        "what": "290-byte blob with column exponents declaring 2**31 - 1 features",
        "command": ["inspect", "{path}"],
        "error": "{path}: cannot read it here: it has column exponents and "
        "n_features=2147483647, and this reader holds one exponent byte per feature, more than "
        "the 67108864 bytes of arrays edgesparse allows by default; if you trust the file, "
        "raise the limit with EDGESPARSE_MAX_ARRAY_BYTES=<bytes>",
    },
    {
        "name": "table-65mib",
        "file": "table-65mib.csv",
        "what": "a 65 MiB text table (under the 2 GiB data cap; 21 bytes of memory a byte)",
        "command": ["predict", "{model}", "{path}"],
        "error": "data file {path} is {size} bytes, more than the limit of 67108864 bytes; a "
        "text table may be 1/32 of the data-file limit (reading text takes up to 32 bytes of "
        "memory per byte): save the data as .npy or .npz, or raise the limit with "
        "EDGESPARSE_MAX_DATA_BYTES=<bytes>",
    },
]
_MAKERS = {"esb-exponents-2g-features": exponent_blob, "table-65mib": big_table}


def write_all(out_dir: str | Path) -> list[dict]:
    """Write ``model.esb``, every fixture and ``manifest.json``; return the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.esb").write_bytes(model_blob())
    for a in ATTACKS:
        (out / a["file"]).write_bytes(_MAKERS[a["name"]]())
    (out / "manifest.json").write_text(json.dumps(ATTACKS, indent=1) + "\n")
    return ATTACKS


def main(argv: list[str] | None = None) -> int:
    """Command line: write the fixtures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    args = ap.parse_args(argv)
    print(f"wrote {len(write_all(args.out_dir))} fixtures to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
