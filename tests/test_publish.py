"""The publishing gate: only validated data is served; failures are quarantined with a report."""

from __future__ import annotations

import json

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spec_frames import valid_frame

from ingestion.core.datasets import acs_spec, adi_spec, geography_timeline_spec
from ingestion.core.errors import PublishError, ValidationFailed
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import PublishResult, conform, publish, read_published


@pytest.fixture(scope="module")
def context():
    return gx.get_context(mode="ephemeral")


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def test_publish_writes_microsecond_utc_parquet_in_spec_order(ws, context):
    spec = geography_timeline_spec()
    df = valid_frame(spec, 12)
    expected_from = df["valid_from"].copy()
    # As a builder might hand it over: nanosecond and naive timestamps, columns shuffled,
    # pandas string dtype, a non-default index.
    df["valid_from"] = df["valid_from"].astype("datetime64[ns, UTC]") + pd.Timedelta(1, "ns")
    df["valid_to"] = df["valid_to"].dt.tz_localize(None).astype("datetime64[ns]")
    df["patient_id"] = df["patient_id"].astype("string")
    df = df[list(reversed(df.columns))].set_axis(range(100, 112))

    result = publish(df, spec, ws, context=context)

    assert isinstance(result, PublishResult)
    assert result.path == ws.published_dir("patient_geography")
    assert (result.dataset, result.n_rows, result.report.success) == ("patient_geography", 12,
                                                                      True)
    schema = pq.read_schema(next(result.path.glob("**/*.parquet")))
    assert schema.names == list(spec.column_names)
    assert schema.field("valid_from").type == pa.timestamp("us", tz="UTC")
    assert schema.field("valid_to").type == pa.timestamp("us", tz="UTC")
    assert schema.field("patient_id").type == pa.string()
    back = read_published(spec, ws)
    assert str(back["valid_from"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_series_equal(back["valid_from"], expected_from)  # the extra ns floored
    assert list(ws.staging.glob("*.parquet")) == []


def test_publish_acs_dtypes(ws, context):
    spec = acs_spec("tract")
    df = valid_frame(spec, 8)
    df["vintage"] = df["vintage"].astype("float64")  # whole numbers: coerced back to int64
    result = publish(df, spec, ws, context=context)
    schema = pq.read_schema(next(result.path.glob("**/*.parquet")))
    assert schema.field("vintage").type == pa.int64()
    assert schema.field("boundary_year").type == pa.int64()
    assert schema.field("synthetic").type == pa.bool_()
    assert schema.field("pct_crowded").type == pa.float64()
    assert schema.field("release_ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("tract_geoid").type == pa.string()
    # Every value present: the missing-reason column is all null, and still typed as text, so
    # partitions with and without reasons read together.
    assert df["pct_crowded_missing"].isna().all()
    assert schema.field("pct_crowded_missing").type == pa.string()


def _break_percent(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[3, "pct_below_poverty"] = 112.5
    df.loc[5, "pct_below_poverty_moe"] = -666666666.0
    return df


def test_failed_publish_quarantines_and_keeps_served_file(hand_built_copy, tmp_path, context):
    spec = acs_spec("tract")
    ws = hand_built_copy(tmp_path / "ws")  # acs_tract is served (the session's, copied)
    served = {f: f.read_bytes() for f in ws.published_dir(spec.name).glob("**/*.parquet")}

    bad = _break_percent(valid_frame(spec, 10, seed=1))
    with pytest.raises(ValidationFailed, match=r"acs_tract failed validation") as info:
        publish(bad, spec, ws, context=context, merge=False)

    assert {f: f.read_bytes() for f in ws.published_dir(spec.name).glob("**/*.parquet")} == served
    message = str(info.value)
    assert "pct_below_poverty: 1 value(s)" in message and "112.5" in message
    assert "rows [3]" in message
    assert "pct_below_poverty_moe" in message and "-666666666" in message
    assert "is unchanged" in message and "Next:" in message
    (run_dir,) = (ws.quarantine / "acs_tract").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "report.json"]
    assert info.value.report_path == str(run_dir / "report.json")
    assert str(run_dir / "report.json") in message
    report = json.loads((run_dir / "report.json").read_text())
    assert report["dataset"] == "acs_tract" and report["success"] is False
    assert report["run_id"] == run_dir.name
    assert {f["columns"][0] for f in report["failures"]} == {"pct_below_poverty",
                                                              "pct_below_poverty_moe"}
    quarantined = pd.read_parquet(run_dir / "data")
    assert (quarantined["pct_below_poverty"] == 112.5).sum() == 1
    assert [p for p in ws.staging.iterdir() if not p.name.startswith(".")] == []


def test_failed_first_publish_publishes_nothing(ws, context):
    spec = adi_spec()
    bad = valid_frame(spec, 6)
    bad.loc[2, "block_group_geoid"] = "12345"
    with pytest.raises(ValidationFailed,
                       match=r"(?s)no earlier version is served.*block_group_geoid"):
        publish(bad, spec, ws, context=context)
    assert not ws.is_published(spec.name)
    with pytest.raises(PublishError, match="adi_block_group has not been published"):
        read_published(spec, ws)


def test_merge_replaces_rows_with_the_same_key_and_keeps_others(ws, context):
    spec = adi_spec()
    first = valid_frame(spec, 4)  # GEOIDs ...000 to ...003
    publish(first, spec, ws, context=context)

    update = valid_frame(spec, 5).iloc[[1, 4]].reset_index(drop=True)  # ...001 changed, ...004
    update["adi_national_rank"] = [99.0, 42.0]
    update["vintage"] = first["vintage"].iloc[1], first["vintage"].iloc[1]
    result = publish(update, spec, ws, context=context)

    # Only the partition the new rows fall in is merged; the others are served untouched.
    touched = spec.partition_paths(first) == spec.partition_paths(update).iloc[0]
    assert spec.partition_paths(update).nunique() == 1
    assert (result.n_rows, result.kept_rows, result.replaced_rows) == (5, int(touched.sum()) - 1, 1)
    out = read_published(spec, ws).set_index("block_group_geoid")
    assert out.loc["000000000001", "adi_national_rank"] == 99.0
    assert out.loc["000000000004", "adi_national_rank"] == 42.0
    for geoid in ("000000000000", "000000000002", "000000000003"):
        row = first.set_index("block_group_geoid").loc[geoid]
        assert out.loc[geoid, "adi_national_rank"] == row["adi_national_rank"]
    assert list(out.reset_index().columns) == list(spec.column_names)

    # Same GEOID, another vintage: a new key, so both rows are kept.
    later = update.iloc[[0]].assign(vintage=2100)
    assert publish(later, spec, ws, context=context).n_rows == 6


def test_merge_false_replaces_the_whole_dataset(ws, context):
    spec = adi_spec()
    publish(valid_frame(spec, 6), spec, ws, context=context)
    result = publish(valid_frame(spec, 2, seed=3), spec, ws, context=context, merge=False)
    assert result.n_rows == 2 == len(read_published(spec, ws))


def test_merge_does_not_hide_duplicates_or_missing_columns(ws, context):
    spec = adi_spec()
    publish(valid_frame(spec, 4), spec, ws, context=context)
    dup = valid_frame(spec, 3)
    dup.loc[2, ["block_group_geoid", "vintage"]] = dup.loc[1, ["block_group_geoid", "vintage"]]
    with pytest.raises(ValidationFailed, match="block_group_geoid, vintage"):
        publish(dup, spec, ws, context=context)
    # The old rows have the column, the new ones do not: not filled with nulls.
    with pytest.raises(ValidationFailed, match=r"missing \['adi_state_decile'\]"):
        publish(valid_frame(spec, 2).drop(columns="adi_state_decile"), spec, ws,
                context=context)
    assert len(read_published(spec, ws)) == 4


def test_merge_keys_on_timestamps(ws, context):
    spec = geography_timeline_spec()
    first = valid_frame(spec, 3)
    publish(first, spec, ws, context=context)
    moved = first.iloc[[0]].copy()
    moved["link_method"] = "none"
    moved["precision"] = "none"
    moved["valid_from"] = moved["valid_from"].astype("datetime64[ns, UTC]")  # same instant
    result = publish(moved, spec, ws, context=context)
    assert (result.n_rows, result.replaced_rows) == (3, 1)


def test_nulls_in_int_columns_are_reported_by_validation(ws, context):
    spec = adi_spec()
    df = valid_frame(spec, 4)
    df["vintage"] = df["vintage"].astype("float64")
    df.loc[1, "vintage"] = np.nan
    with pytest.raises(ValidationFailed, match=r"vintage: 1 null value\(s\)"):
        publish(df, spec, ws, context=context)


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("adi_national_rank", "high", r"column adi_national_rank: expected float64.*'high'"),
        ("vintage", "twenty", r"column vintage: expected int64"),
        ("release_ts", "not a date", r"column release_ts: expected timestamps"),
        ("synthetic", "yes", r"column synthetic: expected bool.*'yes'"),
    ],
)
def test_uncoercible_values_raise_before_staging(ws, column, value, match):
    spec = adi_spec()
    df = valid_frame(spec, 3).astype({column: object})
    df.loc[1, column] = value
    with pytest.raises(PublishError, match=match):
        publish(df, spec, ws)
    assert list(ws.staging.glob("*.parquet")) == []
    assert not any(ws.quarantine.iterdir())


def test_conform_orders_columns_and_keeps_extras_last():
    spec = adi_spec()
    df = valid_frame(spec, 2).assign(extra=1)
    out = conform(df[list(reversed(df.columns))], spec)
    assert list(out.columns) == [*spec.column_names, "extra"]
    numbers = pd.Series([1, None], dtype=object)
    geoids = conform(df.assign(block_group_geoid=numbers), spec)["block_group_geoid"]
    assert geoids.tolist() == ["1", None]  # stringified, so the GEOID regex reports it


def test_publish_rejects_non_frames(ws):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        publish([1, 2], adi_spec(), ws)  # type: ignore[arg-type]
