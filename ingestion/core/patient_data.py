"""The project's patient tables, whichever system they come from (OMOP CDM, FHIR, Synthea).

Every reader of patient data (`ingestion.sources.omop`, `ingestion.sources.fhir`,
`ingestion.sources.synthea`) returns a `PatientData`: the same five tables with the same
columns, plus the rows it rejected and why. What comes after (linking, screening states,
pseudonymization, the coverage analysis) never looks at the source format.

Names, SSNs, free-text notes and street lines beyond the address are never read into these
tables: they hold what the features need and nothing else.

Examples
--------
>>> empty = PatientData.empty()
>>> list(empty.answers.columns)[:4]
['patient_id', 'effective_time', 'instrument', 'item_system']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "ADDRESS_COLUMNS", "ANSWER_COLUMNS", "CONDITION_COLUMNS", "DEMOGRAPHIC_COLUMNS",
    "EVENT_COLUMNS", "PATIENT_REJECT_COLUMNS", "RACE_ETHNICITY", "SEX", "PatientData",
]

#: An address period (as `sdoh link` reads it): only ``patient_id`` and ``valid_from`` required.
ADDRESS_COLUMNS = (
    "patient_id", "valid_from", "valid_to", "street", "city", "state", "zip",
    "latitude", "longitude",
)
#: An event features are wanted for (an encounter): its instant is ``event_timestamp`` (UTC).
EVENT_COLUMNS = ("patient_id", "event_timestamp", "event_id", "event_type")
#: What the coverage and fairness analyses group by; null where the source does not say.
DEMOGRAPHIC_COLUMNS = ("patient_id", "birth_date", "sex", "race_ethnicity", "preferred_language",
                       "payer")
#: The ``race_ethnicity`` values every reader writes: Hispanic of any race, else the OMB race
#: category, ``multiple`` for several, ``other`` for a race outside the OMB categories.
RACE_ETHNICITY = ("hispanic", "white", "black", "asian", "american_indian_alaska_native",
                  "native_hawaiian_pacific_islander", "multiple", "other")
#: The ``sex`` values every reader writes (administrative sex as recorded).
SEX = ("F", "M", "other")
#: One answer to one screening item. ``instrument`` is the panel (PRAPARE, AHC-HRSN, HVS) when
#: the source says it, ``item_system``/``item_code`` the question (LOINC), ``answer_system``/
#: ``answer_code`` the coded answer (LOINC LA codes) and ``answer_text`` its display or the
#: text answer; ``record`` names the source record (``Observation/abc``, ``observations.csv:12``).
ANSWER_COLUMNS = ("patient_id", "effective_time", "instrument", "item_system", "item_code",
                  "answer_system", "answer_code", "answer_text", "record")
#: A recorded condition (ICD-10-CM Z55-Z65, SNOMED social findings, ...), from its onset (or
#: recorded date) until its abatement.
CONDITION_COLUMNS = ("patient_id", "code_system", "code", "onset", "abatement", "recorded",
                     "record")
#: A rejected source row: where it was, which field, the value, the reason and the message.
PATIENT_REJECT_COLUMNS = ("source_file", "record", "patient_id", "table", "field", "value",
                          "reason", "message")

_TABLES = {
    "addresses": ADDRESS_COLUMNS, "events": EVENT_COLUMNS, "demographics": DEMOGRAPHIC_COLUMNS,
    "answers": ANSWER_COLUMNS, "conditions": CONDITION_COLUMNS, "rejects": PATIENT_REJECT_COLUMNS,
}


@dataclass(frozen=True)
class PatientData:
    """The patient tables one reader produced, and what it read, rejected and ignored.

    Attributes
    ----------
    addresses, events, demographics, answers, conditions : pandas.DataFrame
        Columns `ADDRESS_COLUMNS`, `EVENT_COLUMNS`, `DEMOGRAPHIC_COLUMNS`, `ANSWER_COLUMNS`,
        `CONDITION_COLUMNS`; timestamps are UTC, ids are the source's (pseudonymized later).
    rejects : pandas.DataFrame
        `PATIENT_REJECT_COLUMNS`: every source row left out, with its reason.
    read : dict
        Source rows read per table (``{"addresses": 40, ...}``).
    ignored : dict
        Source columns or resource types found and not used, with the reason
        (``{"location.county_ref_id": "not an OMOP CDM 5.4 column"}``).
    """

    addresses: pd.DataFrame
    events: pd.DataFrame
    demographics: pd.DataFrame
    answers: pd.DataFrame
    conditions: pd.DataFrame
    rejects: pd.DataFrame
    read: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, columns in _TABLES.items():
            found = list(getattr(self, name).columns)
            if found != list(columns):
                raise ValueError(f"PatientData.{name} must have the columns {list(columns)}, "
                                 f"in order; got {found}")
        for column, allowed in (("sex", SEX), ("race_ethnicity", RACE_ETHNICITY)):
            values = self.demographics[column].dropna()
            outside = sorted(set(values) - set(allowed))
            if outside:
                raise ValueError(f"PatientData.demographics.{column} holds {outside}; the "
                                 f"readers write only {list(allowed)} (or null)")

    @classmethod
    def empty(cls) -> PatientData:
        """No rows in any table."""
        return cls(**{name: pd.DataFrame(columns=list(columns)) for name, columns in _TABLES.items()})

    def counts(self) -> dict[str, dict[str, int]]:
        """Per table: source rows read, rows accepted and rows rejected.

        Examples
        --------
        >>> PatientData.empty().counts()["answers"]
        {'read': 0, 'accepted': 0, 'rejected': 0}
        """
        rejected = self.rejects["table"].value_counts().to_dict()
        return {name: {"read": self.read.get(name, 0), "accepted": len(getattr(self, name)),
                       "rejected": int(rejected.get(name, 0))}
                for name in _TABLES if name != "rejects"}
