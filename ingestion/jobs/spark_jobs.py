"""The ingestion steps that grow with patients or geographies, run partition-wise on Spark.

Each job hands whole groups of rows to the local function, unchanged, with
``applyInPandas``: patients (all the periods of a patient stay together, so duplicate and
overlap checks still see them) for `link_addresses_spark`, reference areas (the state, the
county, or the nation as a single group: ranks need every row of their area) for
`compute_svi_spark` and `compute_adi_spark`. The output is the local path's output, row for
row; only the row order differs (Spark keeps none).

Spark is optional: install ``pyspark`` (``pip install -e '.[dev]'`` does). On a cluster, the
boundary polygons are broadcast once to every executor.

Examples
--------
>>> timeline = link_addresses_spark(spark.read.parquet("history.parquet"),  # doctest: +SKIP
...                                 load_boundary_set({2020: "tl_2020_24_bg.zip"}))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping

import geopandas as gpd
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ingestion.core.datasets import DatasetSpec, geography_timeline_spec
from ingestion.derive.adi import REFERENCE_DIGITS, compute_adi
from ingestion.derive.svi import compute_svi, load_svi_catalog
from ingestion.geo.linking import link_addresses

__all__ = ["compute_adi_spark", "compute_svi_spark", "link_addresses_spark",
           "spark_schema"]

_GROUP = "_sdoh_group"
_SPEC_TYPES = {"string": T.StringType(), "int64": T.LongType(), "float64": T.DoubleType(),
               "bool": T.BooleanType(), "timestamp": T.TimestampType()}
_SAMPLE_ROWS = 200  # rows the driver computes locally to learn an index's output columns


def spark_schema(frame: pd.DataFrame) -> T.StructType:
    """The Spark schema of a pandas frame: numbers, booleans and timestamps kept, the rest text.

    Examples
    --------
    >>> spark_schema(pd.DataFrame({"GEOID": ["10001"], "rank": [0.5]})).simpleString()
    'struct<GEOID:string,rank:double>'
    """
    def kind(dtype) -> T.DataType:
        if pd.api.types.is_bool_dtype(dtype):
            return T.BooleanType()
        if pd.api.types.is_integer_dtype(dtype):
            return T.LongType()
        if pd.api.types.is_float_dtype(dtype):
            return T.DoubleType()
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return T.TimestampType()
        return T.StringType()

    return T.StructType([T.StructField(str(c), kind(t)) for c, t in frame.dtypes.items()])


def _spec_schema(spec: DatasetSpec) -> T.StructType:
    return T.StructType([T.StructField(c.name, _SPEC_TYPES[c.dtype]) for c in spec.columns])


def link_addresses_spark(
    history: DataFrame,
    boundaries: Mapping[int, gpd.GeoDataFrame],
    *,
    level: str = "block_group",
    zcta_boundaries: Mapping[int, gpd.GeoDataFrame] | None = None,
    zip_crosswalk: pd.DataFrame | None = None,
    buckets: int | None = None,
) -> DataFrame:
    """`ingestion.geo.linking.link_addresses` on Spark: the geography timeline, patient by patient.

    Rows are grouped by a hash of ``patient_id`` into ``buckets`` groups, and each group is
    linked by `link_addresses` with the same arguments; the boundaries travel to executors as
    one broadcast.

    Parameters
    ----------
    history : pyspark.sql.DataFrame
        Accepted address periods, as `link_addresses` takes them (e.g. the accepted frame of
        `ingestion.geo.linking.read_address_history`, or the same columns read by Spark).
    boundaries, level, zcta_boundaries, zip_crosswalk
        As for `link_addresses`.
    buckets : int, optional
        Number of patient groups; default four per core of the session.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns of `ingestion.core.datasets.geography_timeline_spec`; timestamps in UTC.

    Raises
    ------
    pyspark.errors.PythonException
        Wrapping the `link_addresses` error of a group (e.g. overlapping periods).

    Examples
    --------
    >>> timeline = link_addresses_spark(history, {2020: block_groups})  # doctest: +SKIP
    >>> timeline.count()  # doctest: +SKIP
    """
    spark = history.sparkSession
    shipped = spark.sparkContext.broadcast((dict(boundaries), zcta_boundaries, zip_crosswalk))

    def link(group: pd.DataFrame) -> pd.DataFrame:
        polygons, zctas, crosswalk = shipped.value
        return link_addresses(group.drop(columns=_GROUP), polygons, level=level,
                              zcta_boundaries=zctas, zip_crosswalk=crosswalk)

    count = buckets or 4 * spark.sparkContext.defaultParallelism
    grouped = history.withColumn(_GROUP, F.pmod(F.xxhash64("patient_id"), F.lit(count)))
    return grouped.groupBy(_GROUP).applyInPandas(link, _spec_schema(geography_timeline_spec()))


def _by_reference_area(inputs: DataFrame, digits: int | None,
                       compute: Callable[[pd.DataFrame], pd.DataFrame]) -> DataFrame:
    """``compute`` once per reference area (GEOID prefix of ``digits``; None: the nation)."""
    area = F.substring("GEOID", 1, digits) if digits else F.lit("US")
    with warnings.catch_warnings():  # a sample's few rows make "small reference area" noise
        warnings.simplefilter("ignore")
        schema = spark_schema(compute(inputs.limit(_SAMPLE_ROWS).toPandas()))
    return (inputs.withColumn(_GROUP, area).groupBy(_GROUP)
            .applyInPandas(lambda group: compute(group.drop(columns=_GROUP)), schema))


def compute_svi_spark(inputs: DataFrame, *, release: int, reference: str = "state",
                      states: Collection[str] | None = None) -> DataFrame:
    """`ingestion.derive.svi.compute_svi` on Spark, one reference area (state, county, nation) per group.

    Parameters
    ----------
    inputs : pyspark.sql.DataFrame
        As for `compute_svi`: ``GEOID`` (text) and the columns `svi_variables(release)` names.
    release : int
        SVI release; no default.
    reference : str
        "state", "county" or "nation" (one group: every row).
    states : collection of str, optional
        The state codes the GEOIDs may start with, as for `compute_svi`.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns of `compute_svi`, one row per input row.

    Raises
    ------
    InputError
        For an unknown reference (checked on the driver).

    Examples
    --------
    >>> svi = compute_svi_spark(spark.read.parquet("svi_inputs"), release=2022)  # doctest: +SKIP
    """
    width = load_svi_catalog().references.get(reference)
    return _by_reference_area(
        inputs, width, lambda group: compute_svi(group, release=release, reference=reference,
                                              states=states))


def compute_adi_spark(inputs: DataFrame, *, vintage: int, reference: str = "nation",
                      standardized: bool = False,
                      states: Collection[str] | None = None) -> DataFrame:
    """`ingestion.derive.adi.compute_adi` on Spark, one reference area per group.

    Parameters
    ----------
    inputs : pyspark.sql.DataFrame
        As for `compute_adi`: ``GEOID``, the indicator inputs and ``group_quarters_population``.
    vintage : int
        ACS 5-year vintage; no default.
    reference : {"nation", "state", "county"}
        The area scores are scaled and ranked within ("nation": one group, every row).
    standardized : bool
        Petterson's z-scored variant.
    states : collection of str, optional
        The state codes the GEOIDs may start with, as for `compute_adi`.

    Returns
    -------
    pyspark.sql.DataFrame
        The columns of `compute_adi`, one row per input row.

    Raises
    ------
    AdiComputeError
        For an unknown reference or vintage (checked on the driver).

    Examples
    --------
    >>> adi = compute_adi_spark(spark.read.parquet("adi_inputs"), vintage=2022,  # doctest: +SKIP
    ...                         reference="state")
    """
    return _by_reference_area(
        inputs, REFERENCE_DIGITS.get(reference),
        lambda group: compute_adi(group, vintage=vintage, reference=reference,
                                  standardized=standardized, states=states))
