"""Jobs that chain the steps: link an address-history file, and run the whole demo."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ingestion.core.atomic import write_atomic
from ingestion.core.datasets import geography_timeline_spec
from ingestion.core.errors import InputError
from ingestion.core.settings import Settings
from ingestion.core.workspace import Workspace
from ingestion.demo.fhir_export import encounter_id
from ingestion.demo.publisher_files import DEMO_SOURCES
from ingestion.demo.region import generate_demo_region
from ingestion.demo.replay import CensusReplayServer
from ingestion.gate.publish import PublishResult, new_run_id, publish
from ingestion.gate.rejects import publish_rejects, write_rejects
from ingestion.geo.boundaries import load_boundary_set
from ingestion.geo.linking import (
    link_addresses,
    linkage_funnel,
    read_address_history,
)
from ingestion.geo.pseudonym import patient_key_secret, pseudonymize_timeline
from ingestion.geo.zip_crosswalk import read_zip_crosswalk
from ingestion.jobs.ingest import ingest_acs, ingest_adi_acs, ingest_source, ingest_svi
from ingestion.jobs.patients import PatientImport, import_patients
from ingestion.sources.census_api import CensusClient
from ingestion.sources.geocoder import CensusGeocoder, apply_geocodes, geocode_addresses

log = logging.getLogger(__name__)
DEMO_LEVELS = ("block_group", "tract", "county")


@dataclass(frozen=True)
class LinkResult:
    """A published geography timeline, its rejected input rows and its linkage funnel."""

    published: PublishResult
    rejects_path: Path | None
    n_rejected: int
    funnel: pd.DataFrame


def link_history_file(
    history_path: str | Path,
    boundary_paths: Mapping[int, str | Path],
    *,
    workspace: Workspace,
    zcta_paths: Mapping[int, str | Path] | None = None,
    zip_crosswalk_path: str | Path | None = None,
    zip_crosswalk_year: int | None = None,
    send_addresses_to_census_geocoder: bool = False,
    geocoder: CensusGeocoder | None = None,
    geocoder_benchmark: str = "Public_AR_Current",
    geocoder_vintage: str | None = None,
    pseudonymize: bool = False,
) -> LinkResult:
    """Validate an address-history file, link it to every boundary vintage and publish it.

    Rejected rows are written to ``<workspace>/outputs/address_rejects/<run id>.csv`` with
    file, row, field and reason (nothing is dropped without a record), and
    ``outputs/address_rejects.csv`` points at them once the timeline is published, so it
    always describes the served run. Street addresses without
    coordinates are geocoded only with ``send_addresses_to_census_geocoder=True`` (they then
    leave the machine for the Census Geocoder); otherwise nothing is sent and they are linked
    as ``geocode_failed`` (or by ZIP, with a crosswalk). The timeline is published through the
    validation gate, with pseudonymized patient keys if asked.

    Parameters
    ----------
    history_path : path
        CSV or parquet address history (patient_id, valid_from, valid_to, address, lat/lon).
    boundary_paths : mapping of int to path
        Block-group boundary file per boundary vintage, e.g. ``{2010: ..., 2020: ...}``.
    workspace : Workspace
        Where the timeline is published.
    zcta_paths : mapping of int to path, optional
        ZCTA boundary file per boundary vintage, for the ZCTA of periods with coordinates.
    zip_crosswalk_path : path, optional
        A UDS ZIP-to-ZCTA or HUD ZIP-to-county crosswalk (CSV or xlsx) for periods with a ZIP
        and no coordinates: they get the ZIP's ZCTA (or county), never a tract.
    zip_crosswalk_year : int, optional
        The boundary vintage (2010 or 2020) of a UDS crosswalk's ZCTAs; HUD files say it.
    send_addresses_to_census_geocoder : bool
        Send the streets that have no coordinates (PO boxes excepted) to the Census Geocoder.
    geocoder : CensusGeocoder, optional
        The client to send them with (e.g. another URL); a default one otherwise.
    geocoder_benchmark, geocoder_vintage : str
        The Census Geocoder benchmark and (optional) vintage, e.g. ``Public_AR_Current``.
    pseudonymize : bool
        Publish ``patient_id`` as HMAC-SHA256 with the secret in ``SDOH_PATIENT_KEY_SECRET``
        (see `ingestion.geo.pseudonym`); the rejects file keeps the raw ids, for fixing the input.

    Returns
    -------
    LinkResult

    Raises
    ------
    InputError
        A file is malformed (the message names file, row and field).
    LinkageError
        Linking cannot proceed, or ``pseudonymize`` without a usable secret (checked first).
    GeocoderError
        The geocoder cannot be reached or the consent flag is missing.
    ValidationFailed
        The timeline failed validation: it is quarantined, the served one is kept.

    Examples
    --------
    The synthetic demo region's address histories on its 2010 and 2020 block groups (``demo``):

    >>> result = link_history_file(demo / "patients" / "address_history.csv",
    ...                            {2010: demo / "tiger" / "tl_2010_99_bg10.zip",
    ...                             2020: demo / "tiger" / "tl_2020_99_bg.zip"}, workspace=scratch)
    >>> result.published.dataset, result.published.n_rows
    ('patient_geography', 27)
    """
    secret = patient_key_secret() if pseudonymize else None
    accepted, rejects = read_address_history(history_path)
    run_id = new_run_id()
    # Kept under the run's id; address_rejects.csv points at it once the run has published.
    rejects_path = write_rejects(rejects, workspace, run_id=run_id)
    unplaced = accepted["latitude"].isna() & accepted["street"].notna()
    if send_addresses_to_census_geocoder:
        geocoded = geocode_addresses(
            accepted[unplaced], send_addresses_to_census_geocoder=True,
            benchmark=geocoder_benchmark, vintage=geocoder_vintage, on_batch_error="mark",
            client=geocoder)
        accepted = apply_geocodes(accepted, geocoded)
    elif unplaced.any():
        log.info("%d street addresses have no coordinates and were not geocoded (nothing was "
                 "sent; opt in with send_addresses_to_census_geocoder)", int(unplaced.sum()))
    timeline = link_addresses(
        accepted, load_boundary_set(boundary_paths),
        zcta_boundaries=load_boundary_set(zcta_paths, level="zcta") if zcta_paths else None,
        zip_crosswalk=(read_zip_crosswalk(zip_crosswalk_path, boundary_year=zip_crosswalk_year)
                       if zip_crosswalk_path else None))
    funnel = linkage_funnel(timeline, rejects=rejects)
    if secret is not None:
        timeline = pseudonymize_timeline(timeline, secret=secret)
    published = publish(timeline, geography_timeline_spec(), workspace, merge=False, data_docs=True,
                        run_id=run_id)
    publish_rejects(workspace, run_id=run_id)
    if len(rejects):
        log.warning("%d address rows rejected; see %s", len(rejects), rejects_path)
    return LinkResult(published, rejects_path if len(rejects) else None, len(rejects), funnel)


@dataclass
class DemoSummary:
    """What the demo did, for the closing summary.

    ``patients`` holds, per patient table of the FHIR import (addresses, events, demographics,
    answers, conditions), the source rows read, accepted and rejected; ``patient_rejects`` the
    rejected rows by reason.
    """

    rows_ingested: dict[str, int] = field(default_factory=dict)
    validation: dict[str, str] = field(default_factory=dict)
    funnel: pd.DataFrame | None = None
    patients: dict[str, dict[str, int]] = field(default_factory=dict)
    patient_rejects: dict[str, int] = field(default_factory=dict)
    training_frame_path: Path | None = None
    training_frame_shape: tuple[int, int] | None = None
    online_lookup: pd.DataFrame | None = None
    online_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    data_docs: Path | None = None

    def record(self, label: str, dataset: str, result: PublishResult) -> None:
        """Note a publish: the rows it brought (not those kept from before) and its validation."""
        self.rows_ingested[label] = result.report.n_rows - result.kept_rows
        self.validation[dataset] = result.report.summary()


def ensure_demo_region(workspace: Workspace, *, seed: int, n_patients: int) -> tuple[Path, dict]:
    """Generate the synthetic demo region into the workspace once; return its folder and manifest."""
    root = workspace.raw / "demo_region"
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        # A region generated before it had publisher files is generated again.
        if (manifest.get("seed") == seed and manifest.get("n_patients", n_patients) == n_patients
                and "publisher_files" in manifest):
            return root, manifest
    return root, generate_demo_region(root, seed=seed, n_patients=n_patients)


def ingest_demo_sources(root: Path, manifest: dict, workspace: Workspace, summary: DemoSummary) -> None:
    """Pull the demo ACS and index inputs from a local replay server, then read the ADI files."""
    state, county = manifest["state_fips"], manifest["county_fips"]
    with CensusReplayServer(root / "census_api") as server:
        client = CensusClient(base_url=server.base_url)
        for vintage in sorted(v["year"] for v in manifest["vintages"]):
            for level in DEMO_LEVELS:
                result = ingest_acs(level, vintage, state, county=county, workspace=workspace,
                                    client=client, synthetic=True)
                summary.record(f"acs {vintage} {level}", f"acs_{level}", result)
        ingest_demo_indices(manifest["index_inputs"], state, workspace, client, summary)
    for adi in manifest["adi_files"]:
        done = ingest_source("adi", adi["vintage"], root / adi["path"], workspace=workspace,
                             available_from=dt.date.fromisoformat(adi["available_from"]), synthetic=True)
        summary.record(f"adi {adi['vintage']}", "adi_block_group", done.published)
    ingest_demo_publisher_files(root, workspace, summary)


def ingest_demo_publisher_files(root: Path, workspace: Workspace, summary: DemoSummary) -> None:
    """Read the demo's publisher files with the source kit, from the days `DEMO_SOURCES` gives."""
    for entry in DEMO_SOURCES:
        done = ingest_source(entry.source, entry.release, root / entry.file, workspace=workspace,
                             level=entry.level, available_from=entry.available_from, synthetic=True)
        summary.record(f"{entry.source} {entry.release}", done.published.dataset, done.published)


