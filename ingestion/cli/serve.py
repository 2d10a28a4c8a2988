"""Commands over the Feast store: register, materialize, training frames, online lookups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ingestion.cli._common import existing_workspace_option, run_settings
from ingestion.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import SecretStr

SERVICES = ("model_inputs_v1", "equity_audit_v1")


@click.command("apply")
@existing_workspace_option
def apply(workspace) -> None:
    """Register entities, feature views and services for what is published.

    \b
    Example:
      sdoh apply --workspace ws
    """
    from feature_repo import apply_definitions, feature_store

    names = apply_definitions(feature_store(workspace, settings=run_settings()), workspace)
    click.echo("registered views: " + ", ".join(names))


@click.command("materialize")
@click.option("--view", "views", multiple=True, metavar="NAME",
              help="Only this feature view (repeatable); default every online view.")
@click.option("--feast-default", is_flag=True,
              help="Write through Feast's own materialize (about 10x slower; same values).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@existing_workspace_option
def materialize(views, feast_default, quiet, workspace) -> None:
    """Load what each view gained since its last materialization into the online store.

    A view never materialized gets its whole history; one materialized before gets the
    window since then (as `feast materialize-incremental`), or its whole history again if its
    published files changed (a vintage published late). Windows are recorded in the Feast
    registry. Rows written are counted per view. Then what the online store holds is checked
    against the source: keys it lost (a Redis restart without persistence) are written again,
    keys the source no longer has (a patient dropped, ids of a previous scheme) are removed.

    \b
    Example:
      sdoh materialize --workspace ws
      sdoh materialize --view acs_tract --view patient_geography --workspace ws
    """
    from feature_repo import feature_store
    from feature_repo import materialize as materialize_store

    store = feature_store(workspace, settings=run_settings())
    done = materialize_store(store, views=list(views) or None, feast_default=feast_default,
                             progress=not quiet)
    for w in done:
        rows = "written by Feast" if w.written is None else f"{w.written:,} rows written"
        click.echo(f"{w.view:<28} {w.reason:<14} {w.start:%Y-%m-%d} .. {w.end:%Y-%m-%d %H:%M}  {rows}"
                   f"{_verified(w)}")
    verified = [w.online for w in done if w.online is not None]
    click.echo(f"online store up to date: {sum(c.present for c in verified):,} keys of "
               f"{len(verified)} views verified against their sources")


def _verified(window) -> str:
    """What the check of the online store found for one view, for the summary line."""
    check = window.online
    if check is None:
        return "; not materialized"
    parts = [f"; {check.present:,} of {check.expected:,} keys verified"]
    if window.refilled:
        parts.append(f"{window.refilled:,} lost keys refilled")
    if check.removed:
        parts.append(f"{check.removed:,} keys no longer in the source removed")
    return ", ".join(parts)


def _read_events(path: str) -> pd.DataFrame:
    import pandas as pd

    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    if path.endswith(".csv"):
        return pd.read_csv(path, dtype={"patient_id": str})
    raise InputError(f"{path}: events must be .csv or .parquet")


@click.command("training-frame")
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(), required=True,
              help="Parquet to write (replaced only once complete); a folder on the Spark profile.")
@click.option("--feature-service", type=click.Choice(SERVICES), default=SERVICES[0], show_default=True)
@click.option("--chunk-events", type=click.IntRange(min=1),
              help="Events per chunk (default 200,000: ~4.5 GiB peak for model_inputs_v1); memory "
                   "holds one chunk's frame. Ignored on Spark.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@existing_workspace_option
def training_frame(events, output, feature_service, chunk_events, quiet, workspace) -> None:
    """Write a point-in-time correct training frame for events (patient_id, event_timestamp).

    Each event gets the features of the vintage released on or before it, for the address the
    patient had then; every missing value has a reason. The frame is written chunk by chunk,
    so it may be larger than memory; with SDOH_PROFILE=spark, Spark computes and writes it.

    \b
    Example:
      sdoh training-frame encounters.csv -o frame.parquet --workspace ws
      SDOH_PROFILE=spark sdoh training-frame encounters.parquet -o frame.parquet --workspace ws
    """
    import pyarrow.dataset as ds

    from feature_repo import feature_store, write_training_frame
    from feature_repo.serving.retrieval import CHUNK_EVENTS

    store = feature_store(workspace, settings=run_settings())
    path = write_training_frame(_read_events(events), output, store=store, workspace=workspace,
                                feature_service=feature_service,
                                chunk_events=chunk_events or CHUNK_EVENTS, progress=not quiet)
    written = ds.dataset(path, format="parquet")
    click.echo(f"wrote {path}: {written.count_rows():,} rows x {len(written.schema)} columns")


@click.command("online")
@click.argument("patient_ids", nargs=-1, required=True)
@click.option("--feature-service", type=click.Choice(SERVICES), default=SERVICES[0], show_default=True)
@existing_workspace_option
def online(patient_ids, feature_service, workspace) -> None:
    """Look up patients' current SDOH features in the online store (JSON out).

    \b
    Example:
      sdoh online P000001 P000002 --workspace ws
    """
    from feature_repo.serving.online import workspace_online_features

    frame = workspace_online_features(list(patient_ids), workspace=workspace,
                                      feature_service=feature_service, settings=run_settings())
    click.echo(json.dumps(frame.to_dict(orient="records"), indent=2, default=str))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; anything but loopback needs a token (or "
              "--allow-unauthenticated).")
@click.option("--port", type=int, default=6566, show_default=True, help="Port to listen on.")
@click.option("--boundaries", "boundaries", nargs=2, multiple=True, metavar="YEAR FILE",
              help="Block-group boundary file for lookups by coordinates (repeat for 2010 and "
              "2020); default the demo region's, if the workspace has one.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the bearer token (mode 0600); default env SDOH_SERVER_TOKEN.")
@click.option("--admin-token-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the write endpoints' own token (mode 0600); default env "
              "SDOH_SERVER_ADMIN_TOKEN.")
@click.option("--enable-write-endpoints", is_flag=True,
              help="Keep Feast's /push, /write-to-online-store, /materialize, "
              "/materialize-incremental and chat routes, for the admin token only.")
@click.option("--allow-unauthenticated", is_flag=True,
              help="Serve a non-loopback host without a token (only behind a proxy that "
              "authenticates callers); logged as a warning.")
@click.option("--max-body-bytes", type=click.IntRange(min=1),
              help="Largest request body in bytes (default 1 MiB); larger ones get 413.")
@click.option("--service-cache-seconds", type=click.FloatRange(min=0),
              help="How long the list of feature services is trusted before the registry is read "
              "again (default 30).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@existing_workspace_option
def serve(host, port, boundaries, token_file, admin_token_file, enable_write_endpoints,
          allow_unauthenticated, max_body_bytes, service_cache_seconds, access_log, workspace) -> None:
    """Start the HTTP feature server: Feast's endpoints plus patient and location lookups.

    \b
    Endpoints:
      POST /get-online-features   Feast's, for the feature services
      POST /patients/features     {"patient_ids": ["P000001"], "feature_service": "model_inputs_v1"}
      POST /locations/features    {"locations": ["99001000100", [38.27, -69.62]]}
      GET  /health                registry and online store reachable (no token needed)
      GET  /docs, /openapi.json   API docs (token needed like the data routes)

    \b
    Authentication: with a token (env SDOH_SERVER_TOKEN or --token-file), every route but
    /health needs "Authorization: Bearer <token>" (401 otherwise). On loopback (the default
    host) the server runs without one if none is set; any other --host without a token is
    refused unless --allow-unauthenticated is given (warned about). Feast's write and admin
    routes are removed (404) unless --enable-write-endpoints, and then need their own token
    (env SDOH_SERVER_ADMIN_TOKEN or --admin-token-file); the read token gets 403 there.
    Bodies over --max-body-bytes get 413; strings that are not valid Unicode get 400.

    \b
    Example:
      sdoh serve --workspace ws --port 6566
      curl -s localhost:6566/patients/features -d '{"patient_ids": ["P000001"]}'
    \b
      python -c 'import secrets; print(secrets.token_urlsafe(32))' > token && chmod 600 token
      sdoh serve --workspace ws --host 0.0.0.0 --token-file token
      curl -s host:6566/patients/features -H "Authorization: Bearer $(cat token)" \\
           -d '{"patient_ids": ["P000001"]}'
    """
    from feature_repo import feature_store
    from feature_repo.serving.online import workspace_boundaries
    from feature_repo.serving.server import ServerSettings
    from feature_repo.serving.server import serve as run_server
    from ingestion.geo.boundaries import load_boundary_set

    settings = run_settings()
    limits = {"max_body_bytes": max_body_bytes, "service_cache_seconds": service_cache_seconds}
    exposure = ServerSettings(
        host=host, token=_token(token_file, settings.server_token),
        admin_token=_token(admin_token_file, settings.server_admin_token),
        enable_write_endpoints=enable_write_endpoints, allow_unauthenticated=allow_unauthenticated,
        **{name: value for name, value in limits.items() if value is not None})
    polygons = (load_boundary_set({int(y): p for y, p in boundaries}) if boundaries
                else workspace_boundaries(workspace))
    run_server(feature_store(workspace, settings=settings), workspace, settings=exposure, port=port,
               boundaries=polygons, access_log=access_log)


def _token(path: str | None, setting: SecretStr | None) -> str | None:
    """The token in ``path`` (explicit, wins; checked private), else the one of the settings."""
    from feature_repo.serving.server import load_token
    from ingestion.core.settings import secret

    return load_token(path, environ={}, variable="") if path else secret(setting)
