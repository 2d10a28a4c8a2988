"""Settings read once from the environment and passed down; nothing here runs at import.

`Settings` is the one place the environment is read: the ``sdoh`` command builds it at start
(`load_settings`), library entry points take it (or explicit arguments, which win) and pass it
down. Secrets are `pydantic.SecretStr`: never in a repr, a log line or an error.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingestion.core.errors import InputError

PROFILES = ("embedded", "production", "spark")
Profile = Literal["embedded", "production", "spark"]
#: The workspace every command uses unless given ``--workspace`` or ``SDOH_WORKSPACE``.
DEFAULT_WORKSPACE = "sdoh_workspace"


class Settings(BaseSettings):
    """Every setting of the project; each field reads ``SDOH_<FIELD>`` unless named otherwise.

    Precedence: an argument given to the constructor wins over the environment, which wins
    over the defaults below.

    Parameters
    ----------
    workspace : path, default "sdoh_workspace"
        The folder every command reads and writes (``SDOH_WORKSPACE``).
    profile : {"embedded", "production", "spark"}, default "embedded"
        Where Feast keeps its registry and online store, and which offline store reads the
        published files (``SDOH_PROFILE``).
    project : str, default "sdoh"
        The Feast project name (``SDOH_PROJECT``).
    redis : SecretStr, default "127.0.0.1:6379"
        Redis connection string of the production and spark profiles; may hold a password
        (``SDOH_REDIS``).
    redis_timeout_s : float, default 2
        Seconds any Redis connect, read or write may take (``SDOH_REDIS_TIMEOUT_S``);
        parameters given in ``redis`` itself win.
    registry_url : SecretStr
        SQL registry of the production profile, default the local PostgreSQL
        (``SDOH_REGISTRY_URL``); may hold a password.
    spark_master, spark_driver_memory, spark_shuffle_partitions
        Spark profile's ``spark.master`` (``local[2]``), ``spark.driver.memory`` (``4g``:
        Spark's 1g hangs near 1M entity rows) and ``spark.sql.shuffle.partitions`` (8:
        Spark's 200 suits a cluster, not local[2]) (``SDOH_SPARK_*``).
    cache_dir : path, optional
        Where Census API responses and boundary files are kept (``SDOH_CACHE_DIR``).
    census_api_key : SecretStr, optional
        Census Data API key (``CENSUS_API_KEY``).
    server_token, server_admin_token : SecretStr, optional
        Bearer tokens of the feature server's read and write routes (``SDOH_SERVER_TOKEN``,
        ``SDOH_SERVER_ADMIN_TOKEN``).
    patient_key_secret : SecretStr, optional
        Secret of pseudonymized patient keys (``SDOH_PATIENT_KEY_SECRET``).

    Examples
    --------
    >>> settings = Settings(profile="spark", census_api_key="k" * 40)
    >>> settings.profile, "k" * 40 in repr(settings)
    ('spark', False)
    """

    # An empty variable counts as unset (``SDOH_SERVER_TOKEN=`` means no token).
    model_config = SettingsConfigDict(env_prefix="SDOH_", env_ignore_empty=True, frozen=True,
                                      extra="forbid", populate_by_name=True)

    workspace: Path = Path(DEFAULT_WORKSPACE)
    profile: Profile = "embedded"
    project: str = "sdoh"
    redis: SecretStr = SecretStr("127.0.0.1:6379")
    redis_timeout_s: float = Field(default=2.0, gt=0)
    registry_url: SecretStr = SecretStr("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    spark_master: str = "local[2]"
    spark_driver_memory: str = "4g"
    spark_shuffle_partitions: int = Field(default=8, ge=1)
    cache_dir: Path | None = None
    census_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("census_api_key", "CENSUS_API_KEY"))
    server_token: SecretStr | None = None
    server_admin_token: SecretStr | None = None
    patient_key_secret: SecretStr | None = None

    def profile_values(self, workspace: Path) -> dict[str, str]:
        """The values a profile's YAML template names (``${SDOH_...}``), for ``workspace``.

        Examples
        --------
        >>> Settings().profile_values(Path("/tmp/ws"))["SDOH_REDIS_TIMEOUT_S"]
        '2'
        """
        return {
            "SDOH_WORKSPACE": str(workspace),
            "SDOH_PROJECT": self.project,
            "SDOH_REDIS": self.redis.get_secret_value(),
            "SDOH_REDIS_TIMEOUT_S": f"{self.redis_timeout_s:g}",
            "SDOH_REGISTRY_URL": self.registry_url.get_secret_value(),
            "SDOH_SPARK_MASTER": self.spark_master,
            "SDOH_SPARK_DRIVER_MEMORY": self.spark_driver_memory,
            "SDOH_SPARK_SHUFFLE_PARTITIONS": str(self.spark_shuffle_partitions),
        }


def load_settings(base: Settings | None = None, **explicit: Any) -> Settings:
    """The settings: ``explicit`` values, else ``base``'s, else the environment's, else defaults.

    Parameters
    ----------
    base : Settings, optional
        Settings already read: their values are kept (the environment is not read again)
        except where ``explicit`` gives one.
    **explicit
        Field values given by the caller, e.g. from command-line options; None means not given.

    Raises
    ------
    ingestion.core.errors.InputError
        If a value is invalid; the message names the variable, never a secret's value.

    Examples
    --------
    >>> load_settings(profile="production", workspace=None).profile
    'production'
    >>> load_settings(Settings(project="p"), profile="spark").project
    'p'
    >>> load_settings(profile="cluster")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ingestion.core.errors.InputError: SDOH_PROFILE: Input should be 'embedded', 'production' or 'spark'...
    """
    given = {name: value for name, value in explicit.items() if value is not None}
    try:
        return Settings(**(base.model_dump() if base is not None else {}) | given)
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{problems}; fix the environment variable or the option") from None


def _variable(loc: tuple) -> str:
    """The environment variable of a field, as the user sets it."""
    name = str(loc[0]) if loc else "setting"
    return "CENSUS_API_KEY" if name.lower() == "census_api_key" else f"SDOH_{name.upper()}"


def secret(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret, for the one call that needs it.

    Examples
    --------
    >>> secret(SecretStr("k")), secret(None)
    ('k', None)
    """
    return value.get_secret_value() if value is not None else None


def default_worker_python(environ: MutableMapping[str, str]) -> None:
    """Make Spark start its Python workers with this interpreter, unless ``PYSPARK_PYTHON`` is set.

    Spark reads ``PYSPARK_PYTHON`` (else the "python3" on PATH) when a session starts: call
    this first, with ``os.environ``. This interpreter has the packages the workers run; on a
    cluster, set ``PYSPARK_PYTHON`` to the executors' Python.

    Examples
    --------
    >>> environ = {}
    >>> default_worker_python(environ)
    >>> environ["PYSPARK_PYTHON"] == sys.executable
    True
    """
    environ.setdefault("PYSPARK_PYTHON", sys.executable)
