"""Ingest verbs: pull or read a source, derive its measures, publish them through the gate.

Each verb is one flow: a client of `ingestion.sources` fetches or reads, a module of
`ingestion.derive` computes the published rows, and `ingestion.gate.publish` validates them and
swaps them in (or quarantines them, leaving what is served untouched).

Examples
--------
``census`` answers from a local replay of the synthetic demo region (state 99), ``scratch`` is
an empty workspace; leave ``client`` out to ask the real API:

>>> ingest_acs("tract", 2021, "99", workspace=scratch, client=census).n_rows
14
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ingestion.core.datasets import acs_spec, adi_acs_spec, publisher_spec, svi_spec
from ingestion.core.errors import InputError
from ingestion.core.geography import normalize_states
from ingestion.core.workspace import Workspace
from ingestion.derive.acs import API_GEOGRAPHY, build_acs_measures, check_vintage
from ingestion.derive.adi import GEOID, adi_acs_dataset, adi_variables
from ingestion.derive.svi import GEOID_WIDTHS, compute_svi, svi_dataset, svi_variables
from ingestion.derive.svi import LEVELS as SVI_LEVELS
from ingestion.gate.publish import PublishResult, publish
from ingestion.sources.census_api import CensusClient, get_acs
from ingestion.sources.http import FROM_ENVIRONMENT, cache_root
from ingestion.sources.publisher_download import download_release
from ingestion.sources.publisher_file import ConformReport, conform_release, read_release_file
from ingestion.sources.svi_file import check_svi_file, read_svi_file
from sdoh_sources import load_catalog
from sdoh_sources.adi_computed import load_adi_method
from sdoh_sources.publisher import PublisherSource, SourceRelease, publisher_source
from sdoh_sources.svi import load_svi_catalog

log = logging.getLogger(__name__)


def ingest_acs(
    level: str,
    vintage: int,
    state: str | list[str] | None,
    *,
    workspace: Workspace,
    county: str | list[str] | None = None,
    client: CensusClient | None = None,
    synthetic: bool = False,
    reliability_rule: str | None = None,
) -> PublishResult:
    """Pull the catalog's ACS variables, build the measures and publish them through the gate.

    Parameters
    ----------
    level : str
        "block_group", "tract", "county", "zcta" (national: state must be None) or "state".
    vintage : int
        ACS 5-year vintage; no default on purpose.
    state : str, list of str or None
        State(s) as FIPS, postal code or name; None for every state, DC and PR.
    workspace : Workspace
        Where staged, published and quarantined data live.
    county : str or list of str, optional
        Restrict to these counties (3-digit FIPS) of a single state.
    client : CensusClient, optional
        A configured client (base URL, key); a default one otherwise.
    synthetic : bool
        Marks the demo region's rows.
    reliability_rule : str, optional
        A reliability rule of the catalog; the catalog's default otherwise.

    Returns
    -------
    PublishResult

    Raises
    ------
    CatalogError
        If ``vintage`` is not in the release calendar (checked before any request).
    CensusApiError
        If the API cannot be reached or answers with an error.
    ValidationFailed
        If the built dataset fails its suite (it is quarantined; served data is unchanged).

    Examples
    --------
    >>> ingest_acs("tract", 2021, "99", workspace=scratch, client=census).dataset
    'acs_tract'
    """
    check_vintage(vintage)
    if level == "zcta" and state is not None:
        raise InputError("ZCTAs are not nested in states: the API answers for the whole nation; "
                         "pull them with state=None (`--state all`)")
    variables = list(load_catalog().acs.variables_for(level, vintage))
    tidy = get_acs(API_GEOGRAPHY[level], variables, vintage, state, county=county, client=client)
    log.info("ACS %s %s: %d geographies, %d variables", vintage, level, tidy["GEOID"].nunique(),
             len(variables))
    frame = build_acs_measures(tidy, level=level, vintage=vintage, synthetic=synthetic,
                               reliability_rule=reliability_rule)
    return publish(frame, acs_spec(level), workspace, data_docs=True)


def _check_reference_states(reference: str, state: str | list[str] | None) -> None:
    """Ranks within the nation need every state: a state list would give state-wide ranks."""
    if reference == "nation" and state is not None:
        raise InputError("ranks within the nation need every state: pass state=None (`--state all`)")


def ingest_svi(
    level: str,
    release: int,
    state: str | list[str] | None,
    *,
    reference: str,
    workspace: Workspace,
    client: CensusClient | None = None,
    synthetic: bool = False,
) -> PublishResult:
    """Compute the SVI from the ACS inputs of its release and publish it through the gate.

    The rows' event time is the release day of the ACS vintage the SVI is computed from: the
    index could be computed from that day on.

    Parameters
    ----------
    level : {"tract", "county"}
    release : int
        SVI release (2020, 2022); no default.
    state : str, list of str or None
        State(s) as FIPS, postal code or name; None for every state (required for the nation
        as reference area).
    reference : {"state", "nation"}
        The area ranks are computed within.
    workspace : Workspace
    client : CensusClient, optional
    synthetic : bool
        Marks the demo region's rows.

    Returns
    -------
    PublishResult

    Raises
    ------
    InputError
        A national reference with a state list (ranks would not be national).

    Examples
    --------
    >>> result = ingest_svi("tract", 2020, "99", reference="state", workspace=scratch, client=census)
    >>> result.dataset, result.n_rows
    ('svi_tract_state', 14)
    """
    if level not in SVI_LEVELS:
        raise InputError(f"SVI is published for {list(SVI_LEVELS)}, not {level!r}")
    _check_reference_states(reference, state)
    rel = load_svi_catalog().release(release)
    variables = sorted({v[:-1] for v in svi_variables(release)})
    inputs = get_acs(API_GEOGRAPHY[level], variables, rel.acs_vintage, state, client=client,
                     output="wide")
    svi = compute_svi(inputs, release=release, reference=reference, level=level,
                      states=None if state is None else normalize_states(state))
    released = pd.Timestamp(load_catalog().release("acs5", rel.acs_vintage).release_ts)
    frame = svi_dataset(svi, level=level, reference=reference, release=release, release_ts=released,
                        origin="computed_from_acs", synthetic=synthetic)
    return publish(frame, svi_spec(level, reference), workspace, data_docs=True)


def ingest_svi_file(
    path: str | Path,
    *,
    release: int,
    reference: str,
    available_from: dt.date,
    workspace: Workspace,
) -> PublishResult:
    """Read an SVI file as CDC publishes it and publish its ranks through the gate.

    CDC's US files rank within the nation, its state files within the state: say which with
    ``reference``; the file's ranks must show the same (`apparent_reference`). CDC's download
    page gives no machine-readable release day, so the rows' event time is ``available_from``
    (when the file became available to you).

    Raises
    ------
    InputError
        For a file `read_svi_file` refuses, one without the published columns (RPL_THEMES,
        ...; all named), or one whose ranks look computed within another reference area.

    Examples
    --------
    CDC's Delaware state file of SVI 2020 (``real_data``: real publisher files):

    >>> ingest_svi_file(real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv", release=2020,
    ...                 reference="state", available_from=dt.date(2022, 12, 22), workspace=scratch).n_rows
    259
    """
    path = Path(path)
    svi = read_svi_file(path)
    svi = svi.rename(columns={"FIPS": "GEOID"})
    check_svi_file(svi, path=path, reference=reference)
    level = GEOID_WIDTHS[svi["GEOID"].str.len().max()]
    frame = svi_dataset(svi, level=level, reference=reference, release=release,
                        release_ts=pd.Timestamp(available_from, tz="UTC"), origin="publisher_file")
    return publish(frame, svi_spec(level, reference), workspace, data_docs=True)


def group_quarters_inputs(vintage: int, state, client: CensusClient | None) -> pd.DataFrame:
    """The block groups' group-quarters counts the Atlas suppression rules need, by GEOID.

    The source (decennial dataset and variable) comes from the catalog for the boundary
    vintage of ``vintage``; a vintage without one is refused rather than left unsuppressed.

    Examples
    --------
    >>> group_quarters_inputs(2020, "99", census).columns.tolist()
    ['GEOID', 'group_quarters_population']
    """
    boundary = load_catalog().release("acs5", vintage).boundary_vintage
    method = load_adi_method().suppression
    source = method.group_quarters_source(boundary)
    if source is None:
        raise InputError(f"ACS {vintage} is on {boundary} block groups, for which the catalog has no "
                         "verified group-quarters source (sdoh_sources/catalog/adi_computed.yaml "
                         "group_quarters_sources); the Atlas suppression rules cannot be applied, "
                         "so no ADI is computed. Use a vintage on 2020 boundaries (2020 or later).")
    own = client is None
    client = client if client is not None else CensusClient()
    try:
        table = client.get_table(source.year, source.dataset, [source.variable], "block group",
                                 state=state)
    finally:
        if own:
            client.close()
    return table[[GEOID, source.variable]].rename(
        columns={source.variable: method.group_quarters_column})


def ingest_adi_acs(
    vintage: int,
    state: str | list[str] | None,
    *,
    reference: str,
    workspace: Workspace,
    client: CensusClient | None = None,
    synthetic: bool = False,
) -> PublishResult:
    """Compute the ADI from ACS block groups (both variants) and publish it through the gate.

    Parameters
    ----------
    vintage : int
        ACS 5-year vintage on 2020 block groups (group quarters come from the 2020 Census).
    state : str, list of str or None
        State(s); None for every state (required for the nation as reference area).
    reference : {"nation", "state"}
        The area scores are scaled and ranked within.
    workspace : Workspace
    client : CensusClient, optional
    synthetic : bool
        Marks the demo region's rows.

    Returns
    -------
    PublishResult

    Raises
    ------
    InputError
        A national reference with a state list, or a vintage without a group-quarters source.

    Examples
    --------
    >>> result = ingest_adi_acs(2021, "99", reference="state", workspace=scratch, client=census)
    >>> result.dataset, result.n_rows
    ('adi_acs_block_group_state', 43)
    """
    _check_reference_states(reference, state)
    variables = sorted({v[:-1] for v in adi_variables(vintage)})
    inputs = get_acs("block group", variables, vintage, state, client=client, output="wide")
    quarters = group_quarters_inputs(vintage, state, client)
    inputs = inputs.merge(quarters, on=GEOID, how="left")
    frame = adi_acs_dataset(inputs, vintage=vintage, reference=reference, synthetic=synthetic,
                            states=None if state is None else normalize_states(state))
    return publish(frame, adi_acs_spec(reference), workspace, data_docs=True)


@dataclass(frozen=True)
class SourceIngest:
    """What `ingest_source` read, set aside and published."""

    file: str
    report: ConformReport
    published: PublishResult


def availability(release: SourceRelease, given: dt.date | None) -> dt.date:
    """The day a release's rows count from: the documented day, or the user's.

    A user's day may be later than the documented one (the file reached them later), never
    earlier: the values did not exist before.

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> availability(publisher_source("chr").release("2010"), None)
    datetime.date(2010, 2, 17)
    """
    documented = release.available_from
    if documented is None and given is None:
        raise InputError(f"release {release.release} has no documented availability day "
                         f"({release.available.citation.strip()}): pass available_from "
                         "(`--available-from YYYY-MM-DD`), the day the file became available to you")
    if documented is not None and given is not None and given < documented:
        raise InputError(f"available_from {given} is before release {release.release} became "
                         f"public on {documented} ({release.available.citation.strip()}): rows "
                         "cannot count from before their values existed")
    return given or documented


def release_of_file(source: PublisherSource, path: str | Path, *, level: str | None = None,
                    layout: str | None = None) -> SourceRelease:
    """The release a file's name tells (its ``file_name`` pattern), where the user gives none.

    Raises
    ------
    InputError
        The name matches no release's ``file_name``, or several: the release must be given.

    Examples
    --------
    >>> release_of_file(publisher_source("adi"), "MD_2020_ADI_Census Block Group_v3.2.csv").release
    '2020'
    """
    found = [r for r in source.releases if r.names_file(path)
             and (level is None or r.geography_level == level)
             and (layout is None or r.format.layout == layout)]
    if len(found) == 1:
        return found[0]
    patterns = {r.release: r.file_name for r in source.releases if r.file_name}
    told = (f"the name matches the releases {[r.release for r in found]}" if found else
            f"the name matches none of the release names {patterns}" if patterns else
            f"{source.source}'s spec gives no file names")
    raise InputError(f"{path}: cannot tell the release of {source.source} from the file name "
                     f"({told}): pass the release (`--release`)")


def ingest_source(
    name: str,
    release: str | int | None,
    path: str | Path | None = None,
    *,
    workspace: Workspace,
    level: str | None = None,
    layout: str | None = None,
    available_from: dt.date | None = None,
    synthetic: bool = False,
    cache_dir: str | Path | None = None,
    mirror: str | None = None,
) -> SourceIngest:
    """Read a publisher's file as its source spec declares it and publish it through the gate.

    Parameters
    ----------
    name : str
        A source of ``sdoh_sources/catalog/sources`` (``eji``, ``chr``, ...).
    release : str or int or None
        The release, e.g. 2022; no default on purpose. None: the one the file's name tells
        (the releases' ``file_name``; Neighborhood Atlas ADI files).
    path : str or Path, optional
        The file as the publisher ships it (zip, CSV or XLSX). Left out: downloaded from the
        release's URL into the verified cache (`download_release`).
    workspace : Workspace
        Where staged, published and quarantined data live.
    level : str, optional
        The geography level, when the source has the release at several.
    layout : {"wide", "long"}, optional
        ``long`` for a long table where the release also ships a wide file (the default).
    available_from : datetime.date, optional
        The day the file became available to you; required when the spec states the release
        day as unknown, and never earlier than a documented day.
    synthetic : bool
        Marks the demo region's rows.
    cache_dir : str or Path, optional
        Where downloads are kept (default: ``SDOH_CACHE_DIR``, else the workspace's cache).
    mirror : str, optional
        A server with the publisher's paths, for downloads.

    Returns
    -------
    SourceIngest
        The file read, the rows read and set aside (`ConformReport`), and the publication.

    Raises
    ------
    CatalogError
        No such source or release.
    SourceDownloadError
        The download failed after its retries (the URL and what to do are named).
    InputError
        The file breaks its spec (file, line and column named), the availability day is
        missing or earlier than the documented one, or no release is given and the file's name
        tells none.
    ValidationFailed
        The rows fail their suite (quarantined; served data is unchanged).

    Examples
    --------
    >>> done = ingest_source("chr", 2010, real_data / "ma_chr2010" / "analytic_data2010__MA_subset.csv",
    ...                      workspace=scratch)
    >>> done.published.dataset, done.report.rows_read, done.published.n_rows
    ('chr_county', 15, 14)

    A Neighborhood Atlas ADI file of the synthetic demo region, its release told by its name:

    >>> ingest_source("adi", None, demo / "adi" / "DS_2020_ADI_Census_Block_Group_v4_0.csv",
    ...               workspace=scratch, available_from=dt.date(2022, 9, 1)).published.n_rows
    43
    """
    source = publisher_source(name)
    if release is None and path is None:
        raise InputError(f"{name}: pass the release to download (`--release`), or the file")
    spec_release = (release_of_file(source, path, level=level, layout=layout) if release is None
                    else source.release(release, level, layout=layout))
    day = availability(spec_release, available_from)
    if path is None:
        path = download_release(source, spec_release, mirror=mirror,
                                cache_dir=cache_dir or cache_root(FROM_ENVIRONMENT)
                                or workspace.root / "cache")
    raw = read_release_file(path, spec_release)
    frame, report = conform_release(raw, source, spec_release, available_from=day,
                                    synthetic=synthetic)
    log.info("%s %s (%s): %d rows read, %d blank lines skipped, set aside %s, %d to publish",
             name, spec_release.release, spec_release.geography_level, report.rows_read,
             report.blank_rows, report.set_aside or "none", report.published)
    published = publish(frame, publisher_spec(source, spec_release.geography_level), workspace,
                        data_docs=True)
    return SourceIngest(file=raw.name, report=report, published=published)
