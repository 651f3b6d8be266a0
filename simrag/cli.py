"""The `simrag` command: ask the pipeline's artefacts questions from a shell."""

from __future__ import annotations

import functools
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from simrag.config import load_params
from simrag.errors import SimragError

if TYPE_CHECKING:
    from simrag.rag import Answer, RagModel


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="simrag")
def main() -> None:
    """simrag: SimRAG-style domain adaptation of a retrieval-augmented LM."""


@main.command()
@click.argument("query")
@click.option("-k", "--top-k", type=click.IntRange(1, 100), default=None, help="Chunks to return [retrieval.top_k].")
@click.option(
    "--threshold", type=click.FloatRange(-1, 1), default=None, help="Relevance threshold [retrieval.threshold]."
)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON lines.")
@click.option(
    "--snippet", type=click.IntRange(0, 5000), default=300, show_default=True, help="Characters of text per hit."
)
def search(
    query: str,
    top_k: int | None,
    threshold: float | None,
    index_dir: Path,
    params_path: Path,
    as_json: bool,
    snippet: int,
) -> None:
    """Print the chunks of the index closest to QUERY, with their cosine scores."""
    from simrag.retrieval import Retriever  # heavy imports only when searching

    try:
        params = load_params(params_path) if params_path.exists() else None
        retrieval = params.retrieval if params else None
        retriever = Retriever(
            index_dir,
            collection=params.index.collection if params else "chunks",
            top_k=top_k or (retrieval.top_k if retrieval else 5),
            threshold=threshold if threshold is not None else (retrieval.threshold if retrieval else 0.7),
            drop_below_threshold=retrieval.drop_below_threshold if retrieval else False,
            search_mode=retrieval.search if retrieval else "exact",
        )
    except SimragError as exc:
        raise click.ClickException(str(exc)) from None
    started = time.perf_counter()
    hits = retriever.search(query)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if as_json:
        for rank, hit in enumerate(hits, start=1):
            click.echo(json.dumps({"rank": rank, **hit.__dict__, "text": hit.text[:snippet] if snippet else hit.text}))
        return
    passing = sum(hit.above_threshold for hit in hits)
    click.echo(
        f"{len(hits)} hits for {query!r} in {elapsed_ms:.0f} ms; "
        f"{passing} at or above the threshold {retriever.threshold:.2f} ({len(retriever)} chunks indexed)\n"
    )
    for rank, hit in enumerate(hits, start=1):
        mark = "*" if hit.above_threshold else " "
        click.echo(f"{rank}. {hit.score:.3f}{mark} {hit.chunk_id}")
        if hit.title:
            click.echo(f"   {hit.title}")
        if snippet:
            text = " ".join(hit.text.split())
            text = text[:snippet] + ("…" if len(text) > snippet else "")
            click.echo(textwrap.indent(textwrap.fill(text, width=100), "   "))
        click.echo()


