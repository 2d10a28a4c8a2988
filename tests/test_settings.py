"""One settings object: explicit values over the environment over defaults, secrets hidden,
the profile passed down to the data sources, and commands that read a workspace refusing one
that does not exist without creating anything."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from feast import FileSource

from feature_repo import apply_definitions, feature_store, render_profile
from ingestion.cli import sdoh
from ingestion.core.errors import InputError
from ingestion.core.settings import Settings, load_settings
from ingestion.core.workspace import Workspace

SECRET = "s3cret-" + "0123456789abcdef" * 2


@pytest.fixture
def clean_environment(monkeypatch):
    """No SDOH_* setting of the machine running the tests leaks in."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"SDOH_{name.upper()}", raising=False)
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("explicit", "environment", "expected"), [
    (None, None, "embedded"),  # the default
    (None, "production", "production"),  # the environment over the default
    ("spark", "production", "spark"),  # an explicit value over the environment
])
def test_explicit_wins_over_environment_over_default(clean_environment, explicit, environment,
                                                     expected):
    if environment:
        clean_environment.setenv("SDOH_PROFILE", environment)
    assert load_settings(profile=explicit).profile == expected


def test_every_setting_reads_its_variable(clean_environment, tmp_path):
    for name, value in {"SDOH_WORKSPACE": str(tmp_path), "SDOH_PROJECT": "p",
                        "SDOH_REDIS": "h:1", "SDOH_REDIS_TIMEOUT_S": "0.5",
                        "SDOH_SPARK_SHUFFLE_PARTITIONS": "3", "SDOH_CACHE_DIR": str(tmp_path / "c"),
                        "CENSUS_API_KEY": SECRET, "SDOH_SERVER_TOKEN": SECRET}.items():
        clean_environment.setenv(name, value)
    settings = Settings()
    assert (settings.workspace, settings.project, settings.redis.get_secret_value()) == (
        tmp_path, "p", "h:1")
    assert (settings.redis_timeout_s, settings.spark_shuffle_partitions) == (0.5, 3)
    assert settings.cache_dir == tmp_path / "c"
    assert settings.census_api_key.get_secret_value() == SECRET
    assert settings.server_token.get_secret_value() == SECRET


def test_an_empty_variable_is_unset(clean_environment):
    clean_environment.setenv("SDOH_SERVER_TOKEN", "")
    assert Settings().server_token is None


def test_secrets_never_appear_in_repr_or_errors(clean_environment):
    clean_environment.setenv("CENSUS_API_KEY", SECRET)
    clean_environment.setenv("SDOH_REGISTRY_URL", f"postgresql+psycopg://u:{SECRET}@db/x")
    settings = Settings(server_token=SECRET, patient_key_secret=SECRET, redis=f"h:1,password={SECRET}")
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in settings.model_dump_json()
    clean_environment.setenv("SDOH_REDIS_TIMEOUT_S", "soon")
    with pytest.raises(InputError, match=r"^SDOH_REDIS_TIMEOUT_S: .*number") as caught:
        load_settings(server_token=SECRET)
    assert SECRET not in str(caught.value)


def test_a_profile_renders_the_settings_given_not_the_environment(clean_environment, tmp_path):
    clean_environment.setenv("SDOH_REDIS", "from-environment:1")
    text = render_profile(Workspace(tmp_path), "production",
                          settings=Settings(redis="given:2", redis_timeout_s=5, project="p1"))
    config = yaml.safe_load(text)
    assert config["online_store"]["connection_string"].endswith("socket_connect_timeout=5,given:2")
    assert config["project"] == "p1"


@pytest.fixture(scope="module")
def published(tmp_path_factory, hand_built_copy):
    """The hand-built region, published (a copy of the session's); tests open their own stores."""
    return hand_built_copy(tmp_path_factory.mktemp("published"))


@pytest.mark.filterwarnings("ignore:The spark data source API is an experimental:RuntimeWarning")
@pytest.mark.parametrize("environment", [None, "embedded", "production"])
def test_the_spark_profile_gives_spark_sources_whatever_sdoh_profile_says(
        clean_environment, published, tmp_path, environment):
    spark_source = pytest.importorskip(
        "feast.infra.offline_stores.contrib.spark_offline_store.spark_source").SparkSource
    pytest.importorskip("pyspark")
    from redis_server import RedisServer

    if environment:
        clean_environment.setenv("SDOH_PROFILE", environment)
    server = RedisServer(tmp_path / "redis").start()  # the spark profile's online store
    try:
        store = feature_store(published, profile="spark", settings=Settings(redis=server.address))
        apply_definitions(store, published)
        assert store.config.offline_store.type == "spark"
        assert {type(v.batch_source) for v in store.list_feature_views()} == {spark_source}
    finally:
        server.stop()


