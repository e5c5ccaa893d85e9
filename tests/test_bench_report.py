"""The bench report renderer against a hand-written results.json: 2 targets (host, emulated
rpi4), 3 artifacts (.esb, .onnx, sklearn .pkl), batch sizes 1 and 64, one failed row.

Oracle: ratios, throughputs and sizes computed by hand from the fixture's numbers, written out
literally below; exact validation messages; real PNG files read back with matplotlib."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgesparse.bench.plots import render_plots
from edgesparse.bench.report import render_html, render_markdown, write_report
from edgesparse.bench.results_schema import validate_results
from edgesparse.cli import cli
from edgesparse.errors import FormatError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIX = "; regenerate it with `edgesparse bench`"
SIZES = {"digits.esb": 1120, "digits.onnx": 4480, "digits.pkl": 7861}


def _row(target, artifact, engine, batch, emulated, p50=None, *, status="ok", error=None):
    ok = status == "ok"
    return {
        "target": target,
        "engine": engine,
        "artifact": artifact,
        "batch_size": batch,
        "emulated": emulated,
        "status": status,
        "error": error,
        "latency_us": (
            {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.5, "p999": p50 * 2, "mean": p50 * 1.05}
            if ok
            else None
        ),
        # batch / mean, as the harness measures it: the tables must not show it as rows/s
        "throughput_rows_per_s": batch * 1e6 / (p50 * 1.05) if ok else None,
        "runs": 100 if ok else None,
        "cold_start_ms": (900.0 if emulated else 150.0) if ok else None,
        "cold_start_method": "spawn timestamp" if ok else None,
        "load_ms": 2.0 if ok else None,
        "peak_rss_bytes": (None if emulated else 40 * 2**20) if ok else None,
        "model_rss_bytes": 65536 if ok else None,
        "memory_method": (
            ("guest heap (mallinfo2 + tracemalloc)" if emulated else "VmHWM/VmRSS") if ok else None
        ),
        "model_bytes": SIZES[artifact],
        "agreement": 0.9956 if ok else None,
        "accuracy": 0.97 if ok else None,
        "r2": None,
    }


def make_results() -> dict:
    env = {"python": "3.11.7", "numpy": "2.4.6", "onnxruntime": "1.32.0", "threads": 1}
    return {
        "schema": "edgesparse-bench",
        "schema_version": 1,
        "created": "2026-11-29T03:10:00Z",
        "edgesparse_version": "0.1.0",
        "command": "edgesparse bench digits.esb digits.onnx digits.pkl --target host",
        "settings": {
            "runs": 100,
            "warmup": 10,
            "batch_sizes": [1, 64],
            "threads": 1,
            "data": "X.npy",
            "labels": "y.npy",
            "timeout_s": 600.0,
        },
        "artifacts": [
            {"artifact": a, "path": f"/m/{a}", "engine": e, "model_bytes": SIZES[a], "sha256": h}
            for a, e, h in (
                ("digits.esb", "esb", "ab" * 32),
                ("digits.onnx", "onnx", "cd" * 32),
                ("digits.pkl", "sklearn", "ef" * 32),
            )
        ],
        "targets": [
            {
                "target": "host",
                "kind": "host",
                "emulated": False,
                "arch": "x86_64",
                "cpu": "Intel Xeon",
                "cores": 2,
                "ram_bytes": 8 * 2**30,
                "dotprod": None,
                "notes": None,
                "status": "ok",
                "error": None,
                "environment": {
                    **env,
                    "machine": "x86_64",
                    "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz",
                    "cpu_flags": ["avx2", "fma"],
                    "governor": "performance",
                    "qemu": None,
                },
            },
            {
                "target": "rpi4",
                "kind": "qemu",
                "emulated": True,
                "arch": "aarch64",
                "cpu": "Cortex-A72",
                "cores": 4,
                "ram_bytes": 4 * 2**30,
                "dotprod": False,
                "notes": None,
                "status": "ok",
                "error": None,
                "environment": {
                    **env,
                    "python": "3.11.2",
                    "machine": "aarch64",
                    "cpu_model": "Cortex-A72",
                    "cpu_flags": None,
                    "governor": None,
                    "qemu": "7.2.19",
                },
            },
        ],
        "reference": {"kind": "sklearn", "source": "digits.pkl"},
        "results": [
            _row("host", "digits.esb", "esb", 1, False, 5.0),  # 0
            _row("host", "digits.onnx", "onnx", 1, False, 20.0),  # 1
            _row("host", "digits.pkl", "sklearn", 1, False, 100.0),  # 2
            _row("host", "digits.esb", "esb", 64, False, 40.0),  # 3
            _row("host", "digits.onnx", "onnx", 64, False, 60.0),  # 4
            _row("host", "digits.pkl", "sklearn", 64, False, 300.0),  # 5
            _row("rpi4", "digits.esb", "esb", 1, True, 300.0),  # 6
            _row("rpi4", "digits.onnx", "onnx", 1, True, 1200.0),  # 7
            _row("rpi4", "digits.esb", "esb", 64, True, 2500.0),  # 8
            _row(
                "rpi4",
                "digits.onnx",
                "onnx",
                64,
                True,
                status="failed",
                error="timeout after 600 s (killed)",
            ),  # 9
        ],
    }


@pytest.fixture
def results() -> dict:
    return make_results()


def md_tables(md: str) -> dict[str, list[dict[str, str]]]:
    """Heading text -> the first table under it, as a list of {header: cell} dicts."""
    out: dict[str, list[dict[str, str]]] = {}
    for section in re.split(r"^#{2,3} ", md, flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        lines = [ln for ln in body.splitlines() if ln.startswith("|")]
        if not lines:
            continue
        split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
        out[heading.strip()] = [dict(zip(split[0], cells, strict=True)) for cells in split[2:]]
    return out


# ---- validation ----------------------------------------------------------------------------


def test_validate_accepts_the_fixture(results):
    validate_results(results)
    validate_results(json.loads(json.dumps(results)))  # and its JSON round trip


def _set(path, value):
    def mutate(r):
        *parents, last = path
        node = r
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()

CORRUPTIONS = [
    (
        _set(["schema"], "something-else"),
        "not an edgesparse bench results file: schema is 'something-else', expected "
        "'edgesparse-bench'" + FIX,
    ),
    (
        _set(["schema_version"], 2),
        "bench results schema_version 2 is not supported: this edgesparse reads "
        "schema_version 1; upgrade edgesparse or re-run `edgesparse bench`",
    ),
    (_set(["results"], _DELETE), "bench results results: missing" + FIX),
    (_set(["targets"], {}), "bench results targets: expected a list, got dict" + FIX),
    (
        _set(["results", 3, "latency_us"], _DELETE),
        "bench results results[3].latency_us: missing" + FIX,
    ),
    (
        _set(["results", 1, "batch_size"], "1"),
        "bench results results[1].batch_size: expected an integer, got str" + FIX,
    ),
    (
        _set(["results", 1, "batch_size"], True),
        "bench results results[1].batch_size: expected an integer, got bool" + FIX,
    ),
    (
        _set(["results", 0, "latency_us"], None),
        "bench results results[0].latency_us: expected an object, got null" + FIX,
    ),
    (
        _set(["results", 0, "latency_us", "p50"], float("nan")),
        "bench results results[0].latency_us.p50: must be finite, got nan" + FIX,
    ),
    (
        _set(["results", 2, "latency_us", "p99"], 1.0),
        "bench results results[2].latency_us.p99: 1 is below p90 110 "
        "(percentiles must not decrease)" + FIX,
    ),
    (
        _set(["results", 4, "status"], "done"),
        "bench results results[4].status: must be one of 'ok', 'failed', 'skipped', "
        "got 'done'" + FIX,
    ),
    (
        _set(["results", 9, "error"], None),
        "bench results results[9].error: a failed entry must say why (got null)" + FIX,
    ),
    (
        _set(["results", 0, "error"], "oops"),
        "bench results results[0].error: must be null when status is 'ok', got 'oops'" + FIX,
    ),
    (
        _set(["results", 6, "emulated"], False),
        "bench results results[6].emulated: is false but target 'rpi4' is declared with "
        "emulated true" + FIX,
    ),
    (
        _set(["results", 0, "target"], "rpi9"),
        "bench results results[0].target: 'rpi9' is not declared in targets" + FIX,
    ),
    (
        _set(["results", 0, "engine"], "onnx"),
        "bench results results[0].engine: 'onnx' but artifact 'digits.esb' is declared with "
        "engine 'esb'" + FIX,
    ),
    (
        _set(["results", 5, "batch_size"], 1),
        "bench results results[5]: duplicate of results[2] (target 'host', artifact "
        "'digits.pkl', batch_size 1)" + FIX,
    ),
    (
        _set(["results", 0, "agreement"], 1.5),
        "bench results results[0].agreement: must be <= 1, got 1.5" + FIX,
    ),
    (
        _set(["targets", 1, "dotprod"], "yes"),
        "bench results targets[1].dotprod: expected true/false or null, got str" + FIX,
    ),
    (
        _set(["artifacts", 2, "model_bytes"], -1),
        "bench results artifacts[2].model_bytes: must be >= 0, got -1" + FIX,
    ),
]


@pytest.mark.parametrize(("mutate", "message"), CORRUPTIONS)
def test_validate_rejects_each_corruption(results, mutate, message):
    mutate(results)
    with pytest.raises(FormatError) as info:
        validate_results(results)
    assert str(info.value) == message


def test_validate_rejects_non_object():
    with pytest.raises(FormatError, match=r"^bench results must be a JSON object, got list"):
        validate_results([])  # type: ignore[arg-type]


# ---- markdown ------------------------------------------------------------------------------


def test_markdown_ratios_are_within_target_and_hand_computed(results):
    tables = md_tables(render_markdown(results))
    host = {(r["batch"], r["artifact"]): r for r in tables["host"]}
    # p50 / fastest p50 on the same target and batch; sklearn p50 / p50 (speed-up).
    expected_host = {
        ("1", "`digits.esb`"): ("5.00", "7.50", "1.00x", "20.00x", "200,000"),
        ("1", "`digits.onnx`"): ("20.0", "30.0", "4.00x", "5.00x", "50,000"),
        ("1", "`digits.pkl`"): ("100.0", "150.0", "20.00x", "1.00x", "10,000"),
        ("64", "`digits.esb`"): ("40.0", "60.0", "1.00x", "7.50x", "1,600,000"),
        ("64", "`digits.onnx`"): ("60.0", "90.0", "1.50x", "5.00x", "1,066,667"),
        ("64", "`digits.pkl`"): ("300.0", "450.0", "7.50x", "1.00x", "213,333"),
    }
    assert set(host) == set(expected_host)
    for key, (p50, p99, vs_fastest, vs_sklearn, rate) in expected_host.items():
        r = host[key]
        assert (r["p50 µs"], r["p99 µs"], r["p50 / fastest"]) == (p50, p99, vs_fastest)
        # rows/s is batch / p50, consistent with the p50 column (not batch / mean)
        assert (r["speed-up vs sklearn"], r["rows/s at p50"]) == (vs_sklearn, rate)
        assert (r["peak RSS"], r["model RSS"], r["memory method"]) == (
            "40.0 MiB",
            "64.0 KiB",
            "VmHWM/VmRSS",
        )
        assert (r["agreement vs sklearn"], r["accuracy / R²"]) == ("99.56%", "97.00%")
        assert r["status"] == "ok"

    # The emulated target: its own fastest is the 1.00x, although host is 60x faster.
    rpi4 = {(r["batch"], r["artifact"]): r for r in tables["rpi4 (emulated)"]}
    assert rpi4[("1", "`digits.esb`")]["p50 / fastest (emulated)"] == "1.00x"
    assert rpi4[("1", "`digits.onnx`")]["p50 / fastest (emulated)"] == "4.00x"
    assert rpi4[("1", "`digits.onnx`")]["p50 µs (emulated)"] == "1,200"
    assert rpi4[("64", "`digits.esb`")]["p50 / fastest (emulated)"] == "1.00x"
    assert rpi4[("64", "`digits.esb`")]["rows/s at p50 (emulated)"] == "25,600"
    assert rpi4[("1", "`digits.esb`")]["peak RSS"] == "n/a (emulated)"
    failed = rpi4[("64", "`digits.onnx`")]
    assert failed["status"] == "**failed**: timeout after 600 s (killed)"
    assert failed["p50 µs (emulated)"] == failed["p50 / fastest (emulated)"] == "-"
    # No sklearn row on rpi4, so no sklearn column there (a ratio never crosses targets).
    assert not any("speed-up" in h for h in tables["rpi4 (emulated)"][0])

    sizes = {r["artifact"]: r for r in tables["Artifact sizes"]}
    assert sizes["`digits.esb`"]["bytes"] == "1,120 B"
    assert sizes["`digits.onnx`"]["size / smallest"] == "4.00x"
    assert sizes["`digits.pkl`"]["size / smallest"] == "7.02x"  # 7861 / 1120 = 7.0187


def test_markdown_labels_every_emulated_number(results):
    md = render_markdown(results)
    tables = md_tables(md)
    timing = ("p50 µs", "p99 µs", "p50 / fastest", "rows/s", "cold start ms")
    for header in tables["rpi4 (emulated)"][0]:
        if header.startswith(timing):
            assert header.endswith("(emulated)"), header
    assert not any("emulated" in h for h in tables["host"][0])
    assert "### rpi4 (emulated)" in md and "### host\n" in md
    env = {r["target"]: r for r in tables["Environment"]}
    assert env["rpi4 (emulated)"]["QEMU"] == "7.2.19"
    assert env["rpi4 (emulated)"]["dot product"] == "no (device profile)"
    assert env["host"]["CPU"] == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert env["host"]["governor"] == "performance"
    problems = tables["Failed and skipped"]
    assert problems == [
        {
            "target": "rpi4 (emulated)",
            "artifact": "`digits.onnx`",
            "engine": "onnx",
            "batch": "64",
            "status": "failed",
            "reason": "timeout after 600 s (killed)",
        }
    ]


def test_markdown_explains_emulation_and_int8_paths(results):
    meaning = render_markdown(results).split("## What these numbers mean")[1].split("\n## ")[0]
    assert "qemu-user has no timing model" in meaning
    assert "not device latency" in meaning
    rpi4 = next(ln for ln in meaning.splitlines() if "**rpi4 (emulated)**" in ln)
    assert "no dot-product extension (device profile)" in rpi4
    assert "4x slower than the fp32 MatMul" in rpi4 and "`digits.onnx`" in rpi4
    host = next(ln for ln in meaning.splitlines() if "**host**" in ln)
    assert "not an Arm CPU" in host
    results["targets"][0]["dotprod"] = False  # an x86 host has no Arm extension to lack
    meaning = render_markdown(results).split("## What these numbers mean")[1]
    host = next(ln for ln in meaning.splitlines() if "**host**" in ln)
    assert "not an Arm CPU" in host and "NEON" not in host

    results["targets"][1]["dotprod"] = None
    results["targets"][1]["environment"]["cpu_flags"] = ["fp", "asimd", "asimddp"]
    meaning = render_markdown(results).split("## What these numbers mean")[1]
    rpi = next(ln for ln in meaning.splitlines() if "**rpi4 (emulated)**" in ln)
    assert "has the dot-product extension (CPU flags)" in rpi and "`udot`" in rpi

    for row in results["results"]:
        row["status"], row["error"] = "skipped", "not run"
    results["artifacts"] = [a for a in results["artifacts"] if a["engine"] != "onnx"]
    results["results"] = [r for r in results["results"] if r["engine"] != "onnx"]
    assert "No ONNX artifact in this run" in render_markdown(results)


def test_unmeasured_values_show_as_dash_not_zero(results):
    # The probe writes null (never 0) for a cold start it could not time, and regressors
    # without a reference label report max |difference| instead of agreement.
    results["results"][6]["cold_start_ms"] = None
    results["results"][6]["cold_start_method"] = None
    results["results"][7]["agreement"] = None
    results["results"][7]["max_abs_diff"] = 0.0401
    validate_results(results)
    md = render_markdown(results)
    rpi4 = {(r["batch"], r["artifact"]): r for r in md_tables(md)["rpi4 (emulated)"]}
    assert rpi4[("1", "`digits.esb`")]["cold start ms (emulated)"] == "-"
    assert rpi4[("64", "`digits.esb`")]["cold start ms (emulated)"] == "900.0"
    assert rpi4[("1", "`digits.onnx`")]["agreement vs sklearn"] == "max abs diff 0.0401"
    assert "measured by spawn timestamp." in md


def test_failed_target_is_listed_not_dropped(results):
    results["targets"][1].update(status="failed", error="qemu-aarch64 segfaulted")
    for r in results["results"][6:]:
        r.update(_row(r["target"], r["artifact"], r["engine"], r["batch_size"], True,
                      status="failed", error="target failed"))  # fmt: skip
    md = render_markdown(results)
    problems = md_tables(md)["Failed and skipped"]
    assert problems[0]["artifact"] == "(whole target)"
    assert problems[0]["reason"] == "qemu-aarch64 segfaulted"
    assert len(problems) == 5
    assert "**Target failed:** qemu-aarch64 segfaulted" in md


HOSTILE = '<script>alert("x")</script>.esb'


def _hostile(results: dict) -> dict:
    for item in results["artifacts"] + results["results"]:
        if item["artifact"] == "digits.esb":
            item["artifact"] = HOSTILE
    results["results"][9]["error"] = "<b>oom</b> | killed *now*"
    return results


def test_markdown_escapes_data(results):
    md = render_markdown(_hostile(results))
    # Code spans are literal in Markdown; everything else is backslash-escaped.
    assert f"`{HOSTILE}`" in md
    assert md.count("<script>") == md.count(f"`{HOSTILE}`")
    assert "\\<b\\>oom\\</b\\> \\| killed \\*now\\*" in md
    # The escaped | does not split the table cell.
    assert md_tables(md)["Failed and skipped"][0]["reason"] == (
        "\\<b\\>oom\\</b\\> \\| killed \\*now\\*"
    )


# ---- HTML, plots, files ----------------------------------------------------------------------


def test_html_escapes_data_and_references_written_pngs(results, tmp_path):
    _hostile(results)
    paths = write_report(results, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.esb" in page
    assert "&lt;b&gt;oom&lt;/b&gt; | killed *now*" in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(srcs) == ["latency.png", "memory.png", "size.png"]
    for src in srcs:
        assert (tmp_path / src).is_file() and (tmp_path / src) in paths
    assert '<h3>rpi4 <span class="emulated">(emulated)</span></h3>' in page
    assert '<th>p50 µs <span class="emulated">(emulated)</span></th>' in page
    assert "qemu-user has no timing model" in page


def test_render_html_escapes_image_names(results):
    page = render_html(results, images={"latency": 'a"><script>.png'})
    assert 'src="a&quot;&gt;&lt;script&gt;.png"' in page
    assert "<script" not in page


def test_pngs_are_real_images(results, tmp_path):
    from matplotlib.image import imread

    plots = render_plots(results, tmp_path / "new" / "dir")
    assert set(plots) == {"latency", "size", "memory"}
    for path in plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(path)
        h, w = img.shape[:2]
        assert 200 <= h <= 2000 and 400 <= w <= 3000, (path.name, img.shape)
        assert img.std() > 0.05  # not a blank canvas


def test_latency_plot_marks_emulated_targets(results):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from edgesparse.bench import plots

    fig = Figure()
    FigureCanvasAgg(fig)
    plots.plot_latency(fig, results, plots.artifact_colors(results))
    panels = fig.axes
    assert [ax.get_title() for ax in panels] == ["batch 1", "batch 64"]
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["host", "rpi4\n(emulated)"]
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        emulated = [b for b in bars if b.get_x() > 0.5]  # the rpi4 group sits at x = 1
        native = [b for b in bars if b.get_x() < 0.5]
        assert emulated and all(b.get_hatch() == "//" for b in emulated)
        assert native and all(not b.get_hatch() for b in native)
        assert ax.get_yscale() == "log"  # 5 us .. 1800 us spread
    batch64 = panels[1]
    assert "failed" in [t.get_text() for t in batch64.texts]
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "hatched = emulated (QEMU): not device latency" in legend


def test_write_report_is_atomic_and_replaces(results, tmp_path):
    out = tmp_path / "a" / "report"
    names = {"results.json", "report.md", "report.html", "latency.png", "size.png", "memory.png"}
    paths = write_report(results, out)
    assert {p.name for p in paths} == names
    assert {p.name for p in out.iterdir()} == names  # no temp files left
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.json").read_text().startswith('{\n  "schema"')

    results["created"] = "2027-01-01T00:00:00Z"
    results["results"][0]["latency_us"]["p50"] = 2.5
    write_report(results, out)
    assert {p.name for p in out.iterdir()} == names
    assert json.loads((out / "results.json").read_text())["created"] == "2027-01-01T00:00:00Z"
    assert "2027-01-01T00:00:00Z" in (out / "report.md").read_text()
    assert "2027-01-01T00:00:00Z" in (out / "report.html").read_text()


def test_write_report_validates_before_writing(results, tmp_path):
    results["results"][0]["emulated"] = True
    with pytest.raises(FormatError, match=r"results\[0\]\.emulated"):
        write_report(results, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_importing_the_renderer_does_not_import_matplotlib():
    code = "import sys, edgesparse.bench.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- CLI -----------------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, contains: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and contains in lines[0], lines[0]


def test_cli_report_rerenders(results, tmp_path):
    src = tmp_path / "results.json"
    src.write_text(json.dumps(results))
    r = run("report", src, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output + r.stderr
    written = [Path(line) for line in r.stdout.splitlines()]
    assert {p.name for p in written} == {
        "results.json",
        "report.md",
        "report.html",
        "latency.png",
        "size.png",
        "memory.png",
    }
    assert all(p.is_file() for p in written)
    images = {"latency": "latency.png", "size": "size.png", "memory": "memory.png"}
    expected = render_markdown(results, images=images)
    assert (tmp_path / "out" / "report.md").read_text(encoding="utf-8") == expected

    # Re-rendering in place (same folder as the results file) works too.
    r = run("report", src, "-o", tmp_path)
    assert r.exit_code == 0, r.stderr
    assert json.loads(src.read_text()) == results


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "edgesparse-bench", ', "not valid JSON"),
        ("[1, 2]", "bench results must be a JSON object, got list"),
        (
            json.dumps({"schema": "edgesparse-bench", "schema_version": 99}),
            "schema_version 99 is not supported: this edgesparse reads schema_version 1",
        ),
    ],
)
def test_cli_report_bad_results_file(tmp_path, content, message):
    src = tmp_path / "results.json"
    src.write_text(content)
    r = run("report", src, "-o", tmp_path / "out")
    assert_one_line_error(r, message)
    assert str(src) in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_report_corrupt_row_names_the_field(results, tmp_path):
    bad = copy.deepcopy(results)
    del bad["results"][7]["latency_us"]["p99"]
    src = tmp_path / "results.json"
    src.write_text(json.dumps(bad))
    assert_one_line_error(
        run("report", src, "-o", tmp_path / "out"), "results[7].latency_us.p99: missing"
    )


def test_cli_report_missing_file(tmp_path):
    assert_one_line_error(
        run("report", tmp_path / "nope.json", "-o", tmp_path / "out"), "results file not found"
    )


# ---- the CLI's terminal table ----------------------------------------------------------------


def terminal_table(results: dict) -> tuple[list[str], list[dict[str, str]], str]:
    """(headers, rows as {header: cell}, legend) of the summary `edgesparse bench` prints."""
    from edgesparse.summary import bench_table

    lines = bench_table(results).splitlines()
    headers = re.split(r"\s{2,}", lines[0].strip())
    n = len(results["results"])
    rows = [
        dict(zip(headers, re.split(r"\s{2,}", ln.strip()), strict=True)) for ln in lines[1 : n + 1]
    ]
    return headers, rows, " ".join(lines[n + 1 :])


def test_terminal_rows_per_s_is_consistent_with_p50(results):
    headers, rows, legend = terminal_table(results)
    assert "rows/s@p50" in headers and "batch / p50 latency" in legend
    checked = 0
    for row, r in zip(rows, results["results"], strict=True):
        if r["status"] != "ok":
            assert row["rows/s@p50"] == "-"
            continue
        shown = float(row["rows/s@p50"].replace(",", ""))
        p50 = float(row["p50 us"])
        # rows/s x p50 = one batch, not batch x mean / p50 (the fixture's throughput is 5% off)
        assert shown == pytest.approx(r["batch_size"] * 1e6 / p50, rel=1e-3)
        assert shown != pytest.approx(r["throughput_rows_per_s"], rel=1e-3)
        checked += 1
    assert checked == len(rows) - 1


@pytest.mark.parametrize(
    ("reference", "header", "legend"),
    [
        (
            {"kind": "sklearn", "source": "digits.pkl"},
            "agree vs sklearn",
            "share of predicted labels equal to scikit-learn's (digits.pkl)",
        ),
        ({"kind": "labels", "source": "labels"}, "agree vs labels", "against the true labels"),
        (
            {"kind": "artifact", "source": "digits.esb on the host"},
            "agree vs digits.esb on host",
            "against digits.esb on the host, a cross-target consistency check",
        ),
    ],
)
def test_agreement_column_names_its_reference(results, reference, header, legend):
    results["reference"] = reference
    headers, rows, text = terminal_table(results)
    assert header in headers and legend in text
    assert [h for h in headers if h.startswith("agree")] == [header]
    assert rows[0][header] == "99.56%"
    # accuracy against y gets its own column, except where agreement already is accuracy
    assert ("accuracy" in headers) == (reference["kind"] != "labels")
    if reference["kind"] != "labels":
        assert rows[0]["accuracy"] == "97.00%" and "accuracy" in text
    # the Markdown and HTML reports name the same reference
    md = render_markdown(results)
    md_header = "agreement vs " + header.removeprefix("agree vs ")
    assert md_header in md_tables(md)["host"][0]
    assert legend in md
    assert md_header in render_html(results, images={})


def test_no_reference_means_no_agreement_column(results):
    results["reference"] = {"kind": None, "source": None}
    headers, _, text = terminal_table(results)
    assert not any(h.startswith("agree") for h in headers)
    assert "no reference for agreement" in text
