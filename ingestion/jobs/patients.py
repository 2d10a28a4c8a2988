"""Bring patients in from where health systems keep them: OMOP CDM, FHIR R4 or Synthea.

`import_patients` reads the source with its reader (`ingestion.sources.fhir`,
`ingestion.sources.omop`, `ingestion.sources.synthea`), writes the address history, events and
demographics the rest of the project reads into the workspace's private patient folder (0700,
files 0600: they hold patient data and never leave the machine), and publishes the screened
social needs through the validation gate as the dataset ``screened_needs``, with every patient
id pseudonymized when asked. `sdoh link` then links the address history; training frames read
the events.

Examples
--------
``real_data`` is ../shared/data/real; ``scratch`` an empty workspace:

>>> done = import_patients("synthea", real_data / "synthea_ma", workspace=scratch)
>>> done.counts["addresses"], done.files["address_history"].name
({'read': 27, 'accepted': 27, 'rejected': 0}, 'address_history.csv')
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ingestion.core.atomic import write_atomic
from ingestion.core.datasets import screened_needs_spec
from ingestion.core.errors import InputError
from ingestion.core.patient_data import PatientData
from ingestion.core.workspace import Workspace, private_dir
from ingestion.derive.screening import screening_states
from ingestion.gate.publish import PublishResult, publish
from ingestion.geo.pseudonym import key_fingerprint, patient_key_secret, pseudonymize_ids
from ingestion.sources.fhir import read_fhir
from ingestion.sources.omop import read_omop
from ingestion.sources.synthea import read_synthea

__all__ = ["PATIENT_FILES", "READERS", "PatientImport", "import_patients"]

log = logging.getLogger(__name__)

#: The reader of each source format.
READERS: dict[str, Callable[..., PatientData]] = {
    "fhir": read_fhir, "omop": read_omop, "synthea": read_synthea}
#: The files `import_patients` writes under ``<workspace>/raw/patients/``.
PATIENT_FILES = {"address_history": "addresses", "events": "events",
                 "demographics": "demographics", "rejects": "rejects"}


@dataclass(frozen=True)
class PatientImport:
    """What `import_patients` read, accepted and rejected, where it wrote, what it published."""

    counts: dict[str, dict[str, int]]
    rejects_by_reason: dict[str, int]
    ignored: dict[str, str]
    files: dict[str, Path]
    screening: PublishResult | None  # None: the source holds no screening answer or condition
    unmapped: pd.DataFrame  # answers and conditions no domain of the catalog reads, counted


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    write_atomic(path, lambda handle: frame.to_csv(handle, index=False, date_format="%Y-%m-%dT%H:%M:%SZ"))
    return path


def import_patients(
    source_format: str,
    path: str | Path,
    *,
    workspace: Workspace,
    pseudonymize: bool = False,
) -> PatientImport:
    """Read patients from OMOP, FHIR or Synthea; write their tables; publish screened needs.

    Parameters
    ----------
    source_format : {"omop", "fhir", "synthea"}
        The source's format; ``path`` is what its reader takes (a folder, a file, a DuckDB
        file or a ``postgresql://`` URL for OMOP).
    path : str or Path
        Where the source is.
    workspace : Workspace
        The workspace: files go to ``raw/patients/`` (private), screened needs are published.
    pseudonymize : bool
        Publish ``screened_needs`` keyed by HMAC-SHA256 of the ids with the secret in
        ``SDOH_PATIENT_KEY_SECRET`` (as `sdoh link --pseudonymize` keys the timeline). The
        private files keep the source ids, which `sdoh link` and training frames take.

    Returns
    -------
    PatientImport

    Raises
    ------
    InputError
        Unknown format, or a source the reader cannot read.
    LinkageError
        ``pseudonymize`` without a usable secret (checked before anything is read).
    ValidationFailed
        The screened needs fail their suite (quarantined; served data unchanged). A source
        without any screening answer or SDOH condition publishes nothing (``screening`` None).
    """
    if source_format not in READERS:
        raise InputError(f"unknown patient source format {source_format!r}; use one of "
                         f"{', '.join(READERS)}")
    secret = patient_key_secret() if pseudonymize else None
    data = READERS[source_format](path)
    folder = private_dir(workspace.raw / "patients")
    files = {name: _write_csv(folder / f"{name}.csv", getattr(data, table))
             for name, table in PATIENT_FILES.items()}
    states, unmapped = screening_states(data.answers, data.conditions)
    scheme = "raw" if secret is None else f"hmac_sha256:{key_fingerprint(secret)}"
    if secret is not None:
        states = states.assign(patient_id=pseudonymize_ids(states["patient_id"], secret=secret))
    published = None if states.empty else publish(
        states.assign(patient_id_scheme=scheme), screened_needs_spec(), workspace, data_docs=True)
    counts = data.counts()
    log.info("%s patients from %s: %s; rejected %s", source_format, path, counts,
             data.rejects["reason"].value_counts().to_dict() or "none")
    return PatientImport(counts=counts,
                         rejects_by_reason=data.rejects["reason"].value_counts().to_dict(),
                         ignored=dict(data.ignored), files=files, screening=published,
                         unmapped=unmapped)
