"""Pseudonymized patient keys: a keyed hash so the online store need not hold raw identifiers.

A patient id becomes ``HMAC-SHA256(secret, id)`` as 64 hex digits. The secret comes from the
environment variable `PATIENT_KEY_ENV` (``SDOH_PATIENT_KEY_SECRET``) only: it is never an
argument on a command line (shells keep history), never logged and never written anywhere.
The same id and secret always give the same key, so events can still be joined to the
timeline; without the secret a key cannot be turned back into an id or recomputed from a
guessed id (unlike a plain hash of a medical record number, which can be brute-forced).

The published timeline says which scheme its ``patient_id`` uses in ``patient_id_scheme``:
``raw`` or ``hmac_sha256:<fingerprint>``, where the fingerprint is a keyed hash of a fixed
label (it identifies the secret without revealing it). `lookup_keys` reads it, so the training
frame and online lookups hash the caller's ids with the same secret, and a different secret is
an error rather than a silent miss.

Examples
--------
>>> pseudonymize_ids(pd.Series(["P000001"]), secret=b"x" * 32).str.len().tolist()
[64]
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ingestion.core.datasets import geography_timeline_spec
from ingestion.core.errors import LinkageError
from ingestion.core.settings import load_settings, secret
from ingestion.core.workspace import Workspace

__all__ = [
    "MIN_SECRET_LENGTH",
    "PATIENT_KEY_ENV",
    "RAW_SCHEME",
    "key_fingerprint",
    "lookup_keys",
    "patient_key_secret",
    "pseudonymize_ids",
    "pseudonymize_timeline",
    "scheme_of",
]

#: The environment variable holding the secret.
PATIENT_KEY_ENV = "SDOH_PATIENT_KEY_SECRET"
#: A shorter secret is refused: HMAC keys should carry at least 128 bits of entropy.
MIN_SECRET_LENGTH = 32
#: ``patient_id_scheme`` of a timeline holding the ids as given.
RAW_SCHEME = "raw"
_SCHEME_COLUMN = "patient_id_scheme"
_FINGERPRINT_LABEL = b"sdoh-feature-store patient key fingerprint v1"
_HOW_TO_MAKE = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"


def patient_key_secret() -> bytes:
    """The pseudonymization secret from ``SDOH_PATIENT_KEY_SECRET``.

    Returns
    -------
    bytes
        The variable's value, UTF-8 encoded.

    Raises
    ------
    LinkageError
        The variable is unset, empty or shorter than `MIN_SECRET_LENGTH` characters; the
        message names the variable and how to make a secret, never the value.

    Examples
    --------
    >>> secret = patient_key_secret()  # doctest: +SKIP
    """
    value = secret(load_settings().patient_key_secret) or ""
    if not value:
        raise LinkageError(f"pseudonymized patient keys need a secret: set the environment "
                           f"variable {PATIENT_KEY_ENV} to at least {MIN_SECRET_LENGTH} random "
                           f"characters ({_HOW_TO_MAKE}) and keep it with your other secrets")
    if len(value) < MIN_SECRET_LENGTH:
        raise LinkageError(f"{PATIENT_KEY_ENV} is set but has {len(value)} characters; use at "
                           f"least {MIN_SECRET_LENGTH} random characters ({_HOW_TO_MAKE})")
    return value.encode("utf-8")


def key_fingerprint(secret: bytes) -> str:
    """A public 16-hex-digit name of ``secret``: tells secrets apart without revealing them.

    Examples
    --------
    >>> len(key_fingerprint(b"x" * 32))
    16
    """
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def pseudonymize_ids(ids: pd.Series, *, secret: bytes) -> pd.Series:
    """HMAC-SHA256 each id (as text) with ``secret``: 64 hex digits, same index.

    Parameters
    ----------
    ids
        Patient ids; numbers are hashed as their text (``7`` like ``"7"``). Nulls stay null.
    secret
        The key, e.g. from `patient_key_secret`.

    Returns
    -------
    pandas.Series
        String dtype, one key per id; each distinct id is hashed once.

    Examples
    --------
    >>> keys = pseudonymize_ids(pd.Series(["a", "b", "a"]), secret=b"k" * 32)
    >>> keys[0] == keys[2] != keys[1]
    True
    """
    codes, distinct = pd.factorize(ids.astype("string"))
    hashed = [hmac.new(secret, str(v).encode("utf-8"), hashlib.sha256).hexdigest()
              for v in distinct]
    keys = pd.array(hashed, dtype="string").take(codes, allow_fill=True)
    return pd.Series(keys, index=ids.index, name=ids.name)


def pseudonymize_timeline(timeline: pd.DataFrame, *, secret: bytes) -> pd.DataFrame:
    """A copy of a geography timeline whose ``patient_id`` is the keyed hash of the raw id.

    Parameters
    ----------
    timeline
        A frame of `ingestion.core.datasets.geography_timeline_spec` with raw ids
        (``patient_id_scheme`` ``raw``).
    secret
        The key, e.g. from `patient_key_secret`.

    Returns
    -------
    pandas.DataFrame
        Same rows and columns; ``patient_id_scheme`` is ``hmac_sha256:<fingerprint>``.

    Raises
    ------
    LinkageError
        The timeline is pseudonymized already (hashing twice would lose every patient).

    Examples
    --------
    >>> published = pseudonymize_timeline(timeline, secret=b"a secret of at least 32 characters")
    >>> published["patient_id_scheme"].iloc[0].startswith("hmac_sha256:")
    True
    """
    if (timeline[_SCHEME_COLUMN] != RAW_SCHEME).any():
        raise LinkageError("the timeline's patient ids are pseudonymized already "
                           f"({_SCHEME_COLUMN}={timeline[_SCHEME_COLUMN].iloc[0]!r})")
    return timeline.assign(patient_id=pseudonymize_ids(timeline["patient_id"], secret=secret),
                           **{_SCHEME_COLUMN: f"hmac_sha256:{key_fingerprint(secret)}"})


def scheme_of(workspace: Workspace) -> str:
    """The ``patient_id_scheme`` of the published timeline (``raw`` when none is published).

    Examples
    --------
    >>> scheme_of(ws)  # a pseudonymized timeline's reads 'hmac_sha256:<fingerprint>'
    'raw'
    """
    files = sorted(workspace.published_dir(geography_timeline_spec().name).glob("**/*.parquet"))
    if not files:
        return RAW_SCHEME
    return _scheme_in(str(files[0]), files[0].stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _scheme_in(path: str, _mtime_ns: int) -> str:
    """The scheme of one published file (cached per file version: online lookups are hot)."""
    parquet = pq.ParquetFile(Path(path))
    if parquet.metadata.num_rows == 0:
        return RAW_SCHEME
    return str(parquet.read_row_group(0, columns=[_SCHEME_COLUMN])[_SCHEME_COLUMN][0])


def lookup_keys(patient_ids: pd.Series, workspace: Workspace) -> pd.Series:
    """The keys the published timeline holds for the caller's patient ids.

    Raw ids when the timeline was published with raw ids; otherwise their keyed hash, with
    the secret from ``SDOH_PATIENT_KEY_SECRET``, which must be the one the timeline was
    published with.

    Parameters
    ----------
    patient_ids
        The caller's ids, as text.
    workspace
        Where the timeline is published.

    Returns
    -------
    pandas.Series
        One key per id, same index.

    Raises
    ------
    LinkageError
        The timeline is pseudonymized and the secret is missing, too short or not the one it
        was published with (the message names the variable and both fingerprints).

    Examples
    --------
    >>> lookup_keys(pd.Series(["A", "Z"]), ws).tolist()  # raw ids: the keys are the ids
    ['A', 'Z']
    """
    scheme = scheme_of(workspace)
    if scheme == RAW_SCHEME:
        return patient_ids
    secret = patient_key_secret()
    published = scheme.removeprefix("hmac_sha256:")
    if key_fingerprint(secret) != published:
        raise LinkageError(f"{PATIENT_KEY_ENV} is not the secret the patient geography was "
                           f"published with (fingerprint {key_fingerprint(secret)}, published "
                           f"{published}); set it to that secret, or link and publish again")
    return pseudonymize_ids(patient_ids, secret=secret)
