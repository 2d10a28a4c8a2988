"""Read a publisher's area file as its source spec declares it, and conform it to the dataset.

`read_release_file` opens the file as shipped (a CSV or XLSX, maybe a zip member; declared
encoding, label rows above the names, blank filler lines after the data) into text cells
indexed by their line in the file. `conform_release` turns those cells into the published
rows: zero-padded GEOIDs (from the first of several alternative columns the file has, or
built from a pattern's groups), numbers within their declared range (whole where declared),
declared missing codes as typed reasons (in any case where declared), confidence intervals
kept as bounds and turned into 90% MOEs where symmetric. A file may hold several vintages (a
``vintage_column``) or dated designations served as yearly snapshots (`yearly_snapshots`).
Any other cell is an `InputError` naming the file, line and column; nothing is guessed.

Examples
--------
``real_data`` is ../shared/data/real (the test skips when it is absent):

>>> import datetime as dt
>>> from sdoh_sources.publisher import publisher_source
>>> eji = publisher_source("eji")
>>> raw = read_release_file(real_data / "ma_eji2022" / "EJI_2022_Massachusetts_CSV.zip",
...                         eji.release("2022"))
>>> len(raw.rows), raw.blank_rows > 30000
(1474, True)
>>> frame, report = conform_release(raw, eji, eji.release("2022"),
...                                 available_from=dt.date(2022, 8, 10))
>>> frame["tract_geoid"].str.len().unique().tolist(), report.published
([11], 1474)
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import io
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.core.csv_input import read_csv_text
from ingestion.core.datasets import geoid_column, publisher_spec
from ingestion.core.errors import InputError
from sdoh_sources.catalog import NOT_AVAILABLE
from sdoh_sources.publisher import (
    GEOID_LENGTHS,
    Bounds,
    PublisherMeasure,
    PublisherSource,
    SourceRelease,
    z_score,
)

__all__ = ["ConformReport", "ReleaseFile", "conform_release", "pivot_long", "read_release_file",
           "yearly_snapshots"]

# A confidence interval written in one cell, as CDC PLACES does: "( 7.2, 11.3)".
INTERVAL = re.compile(r"^\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)$")
MOE_Z = 1.645  # the 90% level of Census Bureau MOEs
# A designation's value dates from after a snapshot: the value in force then is unknown.
UPDATED_LATER = "value_updated_after_snapshot"


@dataclass(frozen=True)
class ReleaseFile:
    """A release's cells as text, indexed by their line in the file, and what was skipped.

    A long file pivoted to one row per area (`pivot_long`) is indexed by each area's first
    line, and ``lines`` holds the line every cell came from, so that messages still name it.
    """

    name: str  # how messages name the file: "x.zip!member.csv"
    rows: pd.DataFrame
    blank_rows: int
    lines: pd.DataFrame | None = None

    def line(self, row: int, column: str) -> int:
        """The file line of the cell at ``row`` (the index) and ``column``."""
        return row if self.lines is None else int(self.lines.at[row, column])


@dataclass(frozen=True)
class ConformReport:
    """How many rows a file had, how many were set aside and why, and how many are published."""

    rows_read: int  # data lines (for a long file: area x measure x value type lines)
    blank_rows: int
    set_aside: dict[str, int] = field(default_factory=dict)
    published: int = 0
    missing: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> reason -> rows


def _member(path: Path, pattern: str) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if fnmatch.fnmatch(Path(n).name, pattern)]
            if len(names) != 1:
                raise InputError(f"{path}: expected one zip member matching {pattern!r}, found "
                                 f"{names or 'none'} among {archive.namelist()[:10]}: is this "
                                 "the file the release ships?")
            return f"{path}!{names[0]}", archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a zip file ({exc}); the release ships a zip: download "
                         "it again") from exc


def _read_xlsx(name: str, data: bytes, release: SourceRelease, what: str) -> pd.DataFrame:
    fmt = release.format
    skipped = [*range(fmt.names_row - 1), *range(fmt.names_row, fmt.names_row + fmt.skip_rows_after)]
    try:
        frame = pd.read_excel(io.BytesIO(data), sheet_name=fmt.sheet or 0, dtype=str,
                              skiprows=skipped, keep_default_na=False)
    except (ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"{name}: cannot read {what} as XLSX ({exc}); download it again") from exc
    return frame.fillna("")


def read_release_file(path: str | Path, release: SourceRelease) -> ReleaseFile:
    """Read a release's file as shipped into text cells, one row per data line.

    Parameters
    ----------
    path : str or Path
        The file as downloaded: the CSV or XLSX, or the zip holding it (``format.member``).
        A ``.csv`` saved from a release shipped as XLSX is read as CSV.
    release : SourceRelease
        The release's spec (format, encoding, header rows).

    Returns
    -------
    ReleaseFile
        Cells as stripped strings ("" when empty), indexed by line in the file (for XLSX, the
        sheet row); rows with every cell empty (spreadsheet filler) dropped and counted.

    Raises
    ------
    InputError
        The file is missing, empty, not the declared encoding or format, or the zip has not
        exactly one member matching the spec.

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> raw = read_release_file(real_data / "ma_chr2010" / "analytic_data2010__MA_subset.csv",
    ...                         publisher_source("chr").release("2010"))
    >>> raw.rows.index[0], raw.rows["fipscode"].iloc[0]
    (3, '25000')
    """
    path, fmt = Path(path), release.format
    what = f"a {fmt.kind.upper()} file of release {release.release}"
    if fmt.member:
        name, data = _member(path, fmt.member)
    else:
        name, data = str(path), None
    # A CSV saved from the publisher's XLSX (same sheet layout) is read as CSV.
    kind = "csv" if Path(name).suffix.lower() == ".csv" else fmt.kind
    if kind == "xlsx":
        frame = _read_xlsx(name, path.read_bytes() if data is None else data, release, what)
    else:
        frame = read_csv_text(name, what=what, data=data, encoding=fmt.encoding,
                              delimiter=fmt.delimiter, names_row=fmt.names_row,
                              skip_rows_after=fmt.skip_rows_after)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda column: column.str.strip())
    frame.index = pd.RangeIndex(len(frame)) + fmt.names_row + fmt.skip_rows_after + 1
    blank = (frame == "").all(axis=1)
    return ReleaseFile(name=name, rows=frame[~blank], blank_rows=int(blank.sum()))


def _fail(raw: ReleaseFile, line: int, column: str, value: str, expected: str) -> InputError:
    return InputError(f"{raw.name}: line {line}, field {column}: {value!r} is not {expected}; "
                      "fix the row or download the file again")


def _first_bad(raw: ReleaseFile, bad: pd.Series, column: str, expected: str) -> None:
    if bad.any():
        row = bad.index[bad.to_numpy()][0]
        raise _fail(raw, raw.line(row, column), column, raw.rows.at[row, column], expected)


def _geoids(raw: ReleaseFile, release: SourceRelease) -> pd.Series:
    """Zero-padded GEOIDs of the release's level, or an error naming the first bad cell."""
    rule, width = release.geoid, GEOID_LENGTHS[release.geography_level]
    if rule.pattern:
        return _pattern_geoids(raw, rule.column, rule.pattern, width)
    parts = rule.parts or ()
    if rule.column:
        cells = {rule.column: (raw.rows[rule.column], width)}
    else:
        cells = {p.column: (raw.rows[p.column], p.width) for p in parts}
    for column, (values, size) in cells.items():
        _first_bad(raw, ~values.str.fullmatch(rf"\d{{1,{size}}}"), column,
                   f"a code of at most {size} digits")
    geoids = pd.Series("", index=raw.rows.index)
    for values, size in cells.values():
        geoids = geoids + values.str.zfill(size)
    return geoids