def ingest_demo_indices(inputs: dict, state: str, workspace: Workspace, client: CensusClient,
                        summary: DemoSummary) -> None:
    """Compute the SVI and the ADI from the demo's ACS, ranked within the (one-county) state."""
    for release in inputs["svi"]["releases"]:
        for level in inputs["svi"]["levels"]:
            result = ingest_svi(level, release, state, reference="state", workspace=workspace,
                                client=client, synthetic=True)
            summary.record(f"svi {release} {level}", f"svi_{level}_state", result)
    for vintage in inputs["adi_computed"]["vintages"]:
        result = ingest_adi_acs(vintage, state, reference="state", workspace=workspace,
                                client=client, synthetic=True)
        summary.record(f"adi computed {vintage}", "adi_acs_block_group_state", result)


def import_demo_patients(root: Path, manifest: dict, workspace: Workspace,
                         summary: DemoSummary) -> PatientImport:
    """Import the demo region's FHIR export as `sdoh patients import --from fhir` does."""
    imported = import_patients("fhir", root / manifest["fhir"]["path"], workspace=workspace)
    summary.patients = imported.counts
    summary.patient_rejects = imported.rejects_by_reason
    if imported.screening is not None:
        summary.record("screened needs", "screened_needs", imported.screening)
    return imported


