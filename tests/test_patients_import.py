"""Tests of ingestion.jobs.patients and `sdoh patients import`, on the real samples.

Synthea, the US Core FHIR examples and the OMOP GIS rows go through the same import: tables
written privately for `sdoh link` and training frames, screened needs published through the
gate, counts per table and rejects by reason reported.
"""

from __future__ import annotations

import stat

import pandas as pd
import pytest
from click.testing import CliRunner
from needs import real_path

from ingestion.cli import sdoh
from ingestion.core.datasets import screened_needs_spec
from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import read_published
from ingestion.jobs.patients import import_patients

SECRET = "s" * 40


@pytest.fixture(scope="module")
def synthea(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("synthea"))
    return ws, import_patients("synthea", real_path("synthea_ma"), workspace=ws)


def test_synthea_tables_are_written_privately(synthea):
    ws, done = synthea
    assert done.counts["events"] == {"read": 604, "accepted": 604, "rejected": 0}
    assert done.counts["answers"] == {"read": 432, "accepted": 432, "rejected": 0}
    for path in done.files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.parent == ws.raw / "patients"
    history = pd.read_csv(done.files["address_history"], dtype=str)
    assert len(history) == 27 and history["valid_from"].str.endswith("Z").all()


def test_synthea_screened_needs_are_published(synthea):
    ws, done = synthea
    published = read_published(screened_needs_spec(), ws)
    assert done.screening.n_rows == len(published) > 0
    assert set(published["patient_id_scheme"]) == {"raw"}
    states = published.filter(like="_state").stack()
    assert set(states) <= {"positive", "negative", "declined", "not_screened"}
    assert "positive" in set(states)
    # Income (63586-2) needs household size and the poverty line: counted, not guessed.
    assert "63586-2" in set(done.unmapped["code"])


def test_fhir_screening_examples(tmp_path):
    done = import_patients("fhir", real_path("fhir_us_core_sdoh", "screening"),
                           workspace=Workspace(tmp_path))
    assert done.counts["answers"]["accepted"] == 28 and done.screening.n_rows >= 1


def test_omop_sample_without_screenings_publishes_nothing(tmp_path):
    ws = Workspace(tmp_path)
    done = import_patients("omop", real_path("omop_gis_location"), workspace=ws)
    assert done.counts["addresses"] == {"read": 40, "accepted": 40, "rejected": 0}
    assert done.screening is None and not ws.is_published("screened_needs")
    assert "location.county_ref_id" in done.ignored


def test_unknown_format_names_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="use one of fhir, omop, synthea"):
        import_patients("hl7v2", tmp_path, workspace=Workspace(tmp_path))


def test_cli_imports_and_pseudonymizes(tmp_path):
    ws = tmp_path / "ws"
    result = CliRunner(env={"SDOH_PATIENT_KEY_SECRET": SECRET}).invoke(sdoh, [
        "patients", "import", "--from", "synthea", str(real_path("synthea_ma")),
        "--pseudonymize", "--workspace", str(ws)])
    assert result.exit_code == 0, result.output
    assert "answers: 432 read, 432 accepted, 0 rejected" in result.output
    published = read_published(screened_needs_spec(), Workspace(ws))
    assert published["patient_id"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert published["patient_id_scheme"].str.startswith("hmac_sha256:").all()
    raw_ids = set(pd.read_csv(real_path("synthea_ma", "patients.csv"), usecols=["Id"])["Id"])
    assert not raw_ids & set(published["patient_id"])