def rag_model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --top-k, --index, --base and --params, handed to the command as one loaded `rag`: the
    model (its adapter merged) and its retriever, or a clean error."""

    @click.option("--model", "model_name", default="baseline", show_default=True, help="A key of evaluate.models.")
    @click.option(
        "-k", "--top-k", type=click.IntRange(1, 100), default=None, help="Chunks to retrieve [retrieval.top_k]."
    )
    @click.option("--index", "index_dir", type=click.Path(path_type=Path), default=None, help="[the model's index]")
    @click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
    @click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
    @functools.wraps(fn)
    def load(
        model_name: str, top_k: int | None, index_dir: Path | None, base: Path, params_path: Path, **kwargs: Any
    ) -> Any:
        from simrag.rag import RagModel

        try:
            rag = RagModel(load_params(params_path), model_name, base, index_dir, top_k)
        except SimragError as exc:
            raise click.ClickException(str(exc)) from None
        return fn(rag=rag, **kwargs)

    return load


@main.command()
@click.argument("question")
@rag_model_options
def ask(question: str, rag: RagModel) -> None:
    """Answer QUESTION with retrieval-augmented generation, showing the retrieved chunks."""
    _print_answer(rag.answer(question), rag.name)


def _print_answer(answer: Answer, model_name: str) -> None:
    click.echo(f"{answer.text}\n")
    cut = ", cut off at the token limit" if answer.cut_off else ""
    click.echo(f"({model_name}, {answer.seconds:.1f} s, {answer.n_tokens} tokens{cut}; context from:)")
    for rank, hit in enumerate(answer.hits, start=1):
        mark = "*" if hit.above_threshold else " "
        click.echo(f"  [{rank}] {hit.score:.3f}{mark} {hit.chunk_id}")


@main.command()
@rag_model_options
def chat(rag: RagModel) -> None:
    """Ask questions one after another: the model and the index load once, each answer shows its sources
    and time. An empty line, `/exit` or end of input (Ctrl-D) ends it."""
    click.echo(f"{rag.name} on {rag.index_dir} ({len(rag.retriever)} chunks). Ask away; an empty line ends.")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question or question in ("/exit", "/quit"):
            break
        _print_answer(rag.answer(question), rag.name)
        click.echo("")


@main.command()
@click.argument("model_name", metavar="MODEL")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
    help="Weights as saved (the LoRA update is merged in float32 first; bfloat16 halves the size).",
)
@click.option(
    "--gguf",
    type=click.Choice(["f16", "f32"]),
    default=None,
    help="Also write OUT/MODEL.gguf for llama.cpp and Ollama, matrices in this type (Llama-architecture models).",
)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
def export(model_name: str, out: Path, dtype: str, gguf: str | None, base: Path, params_path: Path) -> None:
    """Write MODEL (a key of evaluate.models, e.g. stage2_r2) to the new folder OUT as a standalone model.

    Its LoRA adapter is merged into the base; the folder loads with plain transformers
    (AutoModelForCausalLM.from_pretrained(OUT)) and carries a model card: the base, the chain of stages
    that made the model, their data and params, and its evaluation with confidence intervals.
    """
    from simrag.export import export_model

    try:
        export_model(model_name, out, load_params(params_path), base, dtype, gguf=gguf)
    except SimragError as exc:
        raise click.ClickException(str(exc)) from None
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    click.echo(f"{model_name} -> {out} ({size:.0f} MB, {dtype}); model card: {out / 'README.md'}")
    if gguf:
        click.echo(f"GGUF ({gguf}): {out / (model_name + '.gguf')}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("profile")
@click.argument("dvc_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--print", "print_only", is_flag=True, help="Print the dvc command instead of running it.")
def exp(profile: str, dvc_args: tuple[str, ...], params_path: Path, print_only: bool) -> None:
    """Run a DVC experiment with PROFILE's overrides: `dvc exp run -S ...` for each value it changes.

    PROFILE is a name under profiles/ (paper, smoke, pubmedqa) or a YAML file. Arguments after it go to
    `dvc exp run`, e.g. `simrag exp smoke --queue` or `simrag exp paper -n paper-qlora`.
    """
    import shlex
    import subprocess

    import yaml

    from simrag.profiles import apply_profile, dvc_overrides, load_profile

    path = Path(profile) if profile.endswith((".yaml", ".yml")) else Path("profiles") / f"{profile}.yaml"
    try:
        apply_profile(params_path, path)  # a bad value stops here, naming the profile
        base = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
        overrides = dvc_overrides(base, load_profile(path))
    except SimragError as exc:
        raise click.ClickException(str(exc)) from None
    command = ["dvc", "exp", "run", *(arg for o in overrides for arg in ("-S", o)), *dvc_args]
    click.echo(shlex.join(command))
    if not print_only:
        # dvc, and the `python` of the stage commands, from this environment even when it is not activated
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
        raise SystemExit(subprocess.run(command, check=False, env=env).returncode)


@main.command()
@click.option(
    "--scratch",
    type=click.Path(path_type=Path),
    default=None,
    help="A new folder for the fresh run [a temporary folder beside the repository].",
)
@click.option(
    "--compare-only",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A finished fresh run to compare with, instead of running one.",
)
def verify(scratch: Path | None, compare_only: Path | None) -> None:
    """Rerun the pipeline from a fresh clone and print what differs from the committed run.

    Every stage output hash in dvc.lock and every metric value is compared, except times, throughputs and
    memory. Exits 1 when anything differs. Run it on the machine kind that made the committed run: CPUs
    of other kinds round bf16 differently.
    """
    import subprocess
    import tempfile

    from simrag.verify import compare, fresh_run

    root = Path.cwd()
    if not (root / "dvc.lock").is_file():
        raise click.ClickException("no dvc.lock here: run `simrag verify` in the repository's root")
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "dvc.lock", "metrics"], cwd=root, capture_output=True, text=True
    ).stdout
    if dirty:
        click.echo("warning: dvc.lock or metrics/ have uncommitted changes; the fresh run is of HEAD", err=True)
    if compare_only is None:
        fresh = scratch or Path(tempfile.mkdtemp(prefix=f"{root.name}-verify-", dir=root.parent))
        try:
            fresh_run(root, fresh, log=lambda line: click.echo(line, err=True))
        except (FileExistsError, subprocess.CalledProcessError) as exc:
            raise click.ClickException(str(exc)) from None
    else:
        fresh = compare_only
    result = compare(root, fresh)
    click.echo(result.report())
    sys.exit(0 if result.reproduced else 1)


def server_log(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Log INFO lines to stderr from the start, the model's loading included (`rag_model_options` loads it
    before the command's body runs)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        return fn(*args, **kwargs)

    return run


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 serves other machines too.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@server_log
@rag_model_options
def serve(host: str, port: int, rag: RagModel) -> None:
    """Serve MODEL over HTTP: OpenAI-compatible /v1/chat/completions answered with retrieval (the sources in
    the response), /search, /v1/models and /health. Ctrl-C stops it."""
    from simrag.serve import make_server

    try:
        server = make_server(rag, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"serving {rag.name} on http://{host}:{server.server_address[1]} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command("serve-index")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to serve other machines.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def serve_index(index_dir: Path, host: str, port: int) -> None:
    """Serve an index with a Chroma server (`chroma run`), for `retrieval.servers` in params.yaml.

    It serves a copy, removed on exit: Chroma writes to the folder it serves, and the DVC-tracked
    index must stay as the `index` stage built it.
    """
    import shutil
    import subprocess
    import tempfile

    if not (index_dir / "chroma.sqlite3").is_file():
        raise click.ClickException(f"no index at {index_dir}: build it with `dvc repro index`")
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if chroma is None:
        raise click.ClickException("the `chroma` command is missing: it comes with the chromadb package")
    with tempfile.TemporaryDirectory(prefix="simrag-serve-") as copy:
        shutil.copytree(index_dir, copy, dirs_exist_ok=True)
        click.echo(f"serving {index_dir} at http://{host}:{port}; in params.yaml:", err=True)
        click.echo(f"  retrieval: {{servers: {{{index_dir.as_posix()}: http://{host}:{port}}}}}", err=True)
        try:
            code = subprocess.run([chroma, "run", "--path", copy, "--host", host, "--port", str(port)]).returncode
        except KeyboardInterrupt:
            code = 0
    raise SystemExit(code)


if __name__ == "__main__":
    main()