def labelled_events(events_path: str | Path, encounters_path: str | Path) -> pd.DataFrame:
    """The imported events with the demo's encounter type and outcome label.

    The FHIR export carries neither the demo's encounter type names nor its synthetic outcome
    (a label is not part of a health record), so they are joined back from the region's
    ``encounters.csv`` by encounter id (`ingestion.demo.fhir_export.encounter_id`), patient and
    instant: all three must agree, and every event must find its encounter.

    Parameters
    ----------
    events_path : path
        ``events.csv`` written by `import_patients` (patient_id, event_timestamp, event_id).
    encounters_path : path
        The region's ``encounters.csv`` (patient_id, event_timestamp, encounter_type, outcome).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``event_timestamp`` (UTC), ``encounter_type``, ``outcome``, in the
        order of the events.

    Raises
    ------
    InputError
        An event has no encounter of the same id, patient and instant.

    Examples
    --------
    >>> _ = (scratch.root / "events.csv").write_text(
    ...     "patient_id,event_timestamp,event_id,event_type\\nP1,2021-05-04T10:00:00Z,E0000001,AMB\\n")
    >>> _ = (scratch.root / "encounters.csv").write_text(
    ...     "patient_id,event_timestamp,encounter_type,outcome\\nP1,2021-05-04T10:00:00Z,outpatient,1\\n")
    >>> labelled_events(scratch.root / "events.csv", scratch.root / "encounters.csv").values.tolist()
    [['P1', Timestamp('2021-05-04 10:00:00+0000', tz='UTC'), 'outpatient', 1]]
    """
    events = pd.read_csv(events_path, dtype={"patient_id": str, "event_id": str})
    encounters = pd.read_csv(encounters_path, dtype={"patient_id": str})
    encounters.insert(2, "event_id", [encounter_id(n) for n in range(1, len(encounters) + 1)])
    for table in (events, encounters):
        table["event_timestamp"] = pd.to_datetime(table["event_timestamp"], utc=True)
    keys = ["patient_id", "event_timestamp", "event_id"]
    joined = events[keys].merge(encounters, on=keys, how="left", validate="one_to_one")
    unmatched = joined["encounter_type"].isna()
    if unmatched.any():
        first = joined[unmatched].iloc[0]
        raise InputError(f"{events_path}: {int(unmatched.sum())} event(s) have no encounter of the "
                         f"same id, patient and time in {encounters_path}, e.g. row "
                         f"{joined.index[unmatched][0] + 2} event_id {first['event_id']}")
    return joined.drop(columns="event_id")


