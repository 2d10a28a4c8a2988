"""Read a publisher's CSV file as text columns, refusing empty, header-only and non-UTF-8 files.

One rule for every publisher file the project reads (CDC SVI files, Neighborhood Atlas ADI
files): the bytes are UTF-8, with or without a byte-order mark (CDC and the Atlas publish
ASCII; a file saved as Latin-1 by a spreadsheet is refused, not guessed at, since a wrong guess
changes names silently); there is a header row and at least one data row. Each failure is an
`InputError` naming the file (and the line, for a byte that is not UTF-8) and what to do.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
>>> _ = path.write_bytes(b"\\xef\\xbb\\xbfFIPS,RANK\\n01001,7\\n")
>>> read_csv_text(path, what="an SVI file").to_dict("list")
{'FIPS': ['01001'], 'RANK': ['7']}
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ingestion.core.errors import InputError

__all__ = ["decoded_text", "read_csv_text"]


def decoded_text(path: str | Path, *, what: str, data: bytes | None = None,
                 encoding: str = "utf-8") -> str:
    """A file's text in its declared encoding, refused (never guessed) when it is not.

    Parameters
    ----------
    path : str or Path
        The file (with ``data``: how messages name where the bytes came from).
    what : str
        What the file should be, for messages.
    data : bytes, optional
        The bytes, when they do not come from ``path`` itself (a zip member).
    encoding : str
        The declared encoding; UTF-8 (the default) accepts a byte-order mark.

    Raises
    ------
    InputError
        The file cannot be read, is empty, or is not in ``encoding`` (the line of the first
        bad byte is named, with how to convert the file).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfA,B\\n")
    >>> decoded_text(path, what="a file")
    'A,B\\n'
    """
    path = Path(path)
    try:
        data = path.read_bytes() if data is None else data
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}; check the path "
                         "and its permissions") from exc
    if not data.strip():
        raise InputError(f"{path}: the file is empty; expected {what} with a header row and data "
                         "rows: download it again")
    utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    named = "UTF-8" if utf8 else encoding
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not {named}; expected "
            f"{what} in {named} (as published): download it again or convert it, e.g. "
            f"`iconv -f latin1 -t {named.lower()} {path.name} > converted_{path.name}`") from exc


def read_csv_text(path: str | Path, *, what: str, data: bytes | None = None,
                  encoding: str = "utf-8", delimiter: str = ",", names_row: int = 1,
                  skip_rows_after: int = 0) -> pd.DataFrame:
    """Every cell of a CSV as text ("" when empty), after checking the file is usable.

    Parameters
    ----------
    path : str or Path
        The CSV file (with ``data``: how messages name where the bytes came from, such as
        ``file.zip!member.csv``).
    what : str
        What the file should be, for messages: "a CDC SVI file".
    data : bytes, optional
        The file's bytes when they do not come from ``path`` itself (a zip member).
    encoding : str
        The publisher's declared encoding; UTF-8 (the default) accepts a byte-order mark.
    delimiter : str
        The field separator.
    names_row : int
        The 1-based line holding the column names; lines above it are labels and are skipped.
    skip_rows_after : int
        Further header lines below the names (units, descriptions), skipped.

    Returns
    -------
    pandas.DataFrame
        The header's columns, one row per data line, every value a string.

    Raises
    ------
    InputError
        If the file cannot be read, is empty, is not UTF-8 (the line of the first bad byte is
        named), is not a CSV pandas can parse, or has a header and no data rows.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "SVI_2020_US.csv"
    >>> _ = path.write_text("FIPS,RPL_THEMES\\n10001040100,0.5\\n10001040200,\\n")
    >>> read_csv_text(path, what="a CDC SVI file").values.tolist()
    [['10001040100', '0.5'], ['10001040200', '']]
    """
    text = decoded_text(path, what=what, data=data, encoding=encoding)
    skipped = [*range(names_row - 1), *range(names_row, names_row + skip_rows_after)]
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            sep=delimiter, skiprows=skipped)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path}: malformed CSV ({first}); expected {what}: download it "
                         "again") from exc
    if frame.empty:
        raise InputError(f"{path}: a header row and no data rows; expected {what} with one row "
                         "per area: download it again")
    return frame
