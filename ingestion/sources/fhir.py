"""Patient tables from FHIR R4: Bulk Data NDJSON and Bundle JSON.

`read_fhir` takes a folder of ``<ResourceType>.ndjson`` files (a Bulk Data export), a single
``.ndjson`` file (one resource per line), a Bundle ``.json`` (its ``entry[].resource``) or a
single resource ``.json``; a folder may mix them. It returns a `PatientData`:

* **Patient** -> demographics (``birthDate``, ``gender`` (else the US Core individual-sex
  extension's female/male), the US Core race and ethnicity
  extensions, the preferred ``communication`` language; ``payer`` from a Coverage if any) and
  one address row per ``address[]`` that is a residence (``home``, ``temp``, ``old`` or no
  ``use``; ``billing`` and ``work`` are rejected as not a residence). ``period.start`` ->
  ``valid_from``, ``period.end`` -> ``valid_to``: FHIR's end is inclusive, but the day an old
  address ends is the day the next one starts (as in the US Core example), so it is taken as
  the move day, which the half-open ``[valid_from, valid_to)`` of `sdoh link` expects. An
  address without ``period.start`` is rejected: from when it held is unknown, and assuming the
  birth date would attach neighbourhood features to events before the move.
* **Encounter** -> events (``period.start``, ``class`` code).
* **Observation** in category ``survey`` or ``sdoh`` -> answers. The instrument of an item is
  the code of the outermost panel that lists it in ``hasMember`` (or that it is
  ``derivedFrom``); a panel without a value is not an answer. ``dataAbsentReason``
  (``asked-declined``) is the answer code, so the catalog can read it as declined. A
  multi-select item is several Observations of one code (as in the US Core PRAPARE examples):
  several answer rows.
* **Condition** in category ``sdoh``, ``health-concern`` or ``problem-list-item`` ->
  conditions, one row per coding of ``code``.
* **QuestionnaireResponse** is counted in ``ignored``: US Core derives Observations from it, and
  reading both would count each answer twice.

Names, identifiers, telecom and narratives are never read. References resolve to ids
(``Patient/123`` and absolute URLs -> ``123``; a Bundle's ``urn:uuid:`` via its ``fullUrl``).

Examples
--------
>>> import json
>>> path = scratch.root / "Patient.ndjson"
>>> _ = path.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female",
...     "birthDate": "1990-05-01", "name": [{"family": "Never Read"}]}) + "\\n{oops\\n")
>>> data = read_fhir(path)
>>> data.demographics[["patient_id", "sex"]].values.tolist()
[['p1', 'F']]
>>> data.rejects[["record", "reason"]].values.tolist()
[['Patient.ndjson:2', 'malformed_json']]
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ingestion.core.errors import InputError
from ingestion.core.patient_data import (
    ADDRESS_COLUMNS,
    ANSWER_COLUMNS,
    CONDITION_COLUMNS,
    DEMOGRAPHIC_COLUMNS,
    EVENT_COLUMNS,
    PATIENT_REJECT_COLUMNS,
    PatientData,
)

__all__ = ["read_fhir"]

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
GEOLOCATION = "http://hl7.org/fhir/StructureDefinition/geolocation"
LOINC = "http://loinc.org"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
US_CORE_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex"
HISPANIC = "2135-2"
#: SNOMED codes of the US Core individual-sex extension, used when ``gender`` is absent.
SNOMED_SEX = {"248152002": "F", "248153007": "M"}
#: FHIR administrative gender as the patient tables' sex (`ingestion.core.patient_data.SEX`).
GENDER_SEX = {"female": "F", "male": "M", "other": "other"}
#: OMB race categories (urn:oid:2.16.840.1.113883.6.238) as race_ethnicity values.
OMB_RACES = {"1002-5": "american_indian_alaska_native", "2028-9": "asian", "2054-5": "black",
             "2076-8": "native_hawaiian_pacific_islander", "2106-3": "white"}

SCREENING_CATEGORIES = {(OBSERVATION_CATEGORY, "survey"), (US_CORE_CATEGORY, "sdoh")}
CONDITION_CATEGORIES = {(US_CORE_CATEGORY, "sdoh"), (CONDITION_CATEGORY, "problem-list-item"),
                        (CONDITION_CATEGORY, "health-concern"),
                        (US_CORE_CONDITION_CATEGORY, "health-concern")}
RESIDENCE_USES = {None, "home", "temp", "old"}
VOID_STATUSES = {"entered-in-error", "cancelled"}
VOID_VERIFICATION = {"entered-in-error", "refuted"}
#: Elements never read, whatever the resource: they identify the person or are free text.
PRIVATE = {"name", "telecom", "identifier", "text", "photo", "contact", "note"}
ALWAYS = {"resourceType", "id", "meta"}
USED = {
    "Patient": {"birthDate", "gender", "extension", "communication", "address"},
    "Encounter": {"status", "subject", "period", "class"},
    "Observation": {"status", "category", "code", "subject", "effectiveDateTime",
                    "effectivePeriod", "effectiveInstant", "issued", "hasMember",
                    "derivedFrom", "dataAbsentReason", "valueCodeableConcept", "valueString",
                    "valueBoolean", "valueInteger", "valueQuantity", "valueDateTime"},
    "Condition": {"category", "code", "subject", "onsetDateTime", "onsetPeriod",
                  "abatementDateTime", "recordedDate", "verificationStatus"},
    "Coverage": {"beneficiary", "payor", "type"},
}
TABLE_OF = {"Patient": "demographics", "Encounter": "events", "Observation": "answers",
            "Condition": "conditions"}
IGNORED_TYPES = {
    "QuestionnaireResponse": "screening answers are read from the Observations US Core "
                             "derives from it (reading both would count each answer twice)",
}
# FHIR dateTime: a year, year-month, date, or date and time with a zone.
DATE_TIME = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?")
FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}.*")


@dataclass
class _Resource:
    resource: dict
    source_file: str
    record: str  # where it was: "Patient.ndjson:3" or "bundle.json entry[2]"


@dataclass
class _Reader:
    """Rows, rejects and counts gathered while reading."""

    rows: dict[str, list[dict]] = field(default_factory=lambda: {t: [] for t in TABLE_COLUMNS})
    read: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # fullUrl -> "Type/id"

    def reject(self, item: _Resource, *, table: str, field: str, value: object, reason: str,
               message: str, patient_id: str | None = None) -> None:
        self.rows["rejects"].append({
            "source_file": item.source_file, "record": item.record, "patient_id": patient_id,
            "table": table, "field": field, "value": None if value is None else str(value),
            "reason": reason, "message": message})

    def ignore(self, key: str, reason: str) -> None:
        self.ignored[key] += 1
        self.reasons[key] = reason

    def reference(self, ref: object) -> str | None:
        """``"Type/id"`` for a literal reference (relative, absolute or a Bundle's urn)."""
        text = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(text, str):
            return None
        if text in self.references:
            return self.references[text]
        parts = text.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[:parts.index("_history")]
        return "/".join(parts[-2:]) if len(parts) >= 2 else None

    def patient(self, item: _Resource, ref: object, *, table: str, field: str) -> str | None:
        target = self.reference(ref)
        if target and target.startswith("Patient/"):
            return target.split("/", 1)[1]
        shown = ref.get("reference") if isinstance(ref, dict) else ref
        self.reject(item, table=table, field=field, value=shown, reason="no_patient",
                    message=f"{field} must reference a Patient (Patient/<id> or a Bundle "
                            "entry's urn:uuid)")
        return None


TABLE_COLUMNS = {"addresses": ADDRESS_COLUMNS, "events": EVENT_COLUMNS,
                 "demographics": DEMOGRAPHIC_COLUMNS, "answers": ANSWER_COLUMNS,
                 "conditions": CONDITION_COLUMNS, "rejects": PATIENT_REJECT_COLUMNS}
TIME_COLUMNS = {"addresses": ("valid_from", "valid_to"), "events": ("event_timestamp",),
                "demographics": ("birth_date",), "answers": ("effective_time",),
                "conditions": ("onset", "abatement", "recorded")}


def read_fhir(path: str | os.PathLike[str]) -> PatientData:
    """Read FHIR R4 resources (Bulk Data NDJSON, Bundles, single resources) into patient tables.

    Parameters
    ----------
    path
        A folder of ``.ndjson`` and ``.json`` files, or one such file.

    Returns
    -------
    PatientData
        Timestamps in UTC; ``read`` counts source records per table (Patients, their
        addresses, Encounters, screening Observations with an answer, Conditions);
        ``ignored`` names resource types and elements not used, with how many and why.
        Rejects name the file, the line (NDJSON) or entry (Bundle) and the resource.

    Raises
    ------
    InputError
        ``path`` does not exist or holds no ``.ndjson``/``.json`` file.

    Examples
    --------
    >>> import json
    >>> patient = {"resourceType": "Patient", "id": "p1", "address": [{"use": "home",
    ...     "city": "Cambridge", "period": {"start": "2019-03-01"}}]}
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
    ...     {"fullUrl": "urn:uuid:1", "resource": patient}, {"resource": {
    ...     "resourceType": "Encounter", "id": "e1", "subject": {"reference": "urn:uuid:1"},
    ...     "class": {"code": "AMB"}, "period": {"start": "2020-01-02T09:00:00-05:00"}}}]}
    >>> _ = (scratch.root / "b.json").write_text(json.dumps(bundle))
    >>> data = read_fhir(scratch.root / "b.json")
    >>> data.events.values.tolist()
    [['p1', Timestamp('2020-01-02 14:00:00+0000', tz='UTC'), 'e1', 'AMB']]
    >>> str(data.addresses.loc[0, "valid_from"].date())
    '2019-03-01'
    """
    reader = _Reader()
    resources = list(_resources(Path(path), reader))
    observations = {f"Observation/{r.resource.get('id')}": r.resource for r in resources
                    if r.resource.get("resourceType") == "Observation"}
    instruments = _instruments(observations, reader)
    payers = _payers(resources, reader)
    handlers = {"Patient": lambda item: _patient(item, reader, payers),
                "Encounter": lambda item: _encounter(item, reader),
                "Observation": lambda item: _observation(item, reader, instruments),
                "Condition": lambda item: _condition(item, reader),
                "Coverage": lambda item: None}  # read up front, for the payer
    for item in resources:
        kind = item.resource["resourceType"]
        if kind not in handlers:
            reader.ignore(kind, IGNORED_TYPES.get(kind, "resource type not used by the features"))
            continue
        _count_elements(item.resource, reader)
        handlers[kind](item)
    return _patient_data(reader)


# -- files ------------------------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder (expected FHIR .ndjson or .json)")
    files = sorted(p for p in path.iterdir() if p.suffix in (".ndjson", ".json")) \
        if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no .ndjson or .json file (expected a FHIR Bulk Data export "
                         "or Bundles)")
    return files


def _resources(path: Path, reader: _Reader) -> Iterator[_Resource]:
    """Every resource in the files, Bundles unpacked; malformed lines and files rejected."""
    for file in _files(path):
        name = file.name
        if file.suffix == ".ndjson":
            with file.open(encoding="utf-8") as lines:
                parsed = [(f"{name}:{n}", line) for n, line in enumerate(lines, 1)
                          if line.strip()]
        else:
            parsed = [(name, file.read_text(encoding="utf-8"))]
        for record, text in parsed:
            try:
                resource = json.loads(text)
            except json.JSONDecodeError as exc:
                where = record if file.suffix == ".ndjson" else f"{name}:{exc.lineno}"
                reader.reject(_Resource({}, name, where), table="resources", field="(json)",
                              value=text.strip()[:80], reason="malformed_json",
                              message=f"not JSON: {exc.msg} (column {exc.colno})")
                continue
            yield from _unpack(_Resource(resource, name, record), reader)


def _unpack(item: _Resource, reader: _Reader) -> Iterator[_Resource]:
    resource = item.resource
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        reader.reject(item, table="resources", field="resourceType", value=None,
                      reason="not_a_resource", message="a FHIR resource is a JSON object "
                      "with a resourceType")
        return
    if resource["resourceType"] != "Bundle":
        if not resource.get("id"):
            reader.reject(item, table=TABLE_OF.get(resource["resourceType"], "resources"),
                          field="id", value=None, reason="missing_id",
                          message=f"{resource['resourceType']} has no id")
            return
        yield item
        return
    for n, entry in enumerate(resource.get("entry") or []):
        inner = entry.get("resource") if isinstance(entry, dict) else None
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if isinstance(inner, dict) and not inner.get("id") and isinstance(full_url, str):
            inner = {**inner, "id": full_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]}
        if isinstance(inner, dict) and isinstance(full_url, str) and inner.get("resourceType"):
            reader.references[full_url] = f"{inner['resourceType']}/{inner.get('id')}"
        yield from _unpack(_Resource(inner, item.source_file, f"{item.record} entry[{n}]"),
                           reader)


