"""The ``polyadapt index`` commands: build, search, list, show and remove retrieval indexes.

Indexes live in the project's state folder (``$POLYADAPT_HOME`` or ``.polyadapt/``) under
``indexes/NAME.sqlite``; their lineage (document hashes, root hashes, governance counts) is
recorded in the lineage store beside the runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polyadapt.errors import ConfigError, PolyadaptError

index_app = typer.Typer(
    help="Retrieval indexes over documents: build (governed like training data), search, list, show, remove.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

NameArgument = Annotated[str, typer.Argument(help="The index name (letters, digits, '.', '_', '-').")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _fail(exc: PolyadaptError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2 if isinstance(exc, ConfigError) else 1)


@index_app.command("build")
def index_build(
    name: NameArgument,
    sources: Annotated[
        list[Path],
        typer.Option("--from", help="A document or folder to index (repeat for more): .txt .md .rst .html .pdf."),
    ],
    licence: Annotated[
        str | None,
        typer.Option("--licence", "--license", help="The documents' SPDX licence (checked like data.licence)."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Governance policy file (default: the strict built-in one).")
    ] = None,
    embed: Annotated[
        Path | None,
        typer.Option("--embed", help="Local encoder folder (transformers): add dense vectors, search hybrid."),
    ] = None,
    chunk_words: Annotated[int, typer.Option("--chunk-words", help="About how many words a passage holds.")] = 200,
    vector_engine: Annotated[
        str,
        typer.Option(
            "--vector-engine",
            help="Where --embed's vectors go: sqlite (the index file, default) or qdrant (a Qdrant collection).",
        ),
    ] = "sqlite",
    qdrant_url: Annotated[
        str | None,
        typer.Option("--qdrant-url", help="Qdrant server URL (API key from $QDRANT_API_KEY, never stored)."),
    ] = None,
    qdrant_path: Annotated[
        Path | None,
        typer.Option("--qdrant-path", help="Local Qdrant folder (qdrant-client's embedded mode, one process)."),
    ] = None,
    qdrant_api_key_env: Annotated[
        str, typer.Option("--qdrant-api-key-env", help="Environment variable holding the Qdrant server's API key.")
    ] = "QDRANT_API_KEY",
) -> None:
    """Build (or rebuild, replacing it atomically) the index NAME over documents."""
    from polyadapt.retrieval.build import build_index

    try:
        qdrant = None
        if qdrant_url is not None or qdrant_path is not None or vector_engine == "qdrant":
            from polyadapt.retrieval.qdrant import QdrantLocation

            qdrant = QdrantLocation.from_options(qdrant_url, qdrant_path, qdrant_api_key_env)
        result = build_index(
            name,
            list(sources),
            licence=licence,
            policy=policy,
            embed=embed,
            chunk_words=chunk_words,
            vector_engine=vector_engine,
            qdrant=qdrant,
        )
    except PolyadaptError as exc:
        _fail(exc)
    for line in result.lines():
        console.print(escape(line), highlight=False, soft_wrap=True)


@index_app.command("search")
def index_search(
    name: NameArgument,
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=100, help="How many passages to show.")] = 4,
    as_json: JsonOption = False,
) -> None:
    """Show the passages of index NAME that best match QUERY, with their sources and scores."""
    from polyadapt.retrieval.index import open_index

    try:
        passages = open_index(name).search(query, k)
    except PolyadaptError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([p.reference() | {"text": p.text} for p in passages], indent=2))
        return
    if not passages:
        console.print(f"no passage of {escape(name)} matches", highlight=False)
    for number, passage in enumerate(passages, start=1):
        console.print(
            f"[bold][{number}][/] {escape(passage.source)}  score {passage.score:.4f}  id {passage.passage_id}",
            highlight=False,
        )
        console.print(escape(passage.text), highlight=False, soft_wrap=True)
        console.print()


def _summary(name: str) -> dict[str, Any]:
    from polyadapt.retrieval.index import open_index

    meta = open_index(name).meta
    gov = meta.get("governance") or {}
    return {
        "name": name,
        "built": meta.get("built"),
        "documents": len(meta.get("documents", [])),
        "passages": meta.get("passages"),
        "licence": meta.get("licence"),
        "policy": meta.get("policy"),
        "root_hash": meta.get("root_hash"),
        "documents_root_hash": meta.get("documents_root_hash"),
        "redacted": gov.get("redacted", 0),
        "dropped": gov.get("dropped", 0),
        "findings_by_type": gov.get("findings_by_type", {}),
        "embedding": meta.get("embedding"),
        "vectors": meta.get("vectors"),
    }


@index_app.command("list")
def index_list(as_json: JsonOption = False) -> None:
    """List the indexes of this project with their counts, licence and root hash."""
    from polyadapt.retrieval.index import list_indexes

    rows = []
    for name in list_indexes():
        try:
            rows.append(_summary(name))
        except PolyadaptError as exc:
            rows.append({"name": name, "error": str(exc)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no retrieval index yet; build one with `polyadapt index build NAME --from PATH`")
        return
    table = Table("name", "built", "documents", "passages", "licence", "redacted", "dense", "root hash")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], escape(row["error"]), "", "", "", "", "", "")
            continue
        table.add_row(
            row["name"],
            str(row["built"])[:16].replace("T", " "),
            str(row["documents"]),
            str(row["passages"]),
            str(row["licence"] or "-"),
            str(row["redacted"]),
            (row["vectors"] or {}).get("engine", "yes") if row["embedding"] else "no",
            str(row["root_hash"])[:16],
        )
    console.print(table)


@index_app.command("show")
def index_show(name: NameArgument, as_json: JsonOption = False) -> None:
    """Show index NAME: its documents with their SHA-256, hashes, governance counts and lineage record."""
    from polyadapt.lineage.store import LineageStore
    from polyadapt.retrieval.index import open_index

    try:
        meta = open_index(name).meta
        with LineageStore.open() as store:
            recorded = store.retrieval_indexes(name)
    except PolyadaptError as exc:
        _fail(exc)
    lineage = None
    if recorded:
        record = recorded[0]
        lineage = {
            "recorded": record["built"],
            "root_hash": record["root_hash"],
            "matches": record["root_hash"] == meta["root_hash"],
        }
    if as_json:
        print(json.dumps(meta | {"lineage": lineage}, indent=2, default=str))
        return
    summary = _summary(name)
    for key in ("name", "built", "documents", "passages", "licence", "policy", "root_hash", "documents_root_hash"):
        console.print(f"{key}: {escape(str(summary[key]))}", highlight=False)
    gov = meta.get("governance") or {}
    console.print(
        f"governance: {gov.get('kept', 0)} kept, {gov.get('redacted', 0)} redacted, {gov.get('dropped', 0)} dropped; "
        f"findings: {json.dumps(gov.get('findings_by_type', {}))}",
        highlight=False,
    )
    if meta.get("embedding"):
        console.print(f"dense: {meta['embedding']['dims']} dims from {escape(meta['embedding']['model'])}")
        vectors = meta.get("vectors") or {"engine": "sqlite"}
        if vectors.get("engine") == "qdrant":
            where = f"server {vectors['url']}" if vectors.get("url") else f"local folder {vectors.get('path')}"
            console.print(
                f"vector engine: qdrant, collection {escape(vectors['collection'])} ({escape(where)})",
                highlight=False,
                soft_wrap=True,
            )
        else:
            console.print("vector engine: sqlite (in the index file)", highlight=False)
    if lineage is None:
        console.print("lineage: not recorded in this project's lineage store", highlight=False)
    else:
        state = "matches the file" if lineage["matches"] else "DIFFERS from the file (rebuilt elsewhere?)"
        console.print(f"lineage: recorded {lineage['recorded']}, {state}", highlight=False)
    console.print("documents:", highlight=False)
    for doc in meta.get("documents", []):  # whole hashes, one line each: they are compared and copied
        console.print(
            f"  {doc['sha256']}  {escape(doc['source'])} ({doc['kind']}, {doc['bytes']} bytes, "
            f"{doc['passages']} passage(s))",
            highlight=False,
            soft_wrap=True,
        )
    for item in meta.get("skipped", []):
        console.print(f"skipped {escape(item['source'])}: {escape(item['reason'])}", highlight=False)


@index_app.command("remove")
def index_remove(name: NameArgument) -> None:
    """Delete index NAME's file, its Qdrant collection (if it has one) and its lineage record
    (the passage manifest stays in lineage)."""
    from polyadapt.lineage.store import LineageStore
    from polyadapt.retrieval.index import index_path, open_index

    try:
        path = index_path(name)
        if not path.is_file():
            open_index(name)  # raises the not-found error with the indexes there are
        vectors = _vectors_of(name)
        if vectors and vectors.get("engine") == "qdrant":  # first: a failure keeps the file to retry with
            from polyadapt.retrieval import qdrant

            qdrant.drop_collection(qdrant.QdrantLocation.from_meta(vectors), vectors["collection"], index=name)
            console.print(f"dropped Qdrant collection {escape(vectors['collection'])}", highlight=False)
        path.unlink()
        with LineageStore.open() as store:
            store.forget_index(name)
    except PolyadaptError as exc:
        _fail(exc)
    console.print(f"removed index {escape(name)} ({escape(str(path))})", highlight=False)


def _vectors_of(name: str) -> dict[str, Any] | None:
    """The ``vectors`` meta of index ``name``; None when the file is unreadable (removed anyway)."""
    from polyadapt.retrieval.index import open_index

    try:
        vectors = open_index(name).meta.get("vectors")
    except PolyadaptError:
        return None
    return vectors if isinstance(vectors, dict) else None