def _pattern_geoids(raw: ReleaseFile, column: str, pattern: str, width: int) -> pd.Series:
    """GEOIDs joined from the groups of ``pattern`` in ``column`` (a GISJOIN's codes)."""
    groups = raw.rows[column].str.extract(f"^(?:{pattern})$").fillna("")
    geoids = pd.Series("", index=raw.rows.index)
    for group in groups.columns:
        geoids = geoids + groups[group]
    _first_bad(raw, ~geoids.str.fullmatch(rf"\d{{{width}}}"), column,
               f"a code matching {pattern} whose groups make a {width}-digit GEOID")
    return geoids


def _numbers(raw: ReleaseFile, column: str, codes: dict[str, str], *,
             low: float | None = None, high: float | None = None,
             integer: bool = False) -> tuple[pd.Series, pd.Series]:
    """A column's numbers and, where a declared code stands instead, its missing reason."""
    text = raw.rows[column]
    reason = text.map(codes)
    number = pd.to_numeric(text.where(reason.isna()), errors="coerce")
    allowed = ", ".join(repr(c) for c in codes) or "none"
    _first_bad(raw, reason.isna() & number.isna(), column,
               f"a number or a missing code declared in the source spec ({allowed})")
    below = number < low if low is not None else False
    above = number > high if high is not None else False
    _first_bad(raw, pd.Series(below | above, index=text.index).astype(bool), column,
               f"within the measure's range {low} to {high}")
    if integer:
        _first_bad(raw, number.notna() & (number % 1 != 0), column, "a whole number")
    return number.astype(float), reason.astype(object).where(reason.notna(), None)