def _count_elements(resource: dict, reader: _Reader) -> None:
    kind = resource["resourceType"]
    for key in resource.keys() - USED.get(kind, set()) - ALWAYS:
        reason = ("identifies the person or is free text: never read" if key in PRIVATE
                  else "element not used by the features")
        reader.ignore(f"{kind}.{key}", reason)


# -- values -----------------------------------------------------------------------------------


def _time(value: object) -> pd.Timestamp:
    """A FHIR date, dateTime or instant as a UTC timestamp (a date is its 00:00 UTC)."""
    if not isinstance(value, str) or not DATE_TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not a FHIR dateTime (YYYY[-MM[-DD[Thh:mm:ss+zz:zz]]])")
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _codings(concept: object) -> list[dict]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings or [] if isinstance(c, dict) and c.get("code")]


def _coding(concept: object) -> dict | None:
    """The LOINC coding of a concept if it has one, else its first coding."""
    codings = _codings(concept)
    return next((c for c in codings if c.get("system") == LOINC), codings[0] if codings else None)


def _has_category(resource: dict, wanted: set[tuple[str, str]]) -> bool:
    return any((c.get("system"), c.get("code")) in wanted
               for concept in resource.get("category") or [] for c in _codings(concept))


def _dated(item: _Resource, reader: _Reader, *, table: str, field: str, value: object,
           patient_id: str | None) -> pd.Timestamp | None:
    """The timestamp of a given value, or None with a reject if it is not a FHIR dateTime."""
    try:
        return _time(value)
    except ValueError as exc:
        reader.reject(item, table=table, field=field, value=value, reason="unparseable_date",
                      message=str(exc), patient_id=patient_id)
        return None


