"""Commands over the Feast store: register, materialize, training frames, online lookups."""

from __future__ import annotations

import json

import click
import pandas as pd

from ingestion.cli._common import workspace_option
from ingestion.errors import InputError

SERVICES = ("model_inputs_v1", "equity_audit_v1")


@click.command("apply")
@workspace_option
def apply(workspace) -> None:
    """Register entities, feature views and services for what is published.

    \b
    Example:
      sdoh apply --workspace ws
    """
    from feature_repo import apply_definitions, feature_store

    names = apply_definitions(feature_store(workspace), workspace)
    click.echo("registered views: " + ", ".join(names))


@click.command("materialize")
@workspace_option
def materialize(workspace) -> None:
    """Load the latest published rows into the online store.

    \b
    Example:
      sdoh materialize --workspace ws
    """
    from feature_repo import feature_store
    from feature_repo import materialize as materialize_store

    materialize_store(feature_store(workspace))
    click.echo("online store up to date")


def _read_events(path: str) -> pd.DataFrame:
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    if path.endswith(".csv"):
        return pd.read_csv(path, dtype={"patient_id": str})
    raise InputError(f"{path}: events must be .csv or .parquet")


@click.command("training-frame")
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True,
              help="Parquet file to write.")
@click.option("--feature-service", type=click.Choice(SERVICES), default=SERVICES[0], show_default=True)
@workspace_option
def training_frame(events, output, feature_service, workspace) -> None:
    """Write a point-in-time correct training frame for events (patient_id, event_timestamp).

    Each event gets the features of the vintage released on or before it, for the address the
    patient had then; every missing value has a reason.

    \b
    Example:
      sdoh training-frame encounters.csv -o frame.parquet --workspace ws
    """
    from feature_repo import feature_store
    from feature_repo import training_frame as build_training_frame

    frame = build_training_frame(_read_events(events), store=feature_store(workspace),
                                 workspace=workspace, feature_service=feature_service)
    frame.to_parquet(output, index=False)
    click.echo(f"wrote {output}: {frame.shape[0]} rows x {frame.shape[1]} columns")


@click.command("online")
@click.argument("patient_ids", nargs=-1, required=True)
@click.option("--feature-service", type=click.Choice(SERVICES), default=SERVICES[0], show_default=True)
@workspace_option
def online(patient_ids, feature_service, workspace) -> None:
    """Look up patients' current SDOH features in the online store (JSON out).

    \b
    Example:
      sdoh online P000001 P000002 --workspace ws
    """
    from feature_repo import feature_store, online_features

    frame = online_features(list(patient_ids), store=feature_store(workspace), workspace=workspace,
                            feature_service=feature_service)
    click.echo(json.dumps(frame.to_dict(orient="records"), indent=2, default=str))