def _bounds(raw: ReleaseFile, bounds: Bounds, value: pd.Series,
            codes: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """The interval's low and high bounds (NaN where the value is missing)."""
    if bounds.column is None:
        low, _ = _numbers(raw, bounds.low, codes)
        high, _ = _numbers(raw, bounds.high, codes)
        column = bounds.high
    else:
        text, column = raw.rows[bounds.column], bounds.column
        parsed = text.str.extract(INTERVAL).astype(float)
        coded = text.isin(list(codes))
        _first_bad(raw, parsed[0].isna() & ~coded, column,
                   'an interval like "( 7.2, 11.3)" or a declared missing code')
        low, high = parsed[0], parsed[1]
    slack = bounds.symmetric_within
    outside = value.notna() & ((low > high) | (value < low - slack) | (value > high + slack))
    _first_bad(raw, outside, column, "an interval holding the estimate")
    return low.where(value.notna()), high.where(value.notna())


def _measure_columns(raw: ReleaseFile, measure: PublisherMeasure, release: SourceRelease,
                     codes: dict[str, str]) -> dict[str, pd.Series]:
    name, index = measure.name, raw.rows.index
    if measure.name in release.absent:
        nothing = pd.Series(np.nan, index=index)
        out = {f"{name}{s}": nothing for s in measure.suffixes if s != "_missing"}
        return out | {f"{name}_missing": pd.Series(NOT_AVAILABLE, index=index, dtype=object)}
    column = release.columns.get(name, measure.column)
    low, high = measure.value_range
    value, reason = _numbers(raw, column, codes, low=low, high=high, integer=measure.integer)
    out = {name: value}
    if measure.moe is not None:
        moe, _ = _numbers(raw, measure.moe.column, codes, low=0)
        out[f"{name}_moe"] = (moe * MOE_Z / z_score(measure.moe.level)).where(value.notna())
    if measure.bounds is not None:
        b = measure.bounds
        ci_low, ci_high = _bounds(raw, b, value, codes)
        symmetric = (ci_low + ci_high - 2 * value).abs() <= b.symmetric_within + 1e-9
        half = (ci_high - ci_low) / 2
        out[f"{name}_moe"] = (half * MOE_Z / z_score(b.level)).where(symmetric)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = ci_low, ci_high
    return out | {f"{name}_missing": reason}


def _set_aside(raw: ReleaseFile, release: SourceRelease) -> tuple[pd.Series, dict, pd.Series]:
    """Rows that are not areas of the level (declared filters, summary rows), by reason.

    Returns the rows kept, the counts set aside by reason, and the kept rows' GEOIDs (read
    only on rows the filters keep: a filtered row may hold another level's code).
    """
    keep, counts = pd.Series(True, index=raw.rows.index), {}
    for rule in release.exclude:
        listed = raw.rows[rule.column].isin(rule.equals or rule.other_than)
        hit = (listed if rule.equals else ~listed) & keep
        counts[rule.reason] = int(hit.sum())
        keep &= ~hit
    geoids = _geoids(ReleaseFile(raw.name, raw.rows[keep], raw.blank_rows), release)
    if release.geoid.summary:
        hit = geoids.str.fullmatch(release.geoid.summary)
        counts[f"summary row, not an area of the level (GEOID matches {release.geoid.summary})"] = \
            int(hit.sum())
        keep[hit.index[hit.to_numpy()]] = False
    return keep, counts, geoids[keep[geoids.index]]


def _fitted(raw: ReleaseFile, source: PublisherSource, release: SourceRelease) -> SourceRelease:
    """The release with the GEOID rule that fits the file's header (the first alternative)."""
    rule = release.geoid.fitting(raw.rows.columns)
    if rule is None and release.geoid.alternatives:
        options = " or ".join(str(list(a.columns)) for a in release.geoid.alternatives)
        raise InputError(f"{raw.name}: header: no GEOID column(s) {options}; columns are "
                         f"{list(raw.rows.columns)[:12]}...: is this {source.title} "
                         f"{release.release} at {release.geography_level}?")
    return release if rule is None else release.model_copy(update={"geoid": rule})


def _canonical_codes(raw: ReleaseFile, columns: list[str], codes: dict[str, str]) -> ReleaseFile:
    """Cells that are a missing code in another case ("ph"), written as the spec writes it."""
    spelling = {code.upper(): code for code in codes}
    rows = raw.rows.copy()
    for column in columns:
        rows[column] = rows[column].str.upper().map(spelling).fillna(rows[column])
    return replace(raw, rows=rows)


def _required(source: PublisherSource, release: SourceRelease) -> list[str]:
    columns = [*release.geoid.columns, *(r.column for r in release.exclude)]
    if release.vintage_column:
        columns.append(release.vintage_column)
    if release.snapshots:
        rule = release.snapshots
        columns += [c for c in (rule.start, rule.end, rule.values_from) if c]
    for m in source.measures_at(release.geography_level):
        if m.name in release.absent:
            continue
        columns.append(release.columns.get(m.name, m.column))
        if m.moe is not None:
            columns.append(m.moe.column)
        if m.bounds is not None:
            columns += [c for c in (m.bounds.low, m.bounds.high, m.bounds.column) if c]
    return list(dict.fromkeys(columns))


def _row_vintages(raw: ReleaseFile, release: SourceRelease) -> pd.Series | int:
    """Each row's vintage: its ``vintage_column`` year, else the release's one vintage."""
    if not release.vintage_column:
        return release.vintage_key
    text = raw.rows[release.vintage_column]
    _first_bad(raw, ~text.str.fullmatch(r"(?:19|20)\d\d"), release.vintage_column, "a year")
    return text.astype("int64")


def _check_unique(name: str, keys: pd.DataFrame) -> None:
    """One row per area and vintage, or an error naming the lines of the first repeat."""
    repeated = keys[keys.duplicated(keep=False)]
    if not repeated.empty:
        first = tuple(repeated.iloc[0])
        lines = repeated.index[(repeated == first).all(axis=1)].tolist()
        raise InputError(f"{name}: lines {lines}: GEOID {first[0]} appears more than once in "
                         f"vintage {first[1]}; a release holds one row per area and vintage: fix "
                         "the file or download it again")


def _dates(raw: ReleaseFile, column: str, fmt: str, *, required: bool) -> pd.Series:
    """A column's dates (NaT where empty and allowed), or an error naming the first bad cell."""
    text = raw.rows[column]
    day = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = day.isna() & ((text != "") | required)
    _first_bad(raw, bad, column, f"a date like {dt.date(2019, 6, 15).strftime(fmt)}"
               f"{'' if required else ' or empty'}")
    return day


def yearly_snapshots(raw: ReleaseFile, rows: pd.DataFrame, release: SourceRelease,
                     available_from: dt.date) -> pd.DataFrame:
    """The areas of a file of dated designations as in force on January 1 of each year.

    Vintage Y, released on January 1 of Y, holds every area the file names: the flag measure
    is 1 when a row of the area was in force that day (start on or before it, end after it or
    empty), else 0; each other measure is the largest value of those rows whose values date
    from that day or before (``values_from``), missing as ``none_reason`` when no row was in
    force and as ``value_updated_after_snapshot`` when the values in force then are unknown.
    Years run from ``first_year`` to the year of ``available_from``.

    Parameters
    ----------
    raw : ReleaseFile
        The rows kept (their dates are read from here).
    rows : pandas.DataFrame
        The same rows' GEOID, boundary year, synthetic flag and measures (conformed).
    release : SourceRelease
        A release with ``snapshots``.
    available_from : datetime.date
        The day the file became available: the last snapshot is January 1 of its year.

    Raises
    ------
    InputError
        A date is not in the declared format, or a row ends before it starts (file, line and
        column named).

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> hpsa = publisher_source("hpsa_primary_care")
    >>> release = hpsa.release("2025")
    >>> cells = pd.DataFrame({"HPSA Designation Date": ["06/15/2019"], "Withdrawn Date": [""],
    ...                       "HPSA Designation Last Update Date": [""]}, index=[2])
    >>> rows = pd.DataFrame({"county_geoid": ["25025"], "boundary_year": [2020],
    ...                      "synthetic": [False], "hpsa_pc_score": [14.0],
    ...                      "hpsa_pc_score_missing": [None]}, index=[2])
    >>> snap = yearly_snapshots(ReleaseFile("f.csv", cells, 0), rows, release, dt.date(2021, 5, 1))
    >>> last = snap.tail(3)
    >>> last["vintage"].tolist(), last["hpsa_pc_designated"].tolist(), last["hpsa_pc_score"].tolist()
    ([2019, 2020, 2021], [0.0, 1.0, 1.0], [nan, 14.0, 14.0])
    """
    rule, key = release.snapshots, geoid_column(release.geography_level)
    if available_from.year < rule.first_year:
        raise InputError(f"{raw.name}: available {available_from}, before the first snapshot "
                         f"(January 1, {rule.first_year}) of release {release.release}")
    start = _dates(raw, rule.start, rule.date_format, required=True)
    end = _dates(raw, rule.end, rule.date_format, required=False)
    _first_bad(raw, end < start, rule.end, f"a day after the {rule.start}")
    since = (_dates(raw, rule.values_from, rule.date_format, required=False).fillna(start)
             if rule.values_from else start)
    measures = [c for c in rows.columns if f"{c}_missing" in rows.columns]
    areas = pd.Index(sorted(rows[key].unique()), name=key)
    first = rows.drop_duplicates(key).set_index(key)
    snapshots = []
    for year in range(rule.first_year, available_from.year + 1):
        day = pd.Timestamp(year, 1, 1)
        live = (start <= day) & (end.isna() | (end > day))
        known = rows[live & (since <= day)].groupby(key)
        snap = pd.DataFrame(index=areas)
        snap[rule.flag] = areas.isin(rows.loc[live, key]).astype(float)
        snap[f"{rule.flag}_missing"] = None
        for m in measures:
            value = known[m].max().reindex(areas)
            reason = known[f"{m}_missing"].first().reindex(areas)
            reason = reason.where(areas.isin(list(known.groups)), UPDATED_LATER)
            reason = reason.where(snap[rule.flag] == 1, rule.none_reason)
            snap[m], snap[f"{m}_missing"] = value, reason.where(value.isna(), None)
        snap["vintage"] = year
        snap["release_ts"] = pd.Timestamp(day, tz="UTC").as_unit("us")
        snapshots.append(snap)
    out = pd.concat(snapshots).reset_index()
    return out.join(first[["boundary_year", "synthetic"]], on=key)


def _check_header(raw: ReleaseFile, source: PublisherSource, release: SourceRelease,
                  columns: list[str]) -> None:
    absent = [c for c in columns if c not in raw.rows.columns]
    if absent:
        raise InputError(f"{raw.name}: header: missing column(s) {absent}; columns are "
                         f"{list(raw.rows.columns)[:12]}...: is this {source.title} "
                         f"{release.release} at {release.geography_level}?")


def _long_key(release: SourceRelease, measure: PublisherMeasure) -> str:
    """How messages name a measure's lines: ``MeasureId=ACCESS2, DataValueTypeID=CrdPrv``."""
    layout, key = release.format.long, measure.long_key
    return ", ".join(f"{c}={v}" for c, v in ((layout.measure, key.measure),
                                             (layout.value_type, key.value_type)) if c)


def _long_cells(release: SourceRelease, measure: PublisherMeasure) -> dict[str, str]:
    """The pivoted columns of a measure, by the long file's column each comes from."""
    layout = release.format.long
    sources = [layout.value, *((layout.low, layout.high) if measure.bounds else ())]
    return {c: f"{c} ({_long_key(release, measure)})" for c in sources}


def _as_wide(source: PublisherSource, release: SourceRelease
             ) -> tuple[PublisherSource, SourceRelease]:
    """The spec of the wide file a long release pivots to: each measure reads its cells."""
    read = [m.name for m in source.measures if m.name not in release.absent]
    measures = []
    for m in source.measures:
        if m.name in read:
            cells = list(_long_cells(release, m).values())
            bounds = m.bounds and m.bounds.model_copy(
                update={"column": None, "low": cells[1], "high": cells[2]})
            m = m.model_copy(update={"column": cells[0], "bounds": bounds})
        measures.append(m)
    wide = release.model_copy(update={"format": release.format.model_copy(update={"long": None})})
    return source.model_copy(update={"measures": tuple(measures)}), wide


def _no_repeats(raw: ReleaseFile, lines: pd.DataFrame, key: list[str]) -> None:
    """No two lines of a long file hold the same area, measure and value type."""
    repeated = lines[lines.duplicated(key, keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        same = (repeated[key] == first[key]).all(axis=1)
        raise InputError(f"{raw.name}: lines {repeated.index[same].tolist()}: "
                         f"{', '.join(f'{c} {first[c]}' for c in key)} appears more than once; a "
                         "long file holds one line per area, measure and value type: fix the "
                         "file or download it again")


def _gaps(raw: ReleaseFile, source: PublisherSource, release: SourceRelease,
          areas: pd.DataFrame, cells: pd.Series, measure: PublisherMeasure) -> None:
    """An area without a line of a measure reads as "" only where "" is a declared code."""
    gap = cells.isna()
    if gap.any() and "" not in {**source.missing_codes, **release.missing_codes}:
        row = gap.index[gap.to_numpy()][0]
        area = ", ".join(f"{c} {v}" for c, v in areas.loc[row].items())
        raise InputError(f"{raw.name}: the area of line {row} ({area}) has no line for "
                         f"{_long_key(release, measure)}; the spec reads one for every "
                         'area: fix the file, or declare "" a missing code')


def pivot_long(raw: ReleaseFile, source: PublisherSource, release: SourceRelease
               ) -> tuple[ReleaseFile, dict[str, int]]:
    """A long file's lines pivoted to one row per area, and the lines set aside by reason.

    Parameters
    ----------
    raw : ReleaseFile
        The long file's lines (`read_release_file`).
    source, release : PublisherSource, SourceRelease
        The source spec and a release with ``format.long``.

    Returns
    -------
    (ReleaseFile, dict)
        One row per area (indexed by its first line) with its GEOID and filter columns and a
        column per measure cell, named after the file's column and the measure's key, e.g.
        ``Data_Value (MeasureId=ACCESS2, DataValueTypeID=CrdPrv)``; ``lines`` gives each cell's
        line. An area without a line of a measure gets an empty cell (a missing code where the
        spec declares ""). And the count of lines of measures the spec does not read.

    Raises
    ------
    InputError
        A key column is absent; an area has two lines of one measure and value type; or an area
        lacks a line the spec reads and "" is not a declared missing code.

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> places = publisher_source("places")
    >>> long = places.release(2022, "county", layout="long")
    >>> rows = pd.DataFrame({"LocationID": ["25009", "25009"], "MeasureId": ["ACCESS2", "BINGE"],
    ...                      "DataValueTypeID": ["CrdPrv", "CrdPrv"], "Data_Value": ["8.3", "15.5"],
    ...                      "Low_Confidence_Limit": ["6.7", "15.0"],
    ...                      "High_Confidence_Limit": ["10.0", "16.0"]}, index=[2, 3])
    >>> wide, aside = pivot_long(ReleaseFile("county.csv", rows, 0), places, long)
    >>> wide.rows.at[2, "Data_Value (MeasureId=ACCESS2, DataValueTypeID=CrdPrv)"], list(aside.values())
    ('8.3', [1])
    """
    release = _fitted(raw, source, release)
    layout, rows = release.format.long, raw.rows
    area = list(dict.fromkeys([*release.geoid.columns, *(r.column for r in release.exclude)]))
    _check_header(raw, source, release, [*area, *layout.columns])
    key_columns = [c for c in (layout.measure, layout.value_type) if c]
    owners = {tuple(k for k in (m.long_key.measure, m.long_key.value_type) if k): m
              for m in source.measures_at(release.geography_level) if m.name not in release.absent}
    owner = pd.Series(list(zip(*(rows[c] for c in key_columns), strict=True)), index=rows.index, dtype=object)
    owner = owner.map({k: m.name for k, m in owners.items()})
    read = owner.notna()
    set_aside = {f"line of a {'/'.join(key_columns)} the spec does not read": int((~read).sum())}
    _no_repeats(raw, rows, [*area, *key_columns])
    lines = rows[read].assign(_line=rows.index[read], _owner=owner[read])
    first_line = lines.groupby(area, sort=False)["_line"].min()
    areas = first_line.index.to_frame(index=False).set_axis(first_line.to_numpy())
    cells, where = {}, {c: areas.index.to_series(index=areas.index) for c in area}
    for m in owners.values():
        mine = lines[lines["_owner"] == m.name].set_index(area).reindex(first_line.index)
        names = _long_cells(release, m)
        for column, name in names.items():
            cells[name] = mine[column].set_axis(areas.index)
            where[name] = mine["_line"].set_axis(areas.index)
        _gaps(raw, source, release, areas, cells[names[layout.value]], m)
    frame = pd.concat([areas, pd.DataFrame(cells, index=areas.index).fillna("")], axis=1)
    positions = pd.DataFrame(where, index=areas.index)
    positions = positions.fillna({c: positions[area[0]] for c in cells}).astype(int)
    return replace(raw, rows=frame, lines=positions), set_aside


def _conform_long(raw: ReleaseFile, source: PublisherSource, release: SourceRelease, *,
                  available_from: dt.date, synthetic: bool) -> tuple[pd.DataFrame, ConformReport]:
    """`conform_release` of a long file: pivot it, then conform it as the wide file it is."""
    wide_raw, lines_aside = pivot_long(raw, source, release)
    wide_source, wide_release = _as_wide(source, release)
    frame, report = conform_release(wide_raw, wide_source, wide_release,
                                    available_from=available_from, synthetic=synthetic)
    return frame, replace(report, rows_read=len(raw.rows),
                          set_aside={**lines_aside, **report.set_aside})


def conform_release(raw: ReleaseFile, source: PublisherSource, release: SourceRelease, *,
                    available_from: dt.date, synthetic: bool = False
                    ) -> tuple[pd.DataFrame, ConformReport]:
    """The published rows of a release file, and a report of what was read and set aside.

    Parameters
    ----------
    raw : ReleaseFile
        The file's cells (`read_release_file`).
    source, release : PublisherSource, SourceRelease
        The source spec and the release the file is.
    available_from : datetime.date
        The day the release became available: every row's event timestamp (for snapshots,
        the last snapshot's year; each snapshot is released on its January 1).
    synthetic : bool
        Marks the demo region's rows.

    Returns
    -------
    (pandas.DataFrame, ConformReport)
        Rows in the columns of `ingestion.core.datasets.publisher_spec`, and the counts.

    Raises
    ------
    InputError
        A column the spec names is absent; a GEOID cell is not a code of its width; a value is
        neither a number in its range nor a declared missing code; an interval does not hold
        its estimate; a year or date cell is malformed; or two rows share a GEOID and vintage.
        Each names the file, line and column.

    Examples
    --------
    >>> from sdoh_sources.publisher import publisher_source
    >>> chr = publisher_source("chr")
    >>> raw = read_release_file(real_data / "ma_chr2010" / "analytic_data2010__MA_subset.csv",
    ...                         chr.release("2010"))
    >>> frame, report = conform_release(raw, chr, chr.release("2010"),
    ...                                 available_from=dt.date(2010, 2, 17))
    >>> report.rows_read, report.published, frame["county_geoid"].iloc[0]
    (15, 14, '25001')
    """
    release = _fitted(raw, source, release)
    if release.format.long is not None:
        return _conform_long(raw, source, release, available_from=available_from,
                             synthetic=synthetic)
    required = _required(source, release)
    _check_header(raw, source, release, required)
    keep, set_aside, geoids = _set_aside(raw, release)
    kept = replace(raw, rows=raw.rows[keep])
    codes = {**source.missing_codes, **release.missing_codes}
    if source.missing_codes_ignore_case:
        keys = {*release.geoid.columns, *(r.column for r in release.exclude)}
        kept = _canonical_codes(kept, [c for c in required if c not in keys], codes)
    key = geoid_column(release.geography_level)
    columns = {key: geoids, "boundary_year": release.boundary_vintage,
               "vintage": _row_vintages(kept, release),
               "release_ts": pd.Timestamp(available_from, tz="UTC").as_unit("us"),
               "synthetic": synthetic}
    flag = release.snapshots.flag if release.snapshots else None
    for measure in source.measures_at(release.geography_level):
        if measure.name != flag:
            columns |= _measure_columns(kept, measure, release, codes)
    frame = pd.DataFrame(columns, index=kept.rows.index)
    if release.snapshots:
        frame = yearly_snapshots(kept, frame, release, available_from)
    else:
        _check_unique(raw.name, frame[[key, "vintage"]])
    frame = frame.reset_index(drop=True)
    spec = publisher_spec(source, release.geography_level)
    missing = {m: frame[f"{m}_missing"].value_counts().to_dict() for m in spec.measures}
    report = ConformReport(rows_read=len(raw.rows), blank_rows=raw.blank_rows,
                           set_aside=set_aside, published=len(frame),
                           missing={m: r for m, r in missing.items() if r})
    return frame[list(spec.column_names)], report
