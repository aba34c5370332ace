"""``soundforge models list|download``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from soundforge.cli.output import emit_json, error, stdout
from soundforge.config import get_settings
from soundforge.errors import SoundForgeError

models_app = typer.Typer(help="List and download the Demucs models.", no_args_is_help=True)


@models_app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model."),
) -> None:
    """Every model, its stems, size, and whether it works offline here."""
    from soundforge.engines.local.catalog import MODELS
    from soundforge.engines.local.loader import availability

    settings = get_settings()
    table = Table(title="Demucs models", title_justify="left")
    for column in ("model", "stems", "networks", "download", "quality", "speed", "offline"):
        table.add_column(column)
    for spec in MODELS.values():
        state = availability(spec.name, settings.model_repo)
        if as_json:
            emit_json({
                "model": spec.name, "kind": "model", "stems": list(spec.stems),
                "bag_size": spec.bag_size,
                "is_bag": spec.is_bag, "download_mb": spec.download_mb,
                "quality": spec.quality, "speed": spec.speed,
                "available": state.available, "where": state.where,
            })
            continue
        table.add_row(
            spec.name,
            " ".join(spec.stems),
            str(spec.bag_size),
            f"~{spec.download_mb} MB",
            spec.quality,
            spec.speed,
            (f"[green]yes[/] ({state.where})" if state.available
             else f"[yellow]no[/] ({state.where})"),
        )
    if not as_json:
        stdout.print(table)
    list_presets(settings.model_repo, as_json)


def list_presets(repo: Path | None, as_json: bool) -> None:
    """The ensemble presets: what each combines, its stems, and why it exists."""
    from soundforge.engines.local.ensemble import PRESETS, parse_ensemble
    from soundforge.engines.local.loader import availability

    table = Table(title="Ensemble presets (--model NAME)", title_justify="left")
    for column in ("preset", "combines", "stems", "offline", "why"):
        table.add_column(column, overflow="fold")
    for name, preset in PRESETS.items():
        spec = parse_ensemble(name)
        members = [member.model for member in spec.members]
        missing = [m for m in members if not availability(m, repo).available]
        if as_json:
            emit_json({
                "model": name, "kind": "ensemble", "definition": spec.definition,
                "members": members, "combiner": spec.combiner, "stems": list(spec.stems),
                "available": not missing, "missing": missing, "rationale": preset.rationale,
            })
            continue
        table.add_row(
            name,
            spec.definition,
            " ".join(spec.stems),
            "[green]yes[/]" if not missing else f"[yellow]no[/] (needs {', '.join(missing)})",
            preset.rationale,
        )
    if not as_json:
        stdout.print(table)
        stdout.print("Any ensemble: --model a+b, a:2+b (weights), max-spec/a+b or min-spec/a+b, "
                     "a@drums,bass+b (a gives only drums and bass).", markup=False)


@models_app.command("download")
def download_model(
    name: str = typer.Argument(..., help="Model or ensemble preset, e.g. htdemucs"),
) -> None:
    """Fetch a model's weights now, so separation works offline later."""
    from soundforge.engines.local.ensemble import PRESETS, parse_ensemble
    from soundforge.engines.local.loader import download

    # A preset's weights are its members'.
    names = [m.model for m in parse_ensemble(name).members] if name in PRESETS else [name]
    for each in names:
        try:
            where = download(each)
        except SoundForgeError as exc:
            error(exc.message)
            raise typer.Exit(1) from None
        stdout.print(f"{each}: {where}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