# -- resources --------------------------------------------------------------------------------


def _patient(item: _Resource, reader: _Reader, payers: dict[str, str]) -> None:
    resource, patient_id = item.resource, item.resource["id"]
    reader.read["demographics"] += 1
    birth = resource.get("birthDate")
    if birth is not None:
        birth = _dated(item, reader, table="demographics", field="birthDate", value=birth,
                       patient_id=patient_id)
        if birth is None:
            return
    extensions = {e.get("url"): e for e in resource.get("extension") or []
                  if isinstance(e, dict)}
    reader.rows["demographics"].append({
        "patient_id": patient_id, "birth_date": birth,
        "sex": GENDER_SEX.get(resource.get("gender")) or SNOMED_SEX.get(
            (extensions.get(US_CORE_SEX) or {}).get("valueCoding", {}).get("code")),
        "race_ethnicity": _race_ethnicity(extensions.get(US_CORE_RACE),
                                          extensions.get(US_CORE_ETHNICITY)),
        "preferred_language": _language(resource.get("communication") or []),
        "payer": payers.get(patient_id)})
    for n, address in enumerate(resource.get("address") or []):
        _address(item, reader, patient_id, n, address)


def _omb(extension: dict | None) -> tuple[list[dict], str | None]:
    """The OMB category codings (data-absent codes left out) and text of a race/ethnicity."""
    parts = extension.get("extension") or [] if extension else []
    codings = [p["valueCoding"] for p in parts if p.get("url") == "ombCategory"
               and isinstance(p.get("valueCoding"), dict)
               and p["valueCoding"].get("system") != NULL_FLAVOR]
    text = next((p.get("valueString") for p in parts if p.get("url") == "text"), None)
    return codings, text


