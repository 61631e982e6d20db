"""`squeezenli model ...`: download, locate, inspect, list, remove and check models."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from squeezenli.choices import Precision
from squeezenli.cli.options import (
    JsonOpt,
    ModelOpt,
    ModelOptions,
    OnnxFileOpt,
    QuietOpt,
    RevisionOpt,
    announce_builds,
    model_options,
)
from squeezenli.cli.streams import print_json

app = typer.Typer(
    help="Download, inspect, list, remove and check models.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("download")
def download(
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    onnx_file: OnnxFileOpt = None,
    precision: Annotated[
        Optional[list[Precision]],
        typer.Option("--precision", case_sensitive=False, help="Variants to build (repeatable)."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Fetch a model into the cache, build its ONNX model and measure int8 against fp32 on
    this CPU ahead of time (until then, --precision auto runs fp32); prints the model's
    folder.

    Example: squeezenli model download --precision fp32 --precision int8
    """
    from squeezenli.runtime.model import prepare_model

    announce_builds(not quiet)
    folder = None
    for variant in precision or [Precision.AUTO]:
        prepared = prepare_model(
            model,
            revision,
            onnx_file=onnx_file,
            precision=variant,
            progress=not quiet,
            measure=True,
        )
        folder = prepared.files.folder
        if not quiet:
            runs = "" if variant is not Precision.AUTO else f" (runs {prepared.choice.precision})"
            typer.echo(f"{variant}{runs}: {prepared.ready}", err=True)
    typer.echo(str(folder))


@app.command("path")
def path(
    model: ModelOpt = None, revision: RevisionOpt = None, onnx_file: OnnxFileOpt = None
) -> None:
    """Print the folder holding a model's files (downloading them if needed).

    Example: ls "$(squeezenli model path)"
    """
    from squeezenli.models.hub import resolve

    typer.echo(str(resolve(model, revision, onnx_file=onnx_file).folder))


@model_options("model", "revision", "onnx_file", "label_order")
def info(json_out: JsonOpt = False, *, opts: ModelOptions) -> None:
    """Show where a model comes from, its files, its built ONNX models and its label mapping.

    Example: squeezenli model info --json
    """
    from squeezenli.runtime.info import model_info

    details = model_info(opts.spec)
    if json_out:
        print_json(details)
        return
    from squeezenli.cli.render import info_tables

    info_tables(details)


@app.command("list")
def list_models(
    include_all: Annotated[
        bool, typer.Option("--all", help="Every model repo in the cache, not only those built.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the models in the Hugging Face cache that squeezenli has built.

    Example: squeezenli model list --all
    """
    from squeezenli.models.cache import cached_models, local_builds
    from squeezenli.models.hub import hub_cache

    models = cached_models(include_all)
    local = local_builds()
    if json_out:
        print_json(
            {
                "cache": str(hub_cache()),
                "models": [m.as_dict() for m in models],
                "local_builds": [str(p) for p in local],
            }
        )
        return
    from squeezenli.cli.render import cached_models_table

    cached_models_table(models, local, hub_cache())


@app.command("remove")
def remove(
    model: Annotated[
        Optional[str], typer.Argument(help="Hub repo id [default: squeezebert/squeezebert-mnli].")
    ] = None,
    downloads: Annotated[
        bool,
        typer.Option(
            "--downloads",
            help="Also delete the downloaded files (shared with other Hugging Face tools).",
        ),
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Delete the builds made from local folders instead.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Delete what squeezenli built for a model (and, with --downloads, its downloaded files).
    Only ever deletes inside the cache.

    Example: squeezenli model remove squeezebert/squeezebert-mnli --downloads --yes
    """
    from squeezenli.errors import InputError
    from squeezenli.models.cache import remove_local_builds, remove_model
    from squeezenli.models.hub import DEFAULT_MODEL

    repo_id = model or DEFAULT_MODEL
    if downloads and not yes:
        if not sys.stdin.isatty():
            raise InputError("--downloads deletes shared files: pass --yes to confirm")
        if not typer.confirm(f"Delete every cached file of {repo_id}?", err=True):
            typer.echo("squeezenli: nothing removed", err=True)  # asked and answered: done
            return
    freed = remove_local_builds() if local else remove_model(repo_id, downloads=downloads)
    if not quiet:
        what = "local-folder builds" if local else repo_id
        typer.echo(f"squeezenli: removed {what}, {freed / 2**20:.1f} MiB freed", err=True)


@model_options("model", "revision", "onnx_file", "precision", "label_order", "quiet")
def check_labels(json_out: JsonOpt = False, *, opts: ModelOptions) -> None:
    """Run unambiguous NLI pairs and report which output index behaves as which class.

    Exits 0 when the mapping in use agrees, 1 when it does not or the result is unclear.

    Example: squeezenli model check-labels
    """
    from squeezenli.cli.render import label_check_table
    from squeezenli.runtime.labelcheck import check_labels as run_check

    result = run_check(opts.load())
    if json_out:
        print_json(result.as_dict())
    else:
        label_check_table(result)
    if not result.agrees:
        raise typer.Exit(1)


app.command("info")(info)
app.command("check-labels")(check_labels)
