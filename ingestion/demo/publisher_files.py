"""Publisher area files of the demo region, in each publisher's layout, with synthetic values.

`write_publisher_files` writes, for the demo region's tracts and county, the files
the source kit (`ingestion.sources.publisher_file`) reads, with the quirks of the real ones:

* ``eji/EJI_2022_Demo_State_CSV.zip``: CDC/ATSDR's EJI 2022 state download: the data CSV
  (CDC's 118 column names, 2010 tracts, ``COUNTYFP`` unpadded, empty cells where a value was
  not computed, CRLF, then bare-comma filler lines) beside a data dictionary;
* ``eji/EJI_2024_Demo_State_CSV.zip``: EJI 2024 on 2020 tracts, keyed on ``GEOID_2020``,
  ``-999`` where a value was not computed, with the climate burden module ``RPL_CBM``. The real
  2024 header was not at hand: these are the 2022 names with ``GEOID_2020`` and ``RPL_CBM``;
* ``food_access/FoodAccessResearchAtlasData2019.csv``: a CSV save of ERS's Atlas sheet (its 147
  column names, 2010 tracts, UTF-8 with a byte-order mark, CRLF, the text ``NULL`` where no one
  is beyond a distance); tracts without population are not in the Atlas;
* ``chr/analytic_data2010.csv``: County Health Rankings 2010 (labels row, then ``vNNN_*``
  names; the state row ``99000`` before its county), the columns of the measures the spec reads;
* ``ruca/2020-rural-urban-commuting-area-codes-census-tracts.csv``: ERS's RUCA 2020 codes by
  2020 tract (ERS's 27 columns, CRLF; urban core 1, rest of the urban area 2, rural tracts 7
  or 10, water tracts 99: not coded);
* ``places/PLACES__County_Data__GIS_Friendly_Format___2022_release.csv``: CDC PLACES 2022 by
  county, GIS-friendly (model-based prevalences, 95% intervals written as ``"( 7.2, 11.3)"``).

Values follow the areas' ACS shares (poverty, no vehicle, unemployment, uninsured, minority,
limited English) and rurality, so deprived tracts rank higher; they are drawn from ``seed`` and
describe no real place. `DEMO_SOURCES` says which files the demo ingests, and from which day.

Examples
--------
>>> [f"{s.source} {s.release}" for s in DEMO_SOURCES]
['eji 2022', 'eji 2024', 'food_access 2019', 'chr 2010', 'ruca 2020', 'places 2022']
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["DEMO_SOURCES", "DemoSource", "FILES", "write_publisher_files"]

STATE_NAME = "Demo State"
STATE_POSTAL = "DS"
COUNTY_NAME = "Synthetic County"
FILES = {
    ("eji", "2022"): "eji/EJI_2022_Demo_State_CSV.zip",
    ("eji", "2024"): "eji/EJI_2024_Demo_State_CSV.zip",
    ("food_access", "2019"): "food_access/FoodAccessResearchAtlasData2019.csv",
    ("chr", "2010"): "chr/analytic_data2010.csv",
    # The tract codes: the demo links no ZCTAs, so the ZIP file would reach no patient.
    ("ruca", "2020"): "ruca/2020-rural-urban-commuting-area-codes-census-tracts.csv",
    ("places", "2022"): "places/PLACES__County_Data__GIS_Friendly_Format___2022_release.csv",
}


class DemoSource(NamedTuple):
    """A publisher file the demo ingests: its spec, release, level, file and availability day.

    ``available_from`` None takes the day cited in the spec; a date is the demo's own
    assumption, for a release whose spec states its day as unknown.
    """

    source: str
    release: str
    level: str
    file: str
    available_from: dt.date | None


DEMO_SOURCES = (
    DemoSource("eji", "2022", "tract", FILES["eji", "2022"], None),  # cited: 2023-08-24
    # DEMO ASSUMPTION (spec: unknown): a week after ACS 2018-2022, its input, was released on
    # 2023-12-07, so the demo's last encounters read EJI 2024. The real file came later.
    DemoSource("eji", "2024", "tract", FILES["eji", "2024"], dt.date(2023, 12, 14)),
    # DEMO ASSUMPTION (spec: unknown): a day in 2021, after ACS 2014-2018 (an input).
    DemoSource("food_access", "2019", "tract", FILES["food_access", "2019"], dt.date(2021, 3, 1)),
    DemoSource("chr", "2010", "county", FILES["chr", "2010"], None),  # cited: 2010-02-17
    # DEMO ASSUMPTION (spec: unknown): ERS said "no earlier than Spring 2025"; the demo's
    # encounters end in 2023, so the demo dates the codes early enough to serve them.
    DemoSource("ruca", "2020", "tract", FILES["ruca", "2020"], dt.date(2023, 6, 1)),
    # DEMO ASSUMPTION (spec: unknown): a day in autumn 2022, as CDC's PLACES releases come.
    DemoSource("places", "2022", "county", FILES["places", "2022"], dt.date(2022, 10, 1)),
)

# -- EJI ----------------------------------------------------------------------------------------

# CDC's EJI 2022 state file header (EJI_2022_Massachusetts.csv), in order.
EJI_2022_COLUMNS = tuple("""
STATEFP COUNTYFP TRACTCE AFFGEOID GEOID NAME COUNTY StateAbbr StateDesc Location E_TOTPOP M_TOTPOP
E_DAYPOP SPL_EJI RPL_EJI SPL_SER RPL_SER EPL_OZONE EPL_PM EPL_DSLPM EPL_TOTCR SPL_EBM_THEME1
RPL_EBM_DOM1 EPL_NPL EPL_TRI EPL_TSD EPL_RMP EPL_COAL EPL_LEAD SPL_EBM_THEME2 RPL_EBM_DOM2 EPL_PARK
EPL_HOUAGE EPL_WLKIND SPL_EBM_THEME3 RPL_EBM_DOM3 EPL_RAIL EPL_ROAD EPL_AIRPRT SPL_EBM_THEME4
RPL_EBM_DOM4 EPL_IMPWTR SPL_EBM_THEME5 RPL_EBM_DOM5 SPL_EBM RPL_EBM EPL_MINRTY SPL_SVM_DOM1
RPL_SVM_DOM1 EPL_POV200 EPL_NOHSDP EPL_UNEMP EPL_RENTER EPL_HOUBDN EPL_UNINSUR EPL_NOINT
SPL_SVM_DOM2 RPL_SVM_DOM2 EPL_AGE65 EPL_AGE17 EPL_DISABL EPL_LIMENG SPL_SVM_DOM3 RPL_SVM_DOM3
EPL_MOBILE EPL_GROUPQ SPL_SVM_DOM4 RPL_SVM_DOM4 SPL_SVM RPL_SVM F_BPHIGH F_ASTHMA F_CANCER F_MHLTH
F_DIABETES F_HVM RPL_HVM E_OZONE E_PM E_DSLPM E_TOTCR E_NPL E_TRI E_TSD E_RMP E_COAL E_LEAD E_PARK
E_HOUAGE E_WLKIND E_RAIL E_ROAD E_AIRPRT E_IMPWTR EP_MINRTY EP_POV200 EP_NOHSDP EP_UNEMP EP_RENTER
EP_HOUBDN EP_UNINSUR EP_NOINT EP_AGE65 EP_AGE17 EP_DISABL EP_LIMENG EP_MOBILE EP_GROUPQ EP_BPHIGH
EP_ASTHMA EP_CANCER EP_MHLTH EP_DIABETES EPL_BPHIGH EPL_ASTHMA EPL_CANCER EPL_DIABETES EPL_MHLTH
""".split())
EJI_2024_RENAMED = {"GEOID": "GEOID_2020"}
EJI_2024_ADDED = {"RPL_HVM": "RPL_CBM"}  # new column -> inserted after this one
EJI_FILLER_LINES = 3000  # CDC's files end with tens of thousands of bare-comma lines
EJI_MISSING = {"2022": "", "2024": "-999"}
# A populated tract whose health vulnerability module is not computed, by release.
EJI_NOT_COMPUTED = {"2022": ("000900", "RPL_HVM"), "2024": ("001100", "RPL_HVM")}
ZIP_TIME = (2024, 11, 4, 16, 37, 0)  # fixed member times: byte-identical zips

# -- Food Access Research Atlas ------------------------------------------------------------------

FOOD_GROUPS = ("pop", "lowi", "kids", "seniors", "white", "black", "asian", "nhopi", "aian",
               "omultir", "hisp", "hunv", "snap")
FOOD_DISTANCES = ("half", "1", "10", "20")
FOOD_TRACT_TOTALS = ("LOWI", "Kids", "Seniors", "White", "Black", "Asian", "NHOPI", "AIAN",
                     "OMultir", "Hispanic", "HUNV", "SNAP")
FOOD_HEAD = ("CensusTract State County Urban Pop2010 OHU2010 GroupQuartersFlag NUMGQTRS PCTGQTRS "
             "LILATracts_1And10 LILATracts_halfAnd10 LILATracts_1And20 LILATracts_Vehicle HUNVFlag "
             "LowIncomeTracts PovertyRate MedianFamilyIncome LA1and10 LAhalfand10 LA1and20 "
             "LATracts_half LATracts1 LATracts10 LATracts20 LATractsVehicle_20 LAPOP1_10 LAPOP05_10 "
             "LAPOP1_20 LALOWI1_10 LALOWI05_10 LALOWI1_20").split()
# ERS's Atlas sheet, in order: the head, then per distance and group a count and a share.
FOOD_COLUMNS = (*FOOD_HEAD,
                *(f"la{g}{d}{s}" for d in FOOD_DISTANCES for g in FOOD_GROUPS for s in ("", "share")),
                *(f"Tract{t}" for t in FOOD_TRACT_TOTALS))
# Share of the population beyond each distance from a supermarket, by area type (percent).
FOOD_BEYOND = {"urban": {"half": 55.0, "1": 12.0, "10": 0.0, "20": 0.0},
               "rural": {"half": 97.0, "1": 88.0, "10": 22.0, "20": 4.0}}

# -- County Health Rankings ----------------------------------------------------------------------

CHR_IDS = (("State FIPS Code", "statecode"), ("County FIPS Code", "countycode"),
           ("5-digit FIPS Code", "fipscode"), ("State Abbreviation", "state"), ("Name", "county"),
           ("Release Year", "year"), ("County Ranked (Yes=1/No=0)", "county_ranked"))
CHR_PARTS = (("raw value", "rawvalue"), ("numerator", "numerator"),
             ("denominator", "denominator"), ("CI low", "cilow"), ("CI high", "cihigh"))
# (code, label, value at national poverty, change per point of poverty, CI half-width, decimals)
CHR_MEASURES = (
    ("v001", "Premature death", 6900.0, 180.0, 380.0, 1),
    ("v002", "Poor or fair health", 0.14, 0.006, 0.02, 4),
    ("v009", "Adult smoking", 0.19, 0.004, 0.025, 4),
    ("v011", "Adult obesity", 0.26, 0.003, 0.024, 4),
    ("v003", "Uninsured adults", None, None, 0.012, 4),  # from the ACS share
    ("v004", "Primary care provider rate", 72.0, -1.5, None, 8),
    ("v023", "Unemployment", None, None, 0.003, 4),  # from the ACS share
    ("v024", "Children in poverty", None, None, 0.03, 4),  # from the ACS share
    ("v043", "Violent crime", 330.0, 9.0, None, 1),
)
CHR_LABELS = {"v004": ("Primary care provider rate per 100000 population", "Primary care provider rate")}
CHR_ASYMMETRIC = "v011"  # a modelled interval, not centred on the estimate (like CHR's)

# -- RUCA and PLACES -----------------------------------------------------------------------------

# ERS's 2020 tract CSV header in file order (2020-rural-urban-commuting-area-codes-census-tracts.csv).
RUCA_TRACT_2020_COLUMNS = (
    "TractFIPS23", "CountyFIPS23", "CountyCode23", "CountyName23", "TractFIPS20", "TractCode20",
    "TractName20", "CountyFIPS20", "CountyCode20", "CountyName20", "StateFIPS20", "StateName20",
    "UrbanAreaCode20", "UrbanAreaName20", "UrbanCore", "UrbanCoreType", "PrimaryRUCA",
    "PrimaryRUCADescription", "PrimaryDestinationCode", "PrimaryDestinationName", "SecondaryRUCA",
    "SecondaryRUCADescription", "SecondaryDestinationCode", "SecondaryDestinationName",
    "Population", "LandArea", "PopDensity",
)
# (primary, secondary) codes by area type: the urban core commutes within itself, the rest of
# the urban area to it, rural tracts are small-town or rural in turn; water tracts are not coded.
RUCA_TRACT_CODES = {"core": ("1", "1"), "urban": ("2", "2.1"), "rural": (("7", "7.1"), ("10", "10.1")),
                    "water": ("99", "99")}
# PLACES measures in CDC's column order, with the crude prevalence at national poverty (percent).
PLACES_MEASURES = {
    "ACCESS2": 10.0, "ARTHRITIS": 25.0, "BINGE": 16.5, "BPHIGH": 31.0, "BPMED": 76.0,
    "CANCER": 7.0, "CASTHMA": 10.0, "CERVICAL": 83.0, "CHD": 6.2, "CHECKUP": 76.0,
    "CHOLSCREEN": 86.0, "COLON_SCREEN": 70.0, "COPD": 6.5, "COREM": 42.0, "COREW": 38.0,
    "CSMOKING": 14.5, "DENTAL": 64.0, "DEPRESSION": 20.0, "DIABETES": 11.0, "GHLTH": 17.0,
    "HIGHCHOL": 32.0, "KIDNEY": 3.0, "LPA": 25.0, "MAMMOUSE": 76.0, "MHLTH": 15.0,
    "OBESITY": 32.0, "PHLTH": 11.5, "SLEEP": 35.0, "STROKE": 3.1, "TEETHLOST": 12.5,
}
PLACES_SUFFIXES = ("CrudePrev", "Crude95CI", "AdjPrev", "Adj95CI")
NATIONAL_POVERTY = 0.13


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _phi(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in np.ravel(x)])


def _text(values, decimals: int) -> list[str]:
    """Numbers as the publishers write them: rounded, no trailing zeros, empty for NaN."""
    return ["" if pd.isna(v) else f"{round(float(v), decimals):.{decimals}f}".rstrip("0").rstrip(".")
            for v in values]


def _deprivation(areas: pd.DataFrame) -> np.ndarray:
    """A tract score from the ACS shares (about N(0, 1) nationally): higher is more deprived."""
    parts = (areas["poverty"] / NATIONAL_POVERTY, areas["no_vehicle"] / 0.085,
             areas["unemployed"] / 0.055, areas["uninsured"] / 0.09)
    return np.log(np.clip(sum(parts) / len(parts), 0.05, None)).to_numpy()


def _write_csv(path: Path, rows: list[list[str]], *, newline: str, bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(",".join(_quote(c) for c in row) for row in rows) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())


def _quote(cell: str) -> str:
    return f'"{cell}"' if "," in cell or '"' in cell else cell


def _write_zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)


# -- EJI ------------------------------------------------------------------------------------------


def _eji_columns(release: str) -> list[str]:
    columns = [EJI_2024_RENAMED.get(c, c) if release == "2024" else c for c in EJI_2022_COLUMNS]
    if release == "2024":
        for new, after in ((v, k) for k, v in EJI_2024_ADDED.items()):
            columns.insert(columns.index(after) + 1, new)
    return columns


def _eji_values(tracts: pd.DataFrame, release: str, seed: int) -> dict[str, np.ndarray]:
    """The modelled EJI columns per tract (NaN for a tract without population)."""
    rng = _rng(seed, f"eji-{release}")
    n, z = len(tracts), _deprivation(tracts)
    rural = (tracts["area_type"] == "rural").to_numpy()

    def rank(score: np.ndarray) -> np.ndarray:
        return np.round(_phi(score + rng.normal(0, 0.2, n)), 4)

    svm = rank(0.15 + 0.9 * z)
    ebm = rank(np.where(rural, -0.5, 0.45) + 0.3 * z)
    hvm = rank(0.1 + 0.6 * z)
    minority = rank((tracts["minority"].to_numpy() - 0.4) / 0.2)
    values = {
        "RPL_SVM": svm, "RPL_EBM": ebm, "RPL_HVM": hvm, "EPL_MINRTY": minority,
        "RPL_SER": rank(0.6 * z + np.where(rural, -0.2, 0.3)),
        "RPL_EJI": rank(0.1 + 0.7 * z + np.where(rural, -0.2, 0.3)),
        "EPL_LIMENG": rank((tracts["limited_english"].to_numpy() - 0.04) / 0.04),
        "RPL_CBM": rank(np.where(rural, 0.4, -0.1) + 0.2 * z),
        "E_PM": np.round(np.clip(np.where(rural, 0.4, 2.5) + rng.normal(0, 0.5, n), 0, None), 2),
        "E_OZONE": np.round(np.clip(np.where(rural, 1.5, 4.0) + rng.normal(0, 1.0, n), 0, None), 2),
        "E_TOTPOP": tracts["population"].to_numpy(dtype=float),
        "E_DAYPOP": np.round(tracts["population"].to_numpy(dtype=float) * rng.uniform(0.7, 1.5, n)),
    }
    values["M_TOTPOP"] = np.round(12 + 0.09 * values["E_TOTPOP"])
    return values


def _eji_other(column: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """A column the specs do not read: a value of the kind its prefix names."""
    if column.startswith("F_"):
        return rng.integers(0, 2, n).astype(float)
    if column.startswith("SPL_"):
        return np.round(rng.uniform(0.5, 6.0, n), 4)
    if column.startswith(("RPL_", "EPL_")):
        return np.round(rng.uniform(0, 1, n), 4)
    return np.round(rng.uniform(0, 60, n), 2)  # E_ and EP_: counts, days, percents


def _eji_rows(tracts: pd.DataFrame, release: str, seed: int) -> list[list[str]]:
    columns, missing = _eji_columns(release), EJI_MISSING[release]
    values = _eji_values(tracts, release, seed)
    other = _rng(seed, f"eji-other-{release}")
    empty = (tracts["population"] == 0).to_numpy()
    cells: dict[str, list[str]] = {}
    for column in columns[10:]:
        data = values.get(column)
        data = _eji_other(column, other, len(tracts)) if data is None else data.copy()
        if column not in ("E_TOTPOP", "M_TOTPOP"):
            data[empty] = np.nan
        text = _text(data, 4)
        cells[column] = [missing if t == "" else t for t in text]
    not_computed, column = EJI_NOT_COMPUTED[release]
    cells[column] = [missing if tract == not_computed else c
                     for tract, c in zip(tracts["tract"], cells[column], strict=True)]
    rows = [columns]
    for k, tract in enumerate(tracts["tract"]):
        geoid = f"{tracts['geoid'].iloc[k]}"
        number = f"{int(tract[:4])}" + (f".{tract[4:]}" if tract[4:] != "00" else "")
        location = f"Census Tract {number}, {COUNTY_NAME}, {STATE_NAME}"[:48]  # CDC's cut
        ids = [geoid[:2], str(int(geoid[2:5])), tract, f"1400000US{geoid}", geoid, number,
               COUNTY_NAME.removesuffix(" County"), STATE_POSTAL, STATE_NAME, location]
        rows.append(ids + [cells[c][k] for c in columns[10:]])
    return rows


def _eji_dictionary(columns: list[str]) -> bytes:
    lines = ["VARIABLE_NAME,DESCRIPTION", *(f"{c},SYNTHETIC demo column {c}" for c in columns)]
    return ("\r\n".join(lines) + "\r\n").encode()


def _write_eji(out_dir: Path, tracts: pd.DataFrame, release: str, seed: int) -> None:
    rows = _eji_rows(tracts, release, seed)
    filler = "," * (len(rows[0]) - 1)
    body = "\r\n".join(",".join(_quote(c) for c in row) for row in rows)
    data = (body + "\r\n" + (filler + "\r\n") * EJI_FILLER_LINES).encode()
    state = STATE_NAME.replace(" ", "_")
    _write_zip(out_dir / FILES["eji", release],
               {f"EJI_DATADICTIONARY_{release}.csv": _eji_dictionary(rows[0]),
                f"EJI_{release}_{state}.csv": data})


# -- Food Access Research Atlas -------------------------------------------------------------------


def _food_shares(tracts: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Percent of the population beyond each distance; NaN (NULL) where no one is."""
    n = len(tracts)
    shares = {}
    for distance in FOOD_DISTANCES:
        base = np.array([FOOD_BEYOND[a][distance] for a in tracts["area_type"]])
        share = np.clip(base * rng.lognormal(0, 0.3, n), 0, 100)
        # The urban core (the eastern tracts, ZIP 00011) has a supermarket within a mile.
        core = tracts["core"].to_numpy() & (distance != "half")
        shares[distance] = np.where(core | (share < 0.01), np.nan, np.round(share, 2))
    return shares