def _race_ethnicity(race: dict | None, ethnicity: dict | None) -> str | None:
    """One combined category from the US Core race and ethnicity extensions.

    ``hispanic`` of any race, else the OMB race category (``multiple`` if several), else
    ``other`` for a race given only as text or outside the OMB categories
    (`ingestion.core.patient_data.RACE_ETHNICITY`).

    Examples
    --------
    >>> omb = lambda code, text: {"extension": [{"url": "ombCategory", "valueCoding": {
    ...     "system": "urn:oid:2.16.840.1.113883.6.238", "code": code, "display": text}}]}
    >>> _race_ethnicity(omb("2028-9", "Asian"), omb("2186-5", "Not Hispanic or Latino"))
    'asian'
    >>> _race_ethnicity(omb("2028-9", "Asian"), omb("2135-2", "Hispanic or Latino"))
    'hispanic'
    """
    eth_codings, _ = _omb(ethnicity)
    if any(c.get("code") == HISPANIC for c in eth_codings):
        return "hispanic"
    codings, text = _omb(race)
    if len(codings) > 1:
        return "multiple"
    if codings:
        return OMB_RACES.get(codings[0].get("code"), "other")
    return "other" if text else None


def _language(communication: list) -> str | None:
    """The preferred language's code (BCP 47), else the only language's."""
    usable = [c for c in communication if isinstance(c, dict) and c.get("language")]
    preferred = [c for c in usable if c.get("preferred") is True]
    chosen = preferred or (usable if len(usable) == 1 else [])
    if not chosen:
        return None
    coding = _coding(chosen[0]["language"])
    return coding["code"] if coding else chosen[0]["language"].get("text")


