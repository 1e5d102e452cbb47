"""Hostile data files: bad bytes, wrong encodings, binary files, ragged CSV, oversize records
and paths that are not data files. Every case is a quarantined record (file, line, reason)
or one clear DataError naming the file, never a decoding traceback."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from polyadapt.config import DataConfig
from polyadapt.errors import ConfigError, DataError
from polyadapt.modalities.tabular import ParseFailure, read_records
from polyadapt.modalities.text import load_text_dataset

GOOD = [{"text": f"record {i}"} for i in range(3)]


def jsonl_bytes(rows: list[dict], encoding: str = "utf-8") -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode(encoding)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def failures(rows: list) -> dict[int | None, str]:
    return {line: str(record) for line, record in rows if isinstance(record, ParseFailure)}


def kept(rows: list) -> list:
    return [record for _, record in rows if not isinstance(record, ParseFailure)]


# -- JSONL: bytes and encodings ---------------------------------------------------------


def test_a_binary_line_among_good_lines_is_quarantined_with_file_line_and_reason(tmp_path):
    path = write(
        tmp_path / "train.jsonl", jsonl_bytes(GOOD[:2]) + b"\x89\xffPNG\x00\x01\x02junk\n" + jsonl_bytes(GOOD[2:])
    )
    dataset = load_text_dataset(path)
    assert [record["text"] for record in dataset.records] == ["record 0", "record 1", "record 2"]
    assert dataset.lines == [1, 2, 4]
    [entry] = dataset.quarantined
    assert (entry.source, entry.line) == (str(path), 3)
    assert entry.reason.startswith("NUL byte: at column 6")
    assert entry.to_dict()["line"] == 3 and "binary" in entry.to_dict()["reason"]
    assert dataset.summary()["quarantine_reasons"] == {"NUL byte": 1}


def test_a_line_that_is_not_utf8_is_quarantined_naming_the_byte_and_column(tmp_path):
    path = write(tmp_path / "train.jsonl", jsonl_bytes(GOOD[:1]) + b'{"text": "caf\xe9"}\n' + jsonl_bytes(GOOD[1:]))
    rows = read_records(path)
    assert len(kept(rows)) == 3
    assert failures(rows) == {
        2: "not UTF-8: byte 0xe9 at column 14 is not valid UTF-8; re-save the file as UTF-8 (e.g. iconv -f LATIN1 "
        "-t UTF-8)"
    }


def test_a_utf8_byte_order_mark_does_not_cost_the_first_record(tmp_path):
    path = write(tmp_path / "train.jsonl", codecs.BOM_UTF8 + jsonl_bytes(GOOD))
    rows = read_records(path)
    assert rows == [(1, GOOD[0]), (2, GOOD[1]), (3, GOOD[2])]


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(tmp_path, bom, encoding):
    rows_in = [{"text": "café ünïcode 日本"}, *GOOD]
    path = write(tmp_path / "train.jsonl", bom + jsonl_bytes(rows_in, encoding))
    assert read_records(path) == [(i + 1, row) for i, row in enumerate(rows_in)]


def test_utf16_without_a_byte_order_mark_is_refused_with_how_to_convert(tmp_path):
    path = write(tmp_path / "train.jsonl", jsonl_bytes(GOOD, "utf-16-le"))
    expected = r"train.jsonl: looks like UTF-16 \(little-endian, without a byte-order mark\)"
    with pytest.raises(DataError, match=expected) as err:
        read_records(path)
    assert "iconv -f UTF-16LE -t UTF-8 train.jsonl" in str(err.value)


@pytest.mark.parametrize(
    ("data", "kind", "todo"),
    [
        (gzip.compress(jsonl_bytes(GOOD)), "gzip", "decompress it first"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG", "point the config at the jsonl data file"),
        (b"PAR1" + bytes(64), "parquet", "set data.format: parquet"),
        (bytes(range(256)) * 8, "it holds NUL bytes", "point the config"),
    ],
)
def test_a_binary_file_named_jsonl_is_refused_saying_what_it_looks_like(tmp_path, data, kind, todo):
    path = write(tmp_path / "train.jsonl", data)
    with pytest.raises(DataError, match=r"train.jsonl: looks like a binary file") as err:
        read_records(path)
    assert f"({kind}), not jsonl text" in str(err.value) and todo in str(err.value)


def test_a_byte_order_mark_where_files_were_joined_is_not_a_bad_record(tmp_path):
    path = write(tmp_path / "train.jsonl", jsonl_bytes(GOOD[:1]) + codecs.BOM_UTF8 + jsonl_bytes(GOOD[1:]))
    assert kept(read_records(path)) == GOOD


# -- oversize records --------------------------------------------------------------------


def test_a_huge_line_is_quarantined_with_its_size_not_parsed(tmp_path, monkeypatch):
    huge = json.dumps({"text": "x" * 3_000_000}).encode()
    path = write(tmp_path / "train.jsonl", jsonl_bytes(GOOD[:1]) + huge + b"\r\n" + jsonl_bytes(GOOD[1:]))
    parsed: list[int] = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **kw: parsed.append(len(text)) or real_loads(text, **kw))
    rows = read_records(path, max_record_chars=1000)
    assert kept(rows) == GOOD
    assert failures(rows) == {
        2: f"oversize: the record is {len(huge):,} characters, above data.max_record_chars (1,000); "
        "split it or raise the bound"
    }
    assert max(parsed) < 1000  # the huge line never reached the JSON parser


def test_oversize_counts_characters_not_bytes(tmp_path):
    line = json.dumps({"text": "é" * 60}, ensure_ascii=False)  # 72 characters, 132 bytes
    path = write(tmp_path / "train.jsonl", (line + "\n").encode())
    assert kept(read_records(path, max_record_chars=len(line))) == [{"text": "é" * 60}]
    with pytest.raises(DataError, match=r"no usable records; every one was rejected \(first, line 1: oversize: the re"):
        load_text_dataset(path, max_record_chars=len(line) - 1)


def test_oversize_in_a_utf16_file(tmp_path):
    text = jsonl_bytes([GOOD[0], {"text": "y" * 5000}, GOOD[1]], "utf-16-le")
    rows = read_records(write(tmp_path / "train.jsonl", codecs.BOM_UTF16_LE + text), max_record_chars=100)
    assert kept(rows) == GOOD[:2] and failures(rows)[2].startswith("oversize: the record is 5,012 characters")


def test_the_bound_comes_from_data_max_record_chars(tmp_path):
    from polyadapt.task import Task

    path = write(tmp_path / "train.jsonl", jsonl_bytes([{"text": "short"}, {"text": "z" * 500}]))
    assert DataConfig(train=path).max_record_chars == 1_000_000
    run = SimpleNamespace(config=SimpleNamespace(data=DataConfig(train=path, max_record_chars=100)))
    dataset = Task().load_dataset(run, path, "train")
    assert [q.line for q in dataset.quarantined] == [2]
    assert "above data.max_record_chars (100)" in dataset.quarantined[0].reason
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        DataConfig(train=path, max_record_chars=0)


def test_the_bound_in_a_run_config(tmp_path):
    from polyadapt.config import parse_config

    text = (
        f"task: text-generation\nbase_model: {{id: x}}\ndata: {{train: {tmp_path / 't.jsonl'}, max_record_chars: 0}}\n"
    )
    with pytest.raises(ConfigError, match="data.max_record_chars"):
        parse_config(text, "run.yaml")


# -- CSV -------------------------------------------------------------------------------


def test_ragged_csv_rows_are_quarantined_both_ways_with_the_files_line_numbers(tmp_path):
    data = (
        b"text,label,id\n"
        b'"a, quoted comma",x,1\n'
        b"an unquoted, comma,y,2\n"  # 4 cells
        b"too,few\n"
        b'"a field over\ntwo lines",z,3\n'
        b"trailing comma,w,4,\n"  # an empty extra cell carries nothing
        b"\n"
        b"last,v,5\n"
    )
    rows = read_records(write(tmp_path / "train.csv", data))
    assert kept(rows) == [
        {"text": "a, quoted comma", "label": "x", "id": "1"},
        {"text": "a field over\ntwo lines", "label": "z", "id": "3"},
        {"text": "trailing comma", "label": "w", "id": "4"},
        {"text": "last", "label": "v", "id": "5"},
    ]
    assert [line for line, _ in rows] == [2, 3, 4, 5, 7, 9]
    assert failures(rows) == {
        3: "ragged row: the row has 4 cells, the header has 3 (a comma inside an unquoted field? quote it)",
        4: "ragged row: the row has 2 cells, the header has 3 (a missing cell or a line break inside an "
        "unquoted field?)",
    }


def test_a_csv_row_with_a_nul_byte_is_quarantined(tmp_path):
    rows = read_records(write(tmp_path / "train.csv", b"text,label\na,b\nc\x00d,e\nf,g\n"))
    assert kept(rows) == [{"text": "a", "label": "b"}, {"text": "f", "label": "g"}]
    assert failures(rows)[3].startswith("NUL byte: at column 2")


def test_a_csv_row_that_is_not_utf8_is_quarantined_and_a_bad_header_refused(tmp_path):
    rows = read_records(write(tmp_path / "train.csv", b'text,label\n"caf\xe9\nau lait",b\nf,g\n'))
    assert kept(rows) == [{"text": "f", "label": "g"}]
    assert failures(rows)[2].startswith("not UTF-8: byte 0xe9 at column 5")
    with pytest.raises(DataError, match=r"h.csv: cannot read the header \(line 1\): not UTF-8"):
        read_records(write(tmp_path / "h.csv", b"te\xffxt,label\na,b\n"))


def test_a_csv_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    rows = read_records(write(tmp_path / "train.csv", codecs.BOM_UTF8 + b"text,label\na,b\n"))
    assert rows == [(2, {"text": "a", "label": "b"})]


def test_a_utf16_csv_with_a_byte_order_mark_is_read(tmp_path):
    data = codecs.BOM_UTF16_LE + 'text,label\n"é\nè",b\nc,d\n'.encode("utf-16-le")
    assert read_records(write(tmp_path / "train.csv", data)) == [
        (2, {"text": "é\nè", "label": "b"}),
        (4, {"text": "c", "label": "d"}),
    ]


def test_a_csv_quote_left_open_is_quarantined_not_swallowing_the_file(tmp_path):
    rows = read_records(write(tmp_path / "train.csv", b'text,label\na,b\nc,"d\ne,f\ng,h\n'))
    assert kept(rows) == [{"text": "a", "label": "b"}]
    assert failures(rows)[3].startswith("bad CSV: a quote opened in this row is never closed (lines 3 to 5")


def test_oversize_csv_fields_and_rows_are_quarantined(tmp_path):
    data = (
        b"text,label\n"
        + b'"'
        + b"x" * 5000
        + b'",y\n'
        + b"x" * 3000
        + b",z\nok,w\n"
        + b"a" * 600
        + b","
        + b"b" * 600
        + b"\n"
    )
    rows = read_records(write(tmp_path / "train.csv", data), max_record_chars=1000)
    assert kept(rows) == [{"text": "ok", "label": "w"}]
    reasons = failures(rows)
    assert set(reasons) == {2, 3, 5} and all(r.startswith("oversize:") for r in reasons.values())
    assert "1,201 characters" in reasons[5]  # the line, comma included
    import csv

    assert csv.field_size_limit() == 131072  # the process-wide limit is put back


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"text,label\n", "no records: the file holds only a header"),
        (b"text,text\na,b\n", r"names column 'text' twice \(columns 1 and 2\)"),
        (gzip.compress(b"text\na\n"), r"looks like a binary file \(gzip\), not csv text"),
        ("text\na\n".encode("utf-16-be"), r"looks like UTF-16 \(big-endian"),
    ],
)
def test_csv_files_that_cannot_be_read_are_refused_clearly(tmp_path, data, message):
    with pytest.raises(DataError, match=rf"train.csv: .*{message}"):
        read_records(write(tmp_path / "train.csv", data))


# -- parquet ---------------------------------------------------------------------------


def test_a_truncated_parquet_file_is_a_clear_error_and_oversize_rows_are_quarantined(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"text": ["short", "w" * 2000]}), whole)
    rows = read_records(whole, max_record_chars=100)
    assert rows[0] == (None, {"text": "short"})
    assert str(rows[1][1]).startswith("oversize: the record is 2,000 characters")
    cut = write(tmp_path / "cut.parquet", whole.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut.parquet: not a readable parquet file .*may be truncated"):
        read_records(cut)


# -- paths that are not data files -----------------------------------------------------


def test_a_folder_is_named_as_a_folder_with_the_data_files_in_it(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / "train.jsonl", jsonl_bytes(GOOD))
    with pytest.raises(DataError, match=r"data: is a folder, not a data file \(it holds train.jsonl\); point"):
        read_records(folder)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"train.jsonl: is not a regular file \(a FIFO\)"):
        read_records(fifo)


def test_a_missing_file_suggests_close_names_and_a_missing_folder_is_named(tmp_path):
    write(tmp_path / "train.jsonl", jsonl_bytes(GOOD))
    write(tmp_path / "zebra.jsonl", jsonl_bytes(GOOD))
    with pytest.raises(DataError, match=r"trian.jsonl: no such data file; did you mean train.jsonl\?$"):
        read_records(tmp_path / "trian.jsonl")
    with pytest.raises(DataError, match=r"other.jsonl: no such data file in "):
        read_records(tmp_path / "other.jsonl")
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataError, match=rf"no such data file \(the folder {nowhere} does not exist\)"):
        read_records(nowhere / "deeper" / "train.jsonl")
    with pytest.raises(DataError, match=r"the folder .*train.jsonl is a file, not a folder"):
        read_records(tmp_path / "train.jsonl" / "x.jsonl")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(DataError, match=r"link.jsonl: no such data file: it is a link to .*gone.jsonl"):
        read_records(tmp_path / "link.jsonl")


def test_an_unreadable_file_says_permission_denied(tmp_path):
    path = write(tmp_path / "train.jsonl", jsonl_bytes(GOOD))
    path.chmod(0)
    try:
        with contextlib.suppress(PermissionError), path.open("rb"):
            pytest.skip("this user reads any file (root)")
        with pytest.raises(DataError, match=r"train.jsonl: cannot read: permission denied"):
            read_records(path)
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", r"the file is empty \(0 bytes, no records\)"), (b"\n  \n\n", "no records: the file holds only blank lines")],
)
def test_an_empty_file_is_a_clear_error(tmp_path, data, message):
    with pytest.raises(DataError, match=rf"train.jsonl: {message}"):
        read_records(write(tmp_path / "train.jsonl", data))


# -- through the CLI -------------------------------------------------------------------


def test_the_cli_prints_these_errors_without_a_traceback(tiny_llama, text_data, tmp_path):
    from conftest import make_config
    from typer.testing import CliRunner

    from polyadapt.cli import app

    config = make_config(tmp_path, tiny_llama, text_data, max_steps=1)
    folder, utf16 = tmp_path / "data", write(tmp_path / "u16.jsonl", jsonl_bytes(GOOD, "utf-16-le"))
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for train, expected in [
        (folder, "is a folder, not a data file"),
        (utf16, "looks like UTF-16"),
        (fifo, "is not a regular file (a FIFO)"),
    ]:
        overrides = ["--set", f"data.train={train}", "--set", f"output.name=run-{train.name}"]
        result = CliRunner().invoke(app, ["adapt", str(config), *overrides])
        assert result.exit_code == 1, result.output
        assert expected in result.output and "Traceback" not in result.output
        assert not isinstance(result.exception, UnicodeDecodeError)


def test_no_file_is_left_open(tmp_path, recwarn):
    import gc
    import warnings

    warnings.simplefilter("always", ResourceWarning)
    for data in (codecs.BOM_UTF16_LE + jsonl_bytes(GOOD, "utf-16-le"), gzip.compress(b"x"), b"text\na\n"):
        with contextlib.suppress(DataError):
            read_records(write(tmp_path / "t.jsonl", data))
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


def test_a_run_goes_on_past_bad_records_and_lists_them_in_quarantine_jsonl(tiny_llama, text_data, tmp_path):
    from conftest import make_config
    from typer.testing import CliRunner

    from polyadapt.cli import app

    train = text_data["train"]
    good = train.read_bytes()
    write(train, good + b"\x00\x01\x02binary\n" + b'{"text": "caf\xe9"}\n' + jsonl_bytes([{"text": "q" * 5000}]))
    bad_lines = good.count(b"\n") + 1, good.count(b"\n") + 2, good.count(b"\n") + 3
    config = make_config(tmp_path, tiny_llama, text_data, max_steps=1)
    overrides = ["--set", "evaluation.num_samples=0", "--set", "data.max_record_chars=2000"]
    result = CliRunner().invoke(app, ["adapt", str(config), *overrides])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "runs" / "test-run" / "quarantine.jsonl").read_text().splitlines()]
    mine = {row["line"]: row["reason"] for row in rows if row["source"].endswith("train.jsonl")}
    assert sorted(mine) == sorted(bad_lines)
    assert [mine[line].split(":")[0] for line in bad_lines] == ["NUL byte", "not UTF-8", "oversize"]
    assert "5,012 characters, above data.max_record_chars (2,000)" in mine[bad_lines[2]]


def test_the_code_task_set_reader_quarantines_bad_lines_too(tmp_path):
    from polyadapt_code.datasets import load_task_set

    task = {"task_id": "t/0", "prompt": "def f():\n", "test": "assert f() is None", "entry_point": "f"}
    lines = jsonl_bytes([task]) + b'{"task_id": "caf\xe9"}\n[1, 2]\n' + jsonl_bytes([{**task, "prompt": "p" * 500}])
    path = write(tmp_path / "tasks.jsonl", lines)
    admitted: list = []
    run = SimpleNamespace(
        options=SimpleNamespace(tasks_licence="CC0-1.0"),
        config=SimpleNamespace(data=SimpleNamespace(licence=None, max_record_chars=300)),
        admit=lambda dataset, role, licence: admitted.append(dataset) or dataset,
    )
    assert load_task_set(run, path) == [task]
    reasons = {q.line: q.reason.split(":")[0] for q in admitted[0].quarantined}
    assert reasons == {2: "not UTF-8", 3: "not an object", 4: "oversize"}
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"task_options.tasks: .*fifo.jsonl: is not a regular file \(a FIFO\)"):
        load_task_set(run, fifo)
