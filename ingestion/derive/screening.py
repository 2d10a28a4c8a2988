"""Screening answers and SDOH Conditions -> each patient's screened-needs states over time.

Rules (DESIGN.md section 9): an answer counts from its effective time; a newer answer in a
domain replaces an older one; an explicit refusal is ``declined``; several items of a domain
answered at one instant by one instrument score together (any positive item -> positive,
declined only if every item was declined). A Condition is positive from its onset (or recorded
date) until its abatement; then the domain falls back to the answer in force. The catalog
(`sdoh_sources.screening`) says which item and answer means what.

Examples
--------
>>> answers = pd.DataFrame([["p1", "2023-01-05", None, "http://loinc.org", "93033-9", None,
...                          None, "Yes", "observations.csv:2"]], columns=list(ANSWER_COLUMNS))
>>> conditions = pd.DataFrame(columns=list(CONDITION_COLUMNS))
>>> states, unmapped = screening_states(answers, conditions)
>>> states[["patient_id", "housing_instability_state", "housing_instability_instrument",
...         "food_insecurity_state"]].values.tolist()
[['p1', 'positive', 'PRAPARE', 'not_screened']]
>>> len(unmapped)
0
"""

from __future__ import annotations

import pandas as pd

from ingestion.core.patient_data import ANSWER_COLUMNS, CONDITION_COLUMNS
from sdoh_sources.screening import Instrument, Item, ScreeningCatalog, load_screening_catalog

__all__ = ["UNMAPPED_COLUMNS", "screening_states", "state_columns"]

#: What could not be mapped, counted: which table, the code's system and code, and why.
UNMAPPED_COLUMNS = ("table", "code_system", "code", "reason", "rows")


def state_columns(catalog: ScreeningCatalog | None = None) -> tuple[str, ...]:
    """The columns of the state table, domains in catalog order.

    Examples
    --------
    >>> state_columns()[2:5]
    ('food_insecurity_state', 'food_insecurity_instrument', 'food_insecurity_screened_at')
    """
    catalog = catalog or load_screening_catalog()
    return ("patient_id", "effective_time",
            *(f"{d}_{part}" for d in catalog.domain_names
              for part in ("state", "instrument", "screened_at")))


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="mixed")


def _match(catalog: ScreeningCatalog, row) -> tuple[Instrument, Item] | str:
    """The instrument and item an answer row belongs to, or why none does."""
    if catalog.system(row.item_system) not in ("loinc", None) or pd.isna(row.item_code):
        return "item_not_loinc"
    named = catalog.instrument(row.instrument) if isinstance(row.instrument, str) else None
    candidates = (named,) if named else catalog.instruments
    code = row.answer_code if isinstance(row.answer_code, str) else None
    text = row.answer_text if isinstance(row.answer_text, str) else None
    items = [(i, i.item(row.item_code)) for i in candidates if i.item(row.item_code)]
    if not items:
        return "item_not_in_catalog"
    # An item shared by instruments (71802-3, 93030-5) is told apart by its answer list.
    for inst, item in items:
        if item.answer(code, text) is not None:
            return inst, item
    return "answer_not_in_catalog"


def _item_states(catalog: ScreeningCatalog, answers: pd.DataFrame
                 ) -> tuple[pd.DataFrame, list[tuple[str, str, str, str]]]:
    """One row per answer row and domain: the state it gives, or its points in a summed score."""
    picked, unmapped = [], []
    for row in answers.itertuples(index=False):
        found = _match(catalog, row)
        if isinstance(found, str):
            unmapped.append(("answers", row.item_system, row.item_code, found))
            continue
        inst, item = found
        answer = item.answer(row.answer_code if isinstance(row.answer_code, str) else None,
                             row.answer_text if isinstance(row.answer_text, str) else None)
        for domain in item.domains:
            applies = answer.domain in (None, domain)
            state = answer.state if applies or answer.state == "declined" else "negative"
            picked.append((row.patient_id, row.effective_time, inst.name, item.code, domain,
                           state or "points", answer.points or 0))
    frame = pd.DataFrame(picked, columns=["patient_id", "time", "instrument", "item", "domain",
                                          "state", "points"])
    return frame, unmapped


def _score(states: pd.Series) -> str:
    """Several answers to one domain at one instant: any positive, all declined, else negative."""
    values = set(states)
    if "positive" in values:
        return "positive"
    return "declined" if values == {"declined"} else "negative"


def _instrument_state(group: pd.DataFrame, thresholds: dict[tuple[str, str], int]) -> str:
    """One instrument's state of one domain at one instant: summed points or `_score`."""
    threshold = thresholds.get((group["instrument"].iloc[0], group["domain"].iloc[0]))
    if threshold is None or set(group["state"]) == {"declined"}:
        return _score(group["state"])
    return "positive" if group["points"].sum() >= threshold else "negative"


def _domain_answers(items: pd.DataFrame, catalog: ScreeningCatalog) -> pd.DataFrame:
    """One row per patient, instant and domain: the scored state and the deciding instrument."""
    items = items.assign(time=_utc(items["time"]))
    thresholds = {(inst.name, domain): n for inst in catalog.instruments
                  for domain, n in inst.positive_at_least.items()}
    # A multi-select item gives one row per selected answer: an item scores like a domain.
    keys = ["patient_id", "time", "instrument", "domain"]
    per_instrument = pd.DataFrame(
        [(*key, _instrument_state(group, thresholds))
         for key, group in items.groupby(keys, sort=False)], columns=[*keys, "state"])
    order = {inst.name: n for n, inst in enumerate(catalog.instruments)}
    per_instrument["rank"] = per_instrument["instrument"].map(order)
    scored = (per_instrument.groupby(["patient_id", "time", "domain"])["state"].agg(_score)
              .rename("scored").reset_index())
    deciding = per_instrument.merge(scored, on=["patient_id", "time", "domain"])
    deciding = deciding[deciding["state"] == deciding["scored"]].sort_values("rank", kind="stable")
    return deciding.drop_duplicates(["patient_id", "time", "domain"])[
        ["patient_id", "time", "domain", "state", "instrument"]]