def _address(item: _Resource, reader: _Reader, patient_id: str, n: int, address: dict) -> None:
    reader.read["addresses"] += 1
    field = f"address[{n}]"

    def reject(sub: str, value: object, reason: str, message: str) -> None:
        reader.reject(item, table="addresses", field=f"{field}{sub}", value=value, reason=reason,
                      message=message, patient_id=patient_id)

    use, period = address.get("use"), address.get("period") or {}
    if use not in RESIDENCE_USES:
        return reject(".use", use, "not_a_residence", f"use {use!r} is not where the patient "
                      "lives (kept: home, temp, old, or no use)")
    if not period.get("start"):
        return reject(".period.start", None, "no_period_start", "from when this address held is "
                      "unknown; FHIR exports need period.start for a point-in-time history")
    dates = {}
    for part in ("start", "end"):
        value = period.get(part)
        if value is None:
            dates[part] = None
            continue
        if not isinstance(value, str) or not FULL_DATE.fullmatch(value):
            return reject(f".period.{part}", value, "unparseable_date",
                          "a period needs at least a full date (YYYY-MM-DD)")
        dates[part] = _dated(item, reader, table="addresses", field=f"{field}.period.{part}",
                             value=value, patient_id=patient_id)
        if dates[part] is None:
            return None
    if dates["end"] is not None and dates["end"] <= dates["start"]:
        return reject(".period.end", period["end"], "inverted_interval",
                      f"period.end is on or before period.start {period['start']}")
    lat, lon = _geolocation(address)
    if not all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in (lat, lon)):
        return reject(".extension(geolocation)", (lat, lon), "unparseable_coordinate",
                      "latitude and longitude must be decimals")
    lines = [line for line in address.get("line") or [] if isinstance(line, str)]
    reader.rows["addresses"].append({
        "patient_id": patient_id, "valid_from": dates["start"], "valid_to": dates["end"],
        "street": ", ".join(lines) or None, "city": address.get("city"),
        "state": address.get("state"), "zip": address.get("postalCode"),
        "latitude": lat, "longitude": lon})
    return None


def _geolocation(address: dict) -> tuple[float | None, float | None]:
    for ext in address.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == GEOLOCATION:
            parts = {p.get("url"): p.get("valueDecimal") for p in ext.get("extension") or []}
            return parts.get("latitude"), parts.get("longitude")
    return None, None