def test_the_embedded_profile_gives_file_sources_whatever_sdoh_profile_says(clean_environment,
                                                                            published):
    clean_environment.setenv("SDOH_PROFILE", "spark")
    store = feature_store(published, profile="embedded")
    apply_definitions(store, published)
    assert {type(v.batch_source) for v in store.list_feature_views()} == {FileSource}


# -- the workspace every command uses ------------------------------------------------------------

def _inputs(folder: Path) -> dict[str, str]:
    folder.mkdir()
    (folder / "events.csv").write_text("patient_id,event_timestamp\nP000001,2022-01-01\n")
    (folder / "patients.csv").write_text("patient_id,birth_date\nP000001,1980-01-01\n")
    return {name: str(folder / name) for name in ("events.csv", "patients.csv")}


READING_COMMANDS = {
    "apply": lambda i, out: [],
    "materialize": lambda i, out: [],
    "training-frame": lambda i, out: [i["events.csv"], "-o", str(out / "frame.parquet")],
    "online": lambda i, out: ["P000001"],
    "serve": lambda i, out: [],
    "catalog": lambda i, out: [],
    "datasheet": lambda i, out: ["--out", str(out / "sheets")],
    "coverage": lambda i, out: ["--patients", i["patients.csv"], "--out", str(out / "c.html")],
}


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_a_reading_command_refuses_a_missing_workspace_and_creates_nothing(
        clean_environment, tmp_path, command):
    inputs = _inputs(tmp_path / "inputs")
    out = tmp_path / "out"
    out.mkdir()
    missing = tmp_path / "no_such_workspace"
    before = _files(tmp_path)
    result = CliRunner().invoke(sdoh, [command, *READING_COMMANDS[command](inputs, out),
                                       "--workspace", str(missing)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: no workspace at {missing}: run `sdoh demo` to build the demo there, or pass "
        "--workspace (or set SDOH_WORKSPACE) to a workspace that `sdoh ingest` or `sdoh link` wrote"]
    assert _files(tmp_path) == before  # nothing created: not the workspace, not the outputs


@pytest.mark.parametrize(("option", "environment", "expected"), [
    (None, None, "sdoh_workspace"), (None, "from_env", "from_env"), ("given", "from_env", "given")])
def test_the_workspace_is_the_option_else_sdoh_workspace_else_the_default(
        clean_environment, tmp_path, option, environment, expected):
    clean_environment.chdir(tmp_path)
    if environment:
        clean_environment.setenv("SDOH_WORKSPACE", environment)
    result = CliRunner().invoke(sdoh, ["catalog", *(["--workspace", option] if option else [])])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no workspace at {tmp_path / expected}: ")
    assert _files(tmp_path) == []


def test_a_bad_setting_is_one_line_before_any_command_runs(clean_environment, tmp_path):
    clean_environment.setenv("SDOH_PROFILE", "cluster")
    clean_environment.setenv("SDOH_SERVER_TOKEN", SECRET)
    result = CliRunner().invoke(sdoh, ["demo", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: SDOH_PROFILE: Input should be 'embedded', 'production' or 'spark'")
    assert rest == [] and SECRET not in result.output
    assert not (tmp_path / "ws").exists()


def test_serve_takes_its_token_from_the_settings(clean_environment, tmp_path):
    clean_environment.setenv("SDOH_SERVER_TOKEN", "short")  # read through Settings, then checked
    result = CliRunner().invoke(sdoh, ["serve", "--host", "0.0.0.0", "--workspace", str(tmp_path)])
    assert result.exit_code == 1
    assert "the server token is not usable" in result.stderr and "short" not in result.stderr


def test_boundaries_need_a_cache_folder_from_the_option_or_the_environment(clean_environment):
    result = CliRunner().invoke(sdoh, ["boundaries", "download", "tract", "--year", "2020"])
    assert result.exit_code == 2
    assert "pass --cache-dir DIR or set SDOH_CACHE_DIR" in result.stderr
