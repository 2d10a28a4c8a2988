"""The demo patients as a FHIR R4 Bulk Data export (NDJSON), with unequal social-needs screening.

`write_fhir_export` writes, under ``fhir/`` of the demo region, one resource per line:

* ``Patient.ndjson``: birth date, gender, US Core race and ethnicity extensions, preferred
  language, and every address period of the history (``use`` home, ``period`` start/end, the
  geolocation extension where the row has coordinates; PO boxes and ZIP-only rows as the
  history has them). No names, no identifiers beyond the demo's own id.
* ``Encounter.ndjson``: one per demo encounter (``period.start``, class, subject).
* ``Coverage.ndjson``: the patient's payer (Source of Payment Typology codes).
* ``Observation.ndjson``: screening items in the US Core screening-assessment shape (category
  ``sdoh`` and ``survey``; Hunger Vital Sign and PRAPARE items with LOINC question and answer
  codes, copied from the US Core examples), effective at the encounter's start.
* ``Condition.ndjson``: SDOH problems (ICD-10-CM Z59.41, Z59.819, Z59.82) recorded after some
  positive screens, some resolved later.

Who is screened is deliberately unequal, as in real clinics: `SCREENING` gives the chance an
encounter is a screening visit by encounter type, multiplied by a factor per payer and per
preferred language. Answers depend on the home block group's deprivation score and the payer
(`NEEDS`). Every resource carries the ``HTEST`` (test health data) security tag: it is
synthetic. One generator seeded from ``seed`` and the stream name ``fhir``: the same inputs give
byte-identical files, and the region's other files do not change.

Examples
--------
>>> screening_chance("outpatient", payer="Medicaid", language="Spanish")
0.288
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FHIR_FILES", "NEEDS", "SCREENING", "encounter_id", "screening_chance",
           "write_fhir_export"]

# -- the rates (data) ---------------------------------------------------------------------------

# Chance an encounter is a screening visit: base by encounter type, times a factor per payer
# and per preferred language (clinics screen Medicaid patients more, ED visits and patients
# needing an interpreter less).
SCREENING = {
    "encounter_type": {"outpatient": 0.30, "ED": 0.08, "inpatient": 0.18},
    "payer": {"Medicaid": 1.6, "Uninsured": 1.2, "Medicare": 1.0, "Commercial": 0.7},
    "language": {"English": 1.0, "Spanish": 0.6, "Other": 0.4},
}
# Which instrument a screening visit uses.
INSTRUMENT_SHARE = {"hunger_vital_sign": 0.5, "prapare": 0.5}
# Log-odds of a positive screen per domain: intercept + deprivation * z + payer effect.
NEEDS = {
    "intercept": {"food_insecurity": -1.3, "housing_instability": -1.9,
                  "transportation_insecurity": -2.1, "interpersonal_safety": -3.3},
    "deprivation": 0.6,
    "payer": {"Medicaid": 0.7, "Uninsured": 0.8, "Medicare": 0.0, "Commercial": -0.4},
}
P_DECLINED = 0.04  # a domain's question refused ("I choose not to answer", "Don't know/refused")
P_CONDITION = 0.3  # a positive screen leads to an SDOH problem-list Condition
P_RESOLVED = 0.5  # that Condition is resolved later (abatement 60-400 days after onset)

# -- the codes (copied from the US Core 9.0.0 SDOH examples and LOINC) ---------------------------

LOINC = "http://loinc.org"
SYNTHETIC_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                 "display": "test health data"}
SCREENING_PROFILE = ("http://hl7.org/fhir/us/core/StructureDefinition/"
                     "us-core-observation-screening-assessment")
CATEGORIES = [
    {"coding": [{"code": "sdoh", "display": "SDOH",
                 "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"}]},
    {"coding": [{"code": "survey", "display": "Survey",
                 "system": "http://terminology.hl7.org/CodeSystem/observation-category"}]},
]
YES, NO = ("LA33-6", "Yes"), ("LA32-8", "No")
PRAPARE_REFUSED = ("LA30122-8", "I choose not to answer this question")
OFTEN, SOMETIMES, NEVER = ("LA28397-0", "Often true"), ("LA6729-3", "Sometimes true"), \
    ("LA28398-8", "Never true")
HVS_REFUSED = ("LA15775-2", "Don't know/refused")
HVS_ITEMS = (
    ("88122-7", "Within the past 12 months we worried whether our food would run out before we "
                "got money to buy more"),
    ("88123-5", "Within the past 12 months the food we bought just didn't last and we didn't "
                "have money to get more"),
)
HVS_RISK = ("88124-3", "Food insecurity risk [HVS]")
AT_RISK, NO_RISK = ("LA19952-3", "At risk"), ("LA19983-8", "No risk")
# PRAPARE item per domain: (LOINC, question, positive answers, negative answer).
PRAPARE_ITEMS = {
    "housing_instability": ("93033-9", "Are you worried about losing your housing [PRAPARE]",
                            (YES,), NO),
    "transportation_insecurity": (
        "93030-5", "Has lack of transportation kept you from medical appointments, meetings, "
                   "work, or from getting things needed for daily living",
        (("LA30133-5", "Yes, it has kept me from medical appointments or from getting my "
                       "medications"),
         ("LA30134-3", "Yes, it has kept me from non-medical meetings, appointments, work, or "
                       "from getting things that I need")), NO),
    "interpersonal_safety": ("76501-6", "Within the last year, have you been afraid of your "
                                        "partner or ex-partner", (YES,), NO),
}
# SDOH problems recorded after a positive screen (ICD-10-CM codes new in FY2023).
CONDITIONS = {
    "food_insecurity": ("Z59.41", "Food insecurity"),
    "housing_instability": ("Z59.819", "Housing instability, housed unspecified"),
    "transportation_insecurity": ("Z59.82", "Transportation insecurity"),
}
ENCOUNTER_CLASS = {"outpatient": ("AMB", "ambulatory"), "ED": ("EMER", "emergency"),
                   "inpatient": ("IMP", "inpatient encounter")}
OMB = "urn:oid:2.16.840.1.113883.6.238"
RACE = {"NH White": ("2106-3", "White"), "NH Black": ("2054-5", "Black or African American"),
        "NH Asian": ("2028-9", "Asian"), "NH AIAN": ("1002-5", "American Indian or Alaska Native")}
HISPANIC = ("2135-2", "Hispanic or Latino")
NOT_HISPANIC = ("2186-5", "Not Hispanic or Latino")
LANGUAGE = {"English": "en", "Spanish": "es"}
GENDER = {"F": "female", "M": "male"}
PAYER = {"Medicare": ("1", "MEDICARE"), "Medicaid": ("2", "MEDICAID"),
         "Commercial": ("5", "PRIVATE HEALTH INSURANCE"), "Uninsured": ("81", "Self-pay")}
PAYER_SYSTEM = "urn:oid:2.16.840.1.113883.3.221.5"  # PHDSC Source of Payment Typology
GEOLOCATION = "http://hl7.org/fhir/StructureDefinition/geolocation"
FHIR_FILES = ("Patient", "Encounter", "Coverage", "Observation", "Condition")


def encounter_id(row: int) -> str:
    """The Encounter id of the demo's ``row``-th encounter (from 1, in ``encounters.csv`` order).

    Examples
    --------
    >>> encounter_id(12)
    'E0000012'
    """
    return f"E{row:07d}"


def screening_chance(encounter_type: str, *, payer: str, language: str) -> float:
    """The chance an encounter is a screening visit (`SCREENING`; capped at 1).

    Examples
    --------
    >>> screening_chance("ED", payer="Commercial", language="Other")
    0.0224
    """
    chance = (SCREENING["encounter_type"][encounter_type] * SCREENING["payer"][payer]
              * SCREENING["language"][language])
    return round(min(1.0, chance), 6)


# -- resources ----------------------------------------------------------------------------------


def _meta(profile: str | None = None) -> dict:
    meta: dict = {"tag": [SYNTHETIC_TAG]}
    if profile:
        meta["profile"] = [profile]
    return meta


def _coding(system: str, code_display: tuple[str, str]) -> dict:
    return {"code": code_display[0], "display": code_display[1], "system": system}


def _concept(system: str, code_display: tuple[str, str]) -> dict:
    return {"coding": [_coding(system, code_display)], "text": code_display[1]}


def _omb_extension(url: str, coding: tuple[str, str] | None, text: str) -> dict:
    parts = [{"url": "ombCategory", "valueCoding": _coding(OMB, coding)}] if coding else []
    return {"url": url, "extension": [*parts, {"url": "text", "valueString": text}]}


def _address(row) -> dict:
    address: dict = {"use": "home"}
    if row.latitude != "":
        address["extension"] = [{"url": GEOLOCATION, "extension": [
            {"url": "latitude", "valueDecimal": float(row.latitude)},
            {"url": "longitude", "valueDecimal": float(row.longitude)}]}]
    if row.street != "":
        address["line"] = [row.street]
    address.update({"city": row.city, "state": row.state, "postalCode": row.zip, "country": "US"})
    address["period"] = {"start": row.valid_from, **({"end": row.valid_to} if row.valid_to else {})}
    return address


def _patient(person, addresses: list[dict]) -> dict:
    race = person.race_ethnicity
    hispanic = race == "Hispanic"
    race_text = {"Hispanic": "Unknown", "NH Other or Multiple": "Other or multiple"}.get(
        race, RACE.get(race, ("", race))[1])
    language = ({"coding": [{"system": "urn:ietf:bcp:47", "code": LANGUAGE[person.preferred_language],
                             "display": person.preferred_language}]}
                if person.preferred_language in LANGUAGE else {"text": person.preferred_language})
    return {
        "resourceType": "Patient", "id": person.patient_id,
        "meta": _meta("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"),
        "extension": [
            _omb_extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                           RACE.get(race), race_text),
            _omb_extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                           HISPANIC if hispanic else NOT_HISPANIC,
                           (HISPANIC if hispanic else NOT_HISPANIC)[1]),
        ],
        "gender": GENDER[person.sex],
        "birthDate": person.birth.isoformat(),
        "address": addresses,
        "communication": [{"language": language, "preferred": True}],
    }


def _coverage(person) -> dict:
    return {"resourceType": "Coverage", "id": f"cov-{person.patient_id}", "meta": _meta(),
            "status": "active", "type": _concept(PAYER_SYSTEM, PAYER[person.payer]),
            "beneficiary": {"reference": f"Patient/{person.patient_id}"},
            "payor": [{"display": person.payer}]}


def _encounter(encounter_id: str, visit) -> dict:
    code, display = ENCOUNTER_CLASS[visit.encounter_type]
    return {"resourceType": "Encounter", "id": encounter_id, "meta": _meta(), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code,
                      "display": display},
            "subject": {"reference": f"Patient/{visit.patient_id}"},
            "period": {"start": _instant(visit.event_timestamp)}}


def _instant(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _observation(obs_id: str, visit, encounter_id: str, item: tuple[str, str],
                 answer: tuple[str, str], *, weight: int | None = None) -> dict:
    coding = _coding(LOINC, answer)
    if weight is not None:  # the HVS items carry their score weight, as the US Core example does
        coding = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/itemWeight",
                                 "valueDecimal": weight}], **coding}
    return {
        "resourceType": "Observation", "id": obs_id, "meta": _meta(SCREENING_PROFILE),
        "status": "final", "category": CATEGORIES, "code": _concept(LOINC, item),
        "subject": {"reference": f"Patient/{visit.patient_id}"},
        "encounter": {"reference": f"Encounter/{encounter_id}"},
        "effectiveDateTime": _instant(visit.event_timestamp),
        "performer": [{"reference": f"Patient/{visit.patient_id}"}],
        "valueCodeableConcept": {"coding": [coding], "text": answer[1]},
    }


def _condition(cond_id: str, visit, domain: str, abatement: pd.Timestamp | None) -> dict:
    condition = {
        "resourceType": "Condition", "id": cond_id,
        "meta": _meta("http://hl7.org/fhir/us/core/StructureDefinition/"
                      "us-core-condition-problems-health-concerns"),
        "clinicalStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                   ("resolved", "Resolved") if abatement is not None
                                   else ("active", "Active")),
        "verificationStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                       ("confirmed", "Confirmed")),
        "category": [
            _concept("http://terminology.hl7.org/CodeSystem/condition-category",
                     ("problem-list-item", "Problem List Item")),
            _concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", ("sdoh", "SDOH")),
        ],
        "code": _concept("http://hl7.org/fhir/sid/icd-10-cm", CONDITIONS[domain]),
        "subject": {"reference": f"Patient/{visit.patient_id}"},
        "onsetDateTime": _instant(visit.event_timestamp),
        "recordedDate": _instant(visit.event_timestamp),
    }
    if abatement is not None:
        condition["abatementDateTime"] = _instant(abatement)
    return condition


# -- draws --------------------------------------------------------------------------------------


def _need_chance(domain: str, z: float, payer: str) -> float:
    logit = NEEDS["intercept"][domain] + NEEDS["deprivation"] * z + NEEDS["payer"][payer]
    return 1 / (1 + math.exp(-logit))


def _hvs(rng: np.random.Generator, positive: bool, declined: bool) -> list[tuple]:
    """(item, answer, weight) of one Hunger Vital Sign: positive if either item is not 'never'."""
    if declined:
        return [(item, HVS_REFUSED, None) for item in HVS_ITEMS]
    if positive:
        first = OFTEN if rng.random() < 0.4 else SOMETIMES
        second = (OFTEN, SOMETIMES, NEVER)[int(rng.integers(3))]
        answers = (first, second) if rng.random() < 0.5 else (second, first)
    else:
        answers = (NEVER, NEVER)
    weights = {OFTEN: 1, SOMETIMES: 1, NEVER: 0}
    rows = [(item, a, weights[a]) for item, a in zip(HVS_ITEMS, answers, strict=True)]
    return [*rows, (HVS_RISK, AT_RISK if positive else NO_RISK, None)]


def _prapare(rng: np.random.Generator, domain: str, positive: bool, declined: bool) -> tuple:
    loinc, question, positives, negative = PRAPARE_ITEMS[domain]
    if declined:
        answer = PRAPARE_REFUSED
    elif positive:
        answer = positives[int(rng.integers(len(positives)))]
    else:
        answer = negative
    return (loinc, question), answer, None


def _screen(rng: np.random.Generator, person) -> tuple[str, dict[str, tuple[bool, bool]], list]:
    """One screening visit: instrument, (positive, declined) per domain, and its items."""
    instrument = "hunger_vital_sign" if rng.random() < INSTRUMENT_SHARE["hunger_vital_sign"] \
        else "prapare"
    domains = ["food_insecurity"] if instrument == "hunger_vital_sign" else list(PRAPARE_ITEMS)
    states, items = {}, []
    for domain in domains:
        declined = bool(rng.random() < P_DECLINED)
        positive = not declined and bool(rng.random() < _need_chance(domain, person.z, person.payer))
        states[domain] = (positive, declined)
        items += (_hvs(rng, positive, declined) if instrument == "hunger_vital_sign"
                  else [_prapare(rng, domain, positive, declined)])
    return instrument, states, items


# -- the export ---------------------------------------------------------------------------------


def _write_ndjson(path: Path, resources: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in resources)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_fhir_export(out_dir: Path, *, seed: int, patients: pd.DataFrame,
                      encounters: pd.DataFrame, history: pd.DataFrame) -> dict:
    """Write ``out_dir/fhir/<Resource>.ndjson`` for the demo patients; return the manifest entry.

    Parameters
    ----------
    out_dir : Path
        The demo region's folder.
    seed : int
        The region's seed.
    patients : pandas.DataFrame
        ``patient_id``, ``birth`` (date), ``sex``, ``race_ethnicity``, ``preferred_language``,
        ``payer`` and ``z`` (the home block group's deprivation score).
    encounters : pandas.DataFrame
        ``patient_id``, ``event_timestamp`` (UTC) and ``encounter_type``; encounter ids are
        ``E`` and the row number (from 1), in this order.
    history : pandas.DataFrame
        The address history as written to ``patients/address_history.csv`` (strings, empty
        where absent).

    Returns
    -------
    dict
        ``path`` (the folder), ``format``, ``synthetic``, ``files`` (resource -> path and
        lines), ``screening`` (the configured rates, screening visits, screened patients,
        positive and declined answers per domain) and ``conditions``.

    Examples
    --------
    >>> people = pd.DataFrame({"patient_id": ["P1"], "birth": [pd.Timestamp("1980-02-03").date()],
    ...     "sex": ["F"], "race_ethnicity": ["NH Black"], "preferred_language": ["English"],
    ...     "payer": ["Medicaid"], "z": [0.5]})
    >>> visits = pd.DataFrame({"patient_id": ["P1"], "encounter_type": ["outpatient"],
    ...     "event_timestamp": [pd.Timestamp("2021-05-04 10:00", tz="UTC")]})
    >>> rows = pd.DataFrame({"patient_id": ["P1"], "valid_from": ["2019-01-01"], "valid_to": [""],
    ...     "street": ["PO Box 7"], "city": ["Synthdale"], "state": ["DS"], "zip": ["00014"],
    ...     "latitude": [""], "longitude": [""]})
    >>> entry = write_fhir_export(scratch.root, seed=1, patients=people, encounters=visits,
    ...                           history=rows)
    >>> entry["files"]["Patient"]
    {'path': 'fhir/Patient.ndjson', 'lines': 1}
    """
    rng = np.random.default_rng([seed, zlib.crc32(b"fhir")])
    out_dir = Path(out_dir)
    by_patient = {pid: [_address(r) for r in rows.itertuples(index=False)]
                  for pid, rows in history.groupby("patient_id", sort=False)}
    people = {p.patient_id: p for p in patients.itertuples(index=False)}
    resources: dict[str, list[dict]] = {name: [] for name in FHIR_FILES}
    for person in people.values():
        resources["Patient"].append(_patient(person, by_patient.get(person.patient_id, [])))
        resources["Coverage"].append(_coverage(person))
    tally = {"visits": 0, "patients": set(), "by_instrument": dict.fromkeys(INSTRUMENT_SHARE, 0),
             "answers": {}}
    for row, visit in enumerate(encounters.itertuples(index=False), start=1):
        visit_id = encounter_id(row)
        resources["Encounter"].append(_encounter(visit_id, visit))
        person = people[visit.patient_id]
        chance = screening_chance(visit.encounter_type, payer=person.payer,
                                  language=person.preferred_language)
        if rng.random() >= chance:
            continue
        instrument, states, items = _screen(rng, person)
        for k, (item, answer, weight) in enumerate(items):
            resources["Observation"].append(
                _observation(f"{visit_id}-{item[0]}-{k}", visit, visit_id, item, answer,
                             weight=weight))
        for domain, (positive, declined) in states.items():
            counts = tally["answers"].setdefault(domain, {"screened": 0, "positive": 0,
                                                          "declined": 0})
            counts["screened"] += 1
            counts["positive"] += positive
            counts["declined"] += declined
            if positive and domain in CONDITIONS and rng.random() < P_CONDITION:
                abatement = (visit.event_timestamp + pd.Timedelta(days=int(rng.integers(60, 401)))
                             if rng.random() < P_RESOLVED else None)
                resources["Condition"].append(
                    _condition(f"{visit_id}-{CONDITIONS[domain][0]}", visit, domain, abatement))
        tally["visits"] += 1
        tally["patients"].add(visit.patient_id)
        tally["by_instrument"][instrument] += 1
    files = {}
    for name, rows in resources.items():
        files[name] = {"path": f"fhir/{name}.ndjson", "lines": len(rows)}
        _write_ndjson(out_dir / files[name]["path"], rows)
    return {
        "path": "fhir", "format": "FHIR R4 Bulk Data NDJSON", "synthetic": True,
        "security_tag": SYNTHETIC_TAG["code"], "files": files,
        "screening": {"rates": SCREENING, "instrument_share": INSTRUMENT_SHARE,
                      "needs": NEEDS, "p_declined": P_DECLINED,
                      "visits": tally["visits"], "encounters": len(encounters),
                      "patients_screened": len(tally["patients"]),
                      "by_instrument": tally["by_instrument"], "answers": tally["answers"]},
        "conditions": {"lines": len(resources["Condition"]), "p_condition": P_CONDITION,
                       "p_resolved": P_RESOLVED},
    }