def _payers(resources: list[_Resource], reader: _Reader) -> dict[str, str]:
    """Patient id -> the payer named by its Coverage (the last one read wins)."""
    payers = {}
    for item in resources:
        resource = item.resource
        if resource.get("resourceType") != "Coverage":
            continue
        target = reader.reference(resource.get("beneficiary"))
        payor = next((p.get("display") for p in resource.get("payor") or []
                      if isinstance(p, dict) and p.get("display")), None)
        kind = _coding(resource.get("type"))
        name = payor or (kind.get("display") or kind["code"] if kind else None)
        if target and target.startswith("Patient/") and name:
            payers[target.split("/", 1)[1]] = name
    return payers


def _encounter(item: _Resource, reader: _Reader) -> None:
    resource = item.resource
    reader.read["events"] += 1
    patient_id = reader.patient(item, resource.get("subject"), table="events", field="subject")
    if patient_id is None or _void(item, reader, "events", patient_id):
        return
    start = (resource.get("period") or {}).get("start")
    if start is None:
        reader.reject(item, table="events", field="period.start", value=None,
                      reason="missing_value", message="an Encounter needs period.start",
                      patient_id=patient_id)
        return
    stamp = _dated(item, reader, table="events", field="period.start", value=start,
                   patient_id=patient_id)
    if stamp is None:
        return
    kind = resource.get("class")  # R4: a Coding; R5: a list of CodeableConcepts
    coding = kind if isinstance(kind, dict) else _coding((kind or [None])[0])
    reader.rows["events"].append({
        "patient_id": patient_id, "event_timestamp": stamp, "event_id": resource["id"],
        "event_type": coding.get("code") if coding else None})


def _void(item: _Resource, reader: _Reader, table: str, patient_id: str) -> bool:
    """Reject a resource whose status says it never happened or was an error."""
    status = item.resource.get("status")
    if status in VOID_STATUSES:
        reader.reject(item, table=table, field="status", value=status, reason="void_status",
                      message=f"status {status!r}: the record does not stand",
                      patient_id=patient_id)
    return status in VOID_STATUSES


def _instruments(observations: dict[str, dict], reader: _Reader) -> dict[str, str]:
    """``Observation/id`` -> the code of the outermost panel it belongs to."""
    parent = {}
    for ref, resource in observations.items():
        for member in resource.get("hasMember") or []:
            child = reader.reference(member)
            if child:
                parent.setdefault(child, ref)
        for source in resource.get("derivedFrom") or []:
            panel = reader.reference(source)
            if panel in observations and observations[panel].get("hasMember"):
                parent.setdefault(ref, panel)
    instruments = {}
    for ref in observations:
        root, seen = ref, {ref}
        while parent.get(root) in observations and parent[root] not in seen:
            root = parent[root]
            seen.add(root)
        coding = _coding(observations[root].get("code"))
        if root != ref or observations[ref].get("hasMember"):
            instruments[ref] = coding["code"] if coding else None
    return instruments


def _answer(resource: dict) -> tuple[dict | None, str | None]:
    """The coded answer and the answer text of an Observation (None, None: no value)."""
    if "valueCodeableConcept" in resource:
        concept = resource["valueCodeableConcept"]
        coding = _coding(concept)
        return coding, (coding or {}).get("display") or concept.get("text")
    for key in ("valueString", "valueInteger", "valueDateTime"):
        if key in resource:
            return None, str(resource[key])
    if "valueBoolean" in resource:
        return None, "true" if resource["valueBoolean"] else "false"
    if "valueQuantity" in resource:
        value = (resource["valueQuantity"] or {}).get("value")
        return None, None if value is None else str(value)
    if "dataAbsentReason" in resource:
        coding = _coding(resource["dataAbsentReason"])
        return coding, (coding or {}).get("display") or resource["dataAbsentReason"].get("text")
    return None, None