def _conditions(catalog: ScreeningCatalog, conditions: pd.DataFrame
                ) -> tuple[pd.DataFrame, list[tuple[str, str, str, str]]]:
    """Mapped Conditions as intervals [start, end) per domain; the others, counted."""
    kept, unmapped = [], []
    for row in conditions.itertuples(index=False):
        domain = catalog.condition_domain(row.code_system, str(row.code))
        start = row.onset if pd.notna(row.onset) else row.recorded
        if domain is None or pd.isna(start):
            reason = "condition_not_in_catalog" if domain is None else "condition_without_onset"
            unmapped.append(("conditions", row.code_system, row.code, reason))
            continue
        system = catalog.system(row.code_system)
        kept.append((row.patient_id, domain, start, row.abatement, f"condition:{system}"))
    frame = pd.DataFrame(kept, columns=["patient_id", "domain", "start", "end", "instrument"])
    frame["start"], frame["end"] = _utc(frame["start"]), _utc(frame["end"])
    return frame, unmapped


def _state_at(t, domain, answered: pd.DataFrame, intervals: pd.DataFrame) -> tuple:
    """A domain's (state, instrument, screened_at) at instant ``t``."""
    active = intervals[(intervals["domain"] == domain) & (intervals["start"] <= t)
                       & (intervals["end"].isna() | (intervals["end"] > t))]
    if len(active):
        latest = active.sort_values(["start", "instrument"]).iloc[-1]
        return "positive", latest["instrument"], latest["start"]
    before = answered[(answered["domain"] == domain) & (answered["time"] <= t)]
    if len(before):
        latest = before.iloc[-1]  # sorted by time
        return latest["state"], latest["instrument"], latest["time"]
    return "not_screened", None, pd.NaT


def _patient_rows(patient, answered, intervals, domains) -> list[tuple]:
    instants = sorted({*answered["time"], *intervals["start"], *intervals["end"].dropna()})
    rows, previous = [], None
    for t in instants:
        states = tuple(v for d in domains for v in _state_at(t, d, answered, intervals))
        if states != previous:
            rows.append((patient, t, *states))
        previous = states
    return rows


def screening_states(answers: pd.DataFrame, conditions: pd.DataFrame, *,
                     catalog: ScreeningCatalog | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carry every domain's screened state forward, one row per patient and change instant.

    Parameters
    ----------
    answers
        `ANSWER_COLUMNS` rows (one per selected answer; a multi-select item has several rows at
        one instant). ``instrument`` may be a name, alias or panel code (``93042-0`` ->
        PRAPARE); when missing, the first instrument of the catalog whose item has the answer.
    conditions
        `CONDITION_COLUMNS` rows; positive from ``onset`` (else ``recorded``) until
        ``abatement`` (exclusive; open when null).
    catalog
        The screening catalog (the packaged one by default).

    Returns
    -------
    states : pandas.DataFrame
        `state_columns`: ``patient_id``, ``effective_time`` (UTC) and per domain
        ``<domain>_state`` (positive, negative, declined, not_screened),
        ``<domain>_instrument`` (PRAPARE, HVS, AHC-HRSN, ``condition:icd10cm``,
        ``condition:snomed``; null when not screened) and ``<domain>_screened_at`` (the
        instant of the answer or Condition onset in force). A row is written only where some
        domain changes; sorted by patient and time.
    unmapped : pandas.DataFrame
        `UNMAPPED_COLUMNS`: answers and Conditions that map to no domain, counted by table,
        system, code and reason (``item_not_in_catalog``, ``answer_not_in_catalog``,
        ``item_not_loinc``, ``condition_not_in_catalog``, ``condition_without_onset``).
    """
    catalog = catalog or load_screening_catalog()
    items, unmapped = _item_states(catalog, answers[list(ANSWER_COLUMNS)])
    answered = _domain_answers(items, catalog).sort_values(["patient_id", "time"], kind="stable")
    intervals, unmapped_conditions = _conditions(catalog, conditions[list(CONDITION_COLUMNS)])
    rows = []
    for patient in sorted({*answered["patient_id"], *intervals["patient_id"]}):
        rows += _patient_rows(patient, answered[answered["patient_id"] == patient],
                              intervals[intervals["patient_id"] == patient], catalog.domain_names)
    states = pd.DataFrame(rows, columns=list(state_columns(catalog)))
    states["effective_time"] = _utc(states["effective_time"])
    for d in catalog.domain_names:
        states[f"{d}_screened_at"] = _utc(states[f"{d}_screened_at"])
    counted = pd.DataFrame(unmapped + unmapped_conditions, columns=list(UNMAPPED_COLUMNS[:-1]))
    counted = (counted.fillna({"code_system": ""}).groupby(list(UNMAPPED_COLUMNS[:-1]))
               .size().rename("rows").reset_index())
    return states, counted[list(UNMAPPED_COLUMNS)]