def run_demo(
    workspace: Workspace,
    *,
    seed: int = 20221208,
    n_patients: int = 2000,
    online_patient: str | None = None,
    settings: Settings | None = None,
) -> DemoSummary:
    """Run every stage on the synthetic demo region, offline, and summarise what happened.

    Generates the region (once), pulls its ACS through the real client from a local replay
    server, computes the CDC SVI and the ADI from it, ingests its ADI files and its publisher
    files (EJI, Food Access Research Atlas, County Health Rankings), imports the patients from
    the region's FHIR export (`import_patients`: address history, events, demographics,
    screened needs published), links the imported address histories, registers the Feast
    definitions, materializes, writes a training frame for the imported encounters (with the
    demo's encounter type and outcome, `labelled_events`) and answers one online lookup.

    Parameters
    ----------
    workspace : Workspace
        Where everything is written.
    seed, n_patients : int
        Demo region generation settings.
    online_patient : str, optional
        Patient for the online lookup; the first linked patient by default.
    settings : Settings, optional
        The Feast profile and its connections; default read from the environment.

    Returns
    -------
    DemoSummary

    Examples
    --------
    >>> summary = run_demo(Workspace("sdoh_workspace"))  # doctest: +SKIP
    """
    # feature_repo imports ingestion, so it is imported here rather than at module level.
    from feature_repo import apply_definitions, feature_store, materialize, online_features, training_frame

    summary = DemoSummary()
    root, manifest = ensure_demo_region(workspace, seed=seed, n_patients=n_patients)
    log.info("demo region ready in %s (synthetic)", root)
    ingest_demo_sources(root, manifest, workspace, summary)
    tiger = {int(year): root / entry["path"] for year, entry in manifest["tiger"].items()}
    imported = import_demo_patients(root, manifest, workspace, summary)
    linked = link_history_file(imported.files["address_history"], tiger, workspace=workspace)
    summary.rows_ingested["patient address periods"] = linked.published.n_rows
    summary.validation["patient_geography"] = linked.published.report.summary()
    summary.funnel = linked.funnel

    store = feature_store(workspace, settings=settings)
    apply_definitions(store, workspace)
    materialize(store)
    log.info("materialized the online store")

    events = labelled_events(imported.files["events"],
                             root / manifest["patients"]["encounters"]["path"])
    frame = training_frame(events, store=store, workspace=workspace)
    summary.training_frame_path = workspace.outputs / "training_frame.parquet"
    write_atomic(summary.training_frame_path, lambda handle: frame.to_parquet(handle, index=False))
    summary.training_frame_shape = frame.shape

    patient = online_patient or _first_linked_patient(frame)
    summary.online_lookup = online_features([patient], store=store, workspace=workspace)
    view = store.get_feature_view("acs_tract")
    summary.online_tags = {f.name: f.tags for f in view.features if f.name == "pct_below_poverty"}
    docs = workspace.gx / "uncommitted" / "data_docs" / "local_site" / "index.html"
    summary.data_docs = docs if docs.exists() else None
    return summary


def _first_linked_patient(frame: pd.DataFrame) -> str:
    linked = frame.sort_values("event_timestamp").dropna(subset=["acs_tract__geoid"])
    return str(linked["patient_id"].iloc[-1])