def _observation(item: _Resource, reader: _Reader, instruments: dict[str, str]) -> None:
    resource = item.resource
    if not _has_category(resource, SCREENING_CATEGORIES):
        reader.ignore("Observation (not survey or sdoh)", "not a screening answer")
        return
    coding, text = _answer(resource)
    if coding is None and text is None and resource.get("hasMember"):
        reader.ignore("Observation panel (hasMember, no value)",
                      "not an answer: its code is the instrument of its members")
        return
    reader.read["answers"] += 1
    patient_id = reader.patient(item, resource.get("subject"), table="answers", field="subject")
    if patient_id is None or _void(item, reader, "answers", patient_id):
        return
    item_coding = _coding(resource.get("code"))
    problems = [("code", None, "missing_value", "an answer needs code.coding (the item)")
                if item_coding is None else None,
                ("value[x]", None, "missing_value", "no value[x] or dataAbsentReason")
                if coding is None and text is None else None]
    when_field, when = next(((f, v) for f, v in (
        ("effectiveDateTime", resource.get("effectiveDateTime")),
        ("effectiveInstant", resource.get("effectiveInstant")),
        ("effectivePeriod.start", (resource.get("effectivePeriod") or {}).get("start")),
        ("issued", resource.get("issued"))) if v is not None), ("effective[x]", None))
    if when is None:
        problems.append((when_field, None, "missing_value",
                         "no effectiveDateTime, effectivePeriod.start or issued"))
    problem = next(filter(None, problems), None)
    if problem:
        field, value, reason, message = problem
        reader.reject(item, table="answers", field=field, value=value, reason=reason,
                      message=message, patient_id=patient_id)
        return
    stamp = _dated(item, reader, table="answers", field=when_field, value=when,
                   patient_id=patient_id)
    if stamp is None:
        return
    reader.rows["answers"].append({
        "patient_id": patient_id, "effective_time": stamp,
        "instrument": instruments.get(f"Observation/{resource['id']}"),
        "item_system": item_coding.get("system"), "item_code": item_coding["code"],
        "answer_system": (coding or {}).get("system"), "answer_code": (coding or {}).get("code"),
        "answer_text": text, "record": f"Observation/{resource['id']}"})


def _condition(item: _Resource, reader: _Reader) -> None:
    resource = item.resource
    if not _has_category(resource, CONDITION_CATEGORIES):
        reader.ignore("Condition (not sdoh, health-concern or problem-list-item)",
                      "not a social need")
        return
    reader.read["conditions"] += 1
    patient_id = reader.patient(item, resource.get("subject"), table="conditions",
                                field="subject")
    if patient_id is None:
        return
    verification = (_coding(resource.get("verificationStatus")) or {}).get("code")
    codings = _codings(resource.get("code"))
    onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
    given = {"onset": ("onsetDateTime", onset),
             "abatement": ("abatementDateTime", resource.get("abatementDateTime")),
             "recorded": ("recordedDate", resource.get("recordedDate"))}
    problem = (("verificationStatus", verification, "void_status",
                f"verificationStatus {verification!r}: the condition does not stand")
               if verification in VOID_VERIFICATION else
               ("code", None, "missing_value", "a Condition needs code.coding")
               if not codings else
               ("onset[x]", None, "missing_value", "neither onset nor recordedDate: "
                "from when the condition holds is unknown")
               if onset is None and given["recorded"][1] is None else None)
    if problem:
        field, value, reason, message = problem
        reader.reject(item, table="conditions", field=field, value=value, reason=reason,
                      message=message, patient_id=patient_id)
        return
    times = {}
    for column, (field, value) in given.items():
        times[column] = None if value is None else _dated(
            item, reader, table="conditions", field=field, value=value, patient_id=patient_id)
        if value is not None and times[column] is None:
            return
    for coding in codings:
        reader.rows["conditions"].append({
            "patient_id": patient_id, "code_system": coding.get("system"),
            "code": coding["code"], **times, "record": f"Condition/{resource['id']}"})


def _patient_data(reader: _Reader) -> PatientData:
    tables = {}
    for name, columns in TABLE_COLUMNS.items():
        frame = pd.DataFrame(reader.rows[name], columns=list(columns))
        for column in TIME_COLUMNS.get(name, ()):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        for column in ("latitude", "longitude"):
            if column in frame:
                frame[column] = frame[column].astype(float)
        tables[name] = frame
    ignored = {key: f"{count} found: {reader.reasons[key]}"
               for key, count in sorted(reader.ignored.items())}
    return PatientData(**tables, read=dict(reader.read), ignored=ignored)