def _food_frame(tracts: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = _rng(seed, "food-access-2019")
    tracts = tracts[tracts["population"] > 0].reset_index(drop=True)  # the Atlas omits them
    pop = tracts["population"].to_numpy(dtype=float)
    urban = (tracts["area_type"] == "urban").to_numpy()
    minority = tracts["minority"].to_numpy()
    fractions = {"pop": 1.0, "lowi": np.clip(2.2 * tracts["poverty"].to_numpy(), 0, 0.9),
                 "kids": 0.22, "seniors": 0.16, "white": 1 - minority, "black": 0.4 * minority,
                 "asian": 0.15 * minority, "nhopi": 0.005 * minority, "aian": 0.02 * minority,
                 "omultir": 0.1 * minority, "hisp": 0.33 * minority,
                 "hunv": tracts["no_vehicle"].to_numpy() / 2.5, "snap": 0.12}
    shares = _food_shares(tracts, rng)
    out = {"CensusTract": tracts["geoid"], "State": STATE_NAME, "County": COUNTY_NAME,
           "Urban": urban.astype(int), "Pop2010": pop, "OHU2010": np.round(pop / 2.4),
           "GroupQuartersFlag": 0, "NUMGQTRS": np.round(pop * 0.01), "PCTGQTRS": 1.0}
    for distance in FOOD_DISTANCES:
        for group in FOOD_GROUPS:
            count = np.round(pop * fractions[group] * shares[distance] / 100)
            out[f"la{group}{distance}"] = count
            out[f"la{group}{distance}share"] = np.round(100 * count / pop, 2)
        out[f"lapop{distance}share"] = shares[distance]
    for total, group in zip(FOOD_TRACT_TOTALS, FOOD_GROUPS[1:], strict=True):
        out[f"Tract{total}"] = np.round(pop * fractions[group])
    frame = pd.DataFrame(out)
    return _food_flags(frame, tracts, urban)


def _food_flags(frame: pd.DataFrame, tracts: pd.DataFrame, urban: np.ndarray) -> pd.DataFrame:
    """ERS's tract flags: low income, and low access (500 people or a third beyond the distance)."""
    poverty = 100 * tracts["poverty"].to_numpy()
    low_income = (poverty >= 20) | (tracts["deprivation"].to_numpy() > 0.6)

    def low_access(distance: str) -> np.ndarray:
        people, share = frame[f"lapop{distance}"], frame[f"lapop{distance}share"]
        return ((people >= 500) | (share >= 33)).fillna(False).to_numpy()

    la = {d: low_access(d) for d in FOOD_DISTANCES}
    vehicle = (frame["lahunvhalf"] >= 100).fillna(False).to_numpy()
    la_1_10, la_half_10 = np.where(urban, la["1"], la["10"]), np.where(urban, la["half"], la["10"])
    la_1_20 = np.where(urban, la["1"], la["20"])
    frame = frame.assign(
        PovertyRate=np.round(poverty, 1), LowIncomeTracts=low_income.astype(int),
        MedianFamilyIncome=np.round(82000 * np.exp(-0.35 * tracts["deprivation"].to_numpy())),
        LA1and10=la_1_10.astype(int), LAhalfand10=la_half_10.astype(int), LA1and20=la_1_20.astype(int),
        LATracts_half=la["half"].astype(int), LATracts1=la["1"].astype(int),
        LATracts10=la["10"].astype(int), LATracts20=la["20"].astype(int),
        LATractsVehicle_20=(vehicle | la["20"]).astype(int), HUNVFlag=vehicle.astype(int),
        LILATracts_1And10=(low_income & la_1_10).astype(int),
        LILATracts_halfAnd10=(low_income & la_half_10).astype(int),
        LILATracts_1And20=(low_income & la_1_20).astype(int),
        LILATracts_Vehicle=(low_income & (vehicle | la["20"])).astype(int))
    for name, group, near, far in (("LAPOP1_10", "pop", "1", "10"), ("LAPOP05_10", "pop", "half", "10"),
                                   ("LAPOP1_20", "pop", "1", "20"), ("LALOWI1_10", "lowi", "1", "10"),
                                   ("LALOWI05_10", "lowi", "half", "10"), ("LALOWI1_20", "lowi", "1", "20")):
        frame[name] = np.where(urban, frame[f"la{group}{near}"], frame[f"la{group}{far}"])
    return frame


def _write_food_access(out_dir: Path, tracts: pd.DataFrame, seed: int) -> None:
    frame = _food_frame(tracts, seed)
    rows = [list(FOOD_COLUMNS)]
    for _, record in frame[list(FOOD_COLUMNS)].iterrows():
        rows.append(["NULL" if pd.isna(v) else (v if isinstance(v, str) else _text([v], 2)[0])
                     for v in record])
    _write_csv(out_dir / FILES["food_access", "2019"], rows, newline="\r\n", bom=True)


# -- County Health Rankings -----------------------------------------------------------------------


def _chr_value(code: str, base: float | None, slope: float | None, county: pd.Series) -> float:
    from_acs = {"v003": county["uninsured"] * 1.25, "v023": county["unemployed"],
                "v024": county["child_poverty"]}
    if code in from_acs:
        return float(from_acs[code])
    return base + slope * 100 * (county["poverty"] - NATIONAL_POVERTY)


def _chr_cells(county: pd.Series, year: str, ranked: str) -> list[str]:
    geoid = county["geoid"]
    name = STATE_NAME if geoid.endswith("000") else COUNTY_NAME
    cells = [geoid[:2], geoid[2:], geoid, STATE_POSTAL, name, year, ranked]
    population = float(county["population"])
    for code, _, base, slope, half, decimals in CHR_MEASURES:
        value = round(_chr_value(code, base, slope, county), min(decimals, 4))
        low = high = float("nan")
        if half is not None:
            skew = 0.35 * half if code == CHR_ASYMMETRIC else 0.0
            low, high = round(value - half + skew, 4), round(value + half + skew, 4)
        numerator = round(value * population / (100_000 if decimals in (1, 8) else 1))
        cells += [*_text([value], decimals), str(numerator), str(round(population)),
                  *_text([low, high], 4)]
    return cells


def _write_chr(out_dir: Path, counties: pd.DataFrame) -> None:
    labels, names = [a for a, _ in CHR_IDS], [b for _, b in CHR_IDS]
    for code, label, *_ in CHR_MEASURES:
        first, rest = CHR_LABELS.get(code, (f"{label} raw value", label))
        labels += [first, *(f"{rest} {part}" for part, _ in CHR_PARTS[1:])]
        names += [f"{code}_{suffix}" for _, suffix in CHR_PARTS]
    state = counties.iloc[0].copy()
    state["geoid"] = state["geoid"][:2] + "000"
    rows = [labels, names, _chr_cells(state, "2010", ""),
            *(_chr_cells(c, "2010", "1") for _, c in counties.iterrows())]
    _write_csv(out_dir / FILES["chr", "2010"], rows, newline="\n")


# -- RUCA and PLACES ------------------------------------------------------------------------------


def _ruca_tract_codes(tract: pd.Series, position: int) -> tuple[str, str]:
    if tract["area_type"] == "rural":
        return RUCA_TRACT_CODES["rural"][position % 2]
    if tract["area_type"] == "urban":
        return RUCA_TRACT_CODES["core" if tract["core"] else "urban"]
    return RUCA_TRACT_CODES["water"]


def _write_ruca_tracts(out_dir: Path, tracts: pd.DataFrame) -> None:
    rows = [list(RUCA_TRACT_2020_COLUMNS)]
    for position, (_, tract) in enumerate(tracts.iterrows()):
        primary, secondary = _ruca_tract_codes(tract, position)
        values = {"TractFIPS23": tract["geoid"], "TractFIPS20": tract["geoid"],
                  "CountyFIPS20": tract["geoid"][:5], "StateFIPS20": tract["geoid"][:2],
                  "StateName20": STATE_NAME, "CountyName20": f"{COUNTY_NAME}, {STATE_POSTAL}",
                  "PrimaryRUCA": primary, "SecondaryRUCA": secondary,
                  "Population": str(round(tract["population"]))}
        rows.append([values.get(c, "") for c in RUCA_TRACT_2020_COLUMNS])
    _write_csv(out_dir / FILES["ruca", "2020"], rows, newline="\r\n")


def _interval(low: float, high: float) -> str:
    return f"({low:4.1f}, {high:4.1f})"


def _write_places(out_dir: Path, counties: pd.DataFrame, seed: int, centroid: tuple[float, float]) -> None:
    rng = _rng(seed, "places-2022")
    header = ["StateAbbr", "StateDesc", "CountyName", "CountyFIPS", "TotalPopulation",
              *(f"{m}_{s}" for m in PLACES_MEASURES for s in PLACES_SUFFIXES), "Geolocation"]
    rows = [header]
    for _, county in counties.iterrows():
        excess = 100 * (county["poverty"] - NATIONAL_POVERTY)
        cells = [STATE_POSTAL, STATE_NAME, COUNTY_NAME.removesuffix(" County"), county["geoid"],
                 str(round(county["population"]))]
        for base in PLACES_MEASURES.values():
            crude = round(float(np.clip(base * (1 + 0.03 * excess) + rng.normal(0, 0.3), 0.5, 99)), 1)
            adjusted = round(crude * float(rng.uniform(0.92, 1.04)), 1)
            for value in (crude, adjusted):
                # Model-based: the interval is not centred on the estimate.
                low, high = value * rng.uniform(0.84, 0.92), value * rng.uniform(1.06, 1.14)
                cells += [f"{value:.1f}", _interval(round(low, 1), min(round(high, 1), 99.9))]
        cells.append(f"POINT ({centroid[0]:.7f} {centroid[1]:.7f})")
        rows.append(cells)
    _write_csv(out_dir / FILES["places", "2022"], rows, newline="\n")


def write_publisher_files(out_dir: Path, *, tracts: dict[int, pd.DataFrame],
                          counties: dict[int, pd.DataFrame], centroid: tuple[float, float],
                          seed: int) -> list[dict]:
    """Write the demo region's publisher files; return their manifest entries.

    Parameters
    ----------
    out_dir : Path
        The demo region's folder.
    tracts, counties : dict of int to pandas.DataFrame
        The areas per boundary vintage (2010, 2020): ``geoid``, ``tract`` (tracts), ``area_type``
        (``urban``, ``rural`` or ``water``), ``core`` (tracts of the urban core), ``population``
        and the ACS shares ``poverty``, ``child_poverty``, ``no_vehicle``, ``unemployed``,
        ``uninsured``, ``minority``, ``limited_english`` (NaN without population).
    centroid : (float, float)
        The county's centre (lon, lat), for PLACES' ``Geolocation``.
    seed : int
        Seed of the draws.

    Returns
    -------
    list of dict
        Per file: source, release, path (relative to ``out_dir``), boundary vintage, synthetic.
    """
    tracts = {y: t.assign(deprivation=_deprivation(t)) for y, t in tracts.items()}
    _write_eji(out_dir, tracts[2010], "2022", seed)
    _write_eji(out_dir, tracts[2020], "2024", seed)
    _write_food_access(out_dir, tracts[2010], seed)
    _write_chr(out_dir, counties[2010])
    _write_ruca_tracts(out_dir, tracts[2020])
    _write_places(out_dir, counties[2020], seed, centroid)
    boundary = {("eji", "2024"): 2020, ("places", "2022"): 2020, ("ruca", "2020"): 2020}
    return [{"source": s, "release": r, "path": path, "boundary_vintage": boundary.get((s, r), 2010),
             "synthetic": True} for (s, r), path in FILES.items()]
