"""The one retry policy and loop of the HTTP clients (ingestion/sources/http.py).

The loop is tested on its own with attempts made up in the test; the clients are tested
against the local servers of their own tests (the Census API replay server, the fake Census
Geocoder, the TIGER file server), one `RetryPolicy` shared by all three. The policy's own
``sleep``, ``clock`` and seeded ``rng`` make every wait known: no test sleeps or reads the
time.
"""

from __future__ import annotations

import random
import re
import threading

import pytest
import tenacity
from fake_clock import FakeClock
from test_census_api import KEY, _synthetic_tree
from test_geocoder import ADDRESSES, GEO, FakeGeocoder
from test_tiger import DE_2020, TigerServer, files  # noqa: F401 (a fixture)

from ingestion.core.errors import CensusApiError
from ingestion.demo.replay import CensusReplayServer
from ingestion.sources.census_api import CensusClient
from ingestion.sources.geocoder import CensusGeocoder
from ingestion.sources.http import (
    FROM_ENVIRONMENT,
    Attempt,
    Cancelled,
    RetryPolicy,
    Service,
    Trouble,
    cache_root,
)
from ingestion.sources.tiger import download_boundaries
from sdoh_sources.errors import SdohError

BUSY = Attempt(problem="HTTP 503: busy", retryable=True)


def _policy(waits: list[float], **kw) -> RetryPolicy:
    settings = {"timeout": 5.0, "max_retries": 3, "backoff": 1.0, "max_delay": 30.0,
                "rng": random.Random(11), "sleep": waits.append, **kw}
    return RetryPolicy(**settings)


def _answers(*attempts: Attempt):
    queue = list(attempts)
    return lambda: queue.pop(0)


# -- the loop ----------------------------------------------------------------------------------


def test_the_loop_is_a_tenacity_retrying():
    assert isinstance(_policy([]).retrying(), tenacity.Retrying)


def test_failures_are_retried_with_jittered_backoff_until_an_answer():
    waits: list[float] = []
    outcome, attempts = _policy(waits).call(_answers(BUSY, BUSY, Attempt(value="rows")))
    jitter = random.Random(11)
    assert (outcome.value, attempts) == ("rows", 3)
    assert waits == [2 ** n * jitter.uniform(0.5, 1.5) for n in range(2)]


def test_retries_are_bounded_and_the_last_failure_is_returned():
    waits: list[float] = []
    outcome, attempts = _policy(waits, max_retries=2).call(_answers(BUSY, BUSY, BUSY, BUSY))
    assert (outcome, attempts, len(waits)) == (BUSY, 3, 2)


def test_a_failure_that_is_not_retryable_ends_at_once():
    refused = Attempt(problem="HTTP 404: not found")
    waits: list[float] = []
    assert _policy(waits).call(_answers(refused, Attempt(value="rows"))) == (refused, 1)
    assert waits == []


def test_retry_after_wins_over_backoff_but_is_capped():
    waits: list[float] = []
    slow = Attempt(problem="HTTP 503: busy", retryable=True, retry_after=120.0)
    _policy(waits, max_delay=7.0).call(_answers(slow, Attempt(value="rows")))
    assert waits == [7.0]


def test_a_429_sets_the_shared_pause_that_the_next_attempt_waits_out():
    clock = FakeClock()
    policy = _policy(clock.waits, max_delay=20.0, sleep=clock.sleep, clock=clock)
    limited = Attempt(problem="HTTP 429: slow down", retryable=True, retry_after=20.0,
                      rate_limited=True)
    policy.call(_answers(limited, Attempt(value="rows")))
    assert clock.waits == [20.0]  # from the pause, not a sleep of its own
    clock.advance(6.0)
    policy.call(_answers(Attempt(value="rows")))  # another request, which got no 429
    assert clock.waits == [20.0, 14.0]  # what is left of the pause
    clock.advance(14.0)
    policy.call(_answers(Attempt(value="rows")))  # the pause is over
    assert clock.waits == [20.0, 14.0]


def test_incomplete_bodies_have_their_own_limit():
    garbled = Attempt(problem="HTTP 200 but truncated", retryable=True, bad_body=True)
    outcome, attempts = _policy([], max_retries=9).call(_answers(*[garbled] * 10),
                                                        max_bad_bodies=2)
    assert (outcome, attempts) == (garbled, 3)


def test_progress_resumes_at_once_without_using_up_a_retry():
    waits: list[float] = []
    grew = Attempt(problem="connection lost after 100 bytes", retryable=True, resume=True)
    heard = []
    outcome, attempts = _policy(waits, max_retries=1).call(
        _answers(grew, grew, grew, BUSY, Attempt(value="file")), max_resumes=3,
        on_retry=heard.append)
    assert (outcome.value, attempts, len(waits)) == ("file", 5, 1)
    assert [(r.resumed, r.failures, r.delay > 0) for r in heard] == [
        (True, 0, False), (True, 0, False), (True, 0, False), (False, 1, True)]


def test_resumes_past_their_limit_count_as_failures():
    grew = Attempt(problem="connection lost after 100 bytes", retryable=True, resume=True)
    outcome, attempts = _policy([], max_retries=1).call(_answers(*[grew] * 10), max_resumes=2)
    assert (outcome, attempts) == (grew, 4)  # 2 resumes, then 2 failures


def test_a_cancelled_request_makes_no_further_attempt():
    cancel = threading.Event()
    made = []

    def attempt() -> Attempt:
        made.append(1)
        cancel.set()  # another request failed for good meanwhile
        return BUSY

    with pytest.raises(Cancelled):
        _policy([]).call(attempt, cancel=cancel)
    assert made == [1]


# -- the error of a request that failed for good -------------------------------------------------

DEMO = Service(name="the demo API", url_option="--demo-url (base_url=)",
               busy=" (a key raises the rate limit)", offline="use the --cache-dir of a pull",
               refused="Check the request's arguments.")


@pytest.mark.parametrize(("attempt", "advice"), [
    (BUSY, "The demo API is failing, slow or rate-limiting: try again later (a key raises the "
           "rate limit)."),
    (Attempt(problem="ConnectionError: refused", retryable=True, trouble=Trouble.NETWORK),
     "Check the network connection (and any proxy settings), then run again; without a "
     "network, use the --cache-dir of a pull."),
    (Attempt(problem="HTTP 200 but truncated", retryable=True, bad_body=True),
     "Nothing was cached: run again to fetch afresh; if it persists, a proxy or mirror between "
     "you and the demo API (--demo-url (base_url=)) may be altering its answers."),
    (Attempt(problem="HTTP 404: no such table"), "Check the request's arguments."),
])
def test_the_advice_follows_the_kind_of_failure(attempt, advice):
    assert DEMO.advice(attempt.kind) == advice
    message = DEMO.failure(attempt, attempts=3, method="GET", url="https://x.test/t?key=REDACTED")
    assert message.endswith(f"{attempt.problem} (GET https://x.test/t?key=REDACTED). {advice}")


def test_the_error_names_the_attempts_only_when_the_retries_ran_out():
    request = {"method": "POST", "url": "https://x.test/batch", "what": "batch 2 of 3"}
    assert DEMO.failure(BUSY, attempts=1, **request).startswith(
        "A request to the demo API failed after 1 attempt: HTTP 503: busy (POST "
        "https://x.test/batch, batch 2 of 3). ")
    assert DEMO.failure(Attempt(problem="HTTP 400: bad"), attempts=1, **request) == (
        "A request to the demo API failed: HTTP 400: bad (POST https://x.test/batch, batch 2 of "
        "3). Check the request's arguments.")


def test_the_cache_root_default_is_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SDOH_CACHE_DIR", str(tmp_path))
    assert cache_root(FROM_ENVIRONMENT) == tmp_path
    assert cache_root(None) is None
    with pytest.raises(TypeError, match="cache_dir must be a folder path or None"):
        cache_root(" ")


# -- one policy, three clients -----------------------------------------------------------------


@pytest.fixture
def census(tmp_path, monkeypatch):
    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    with CensusReplayServer(_synthetic_tree(tmp_path / "replay")) as srv:
        yield srv


@pytest.fixture
def geocoder():
    fake = FakeGeocoder()
    yield fake
    fake.stop()


@pytest.fixture
def tiger(files):  # noqa: F811 (the fixture imported above)
    srv = TigerServer(files)
    yield srv
    srv.stop()


def _pull(census: CensusReplayServer, policy: RetryPolicy):
    with CensusClient(base_url=census.base_url, api_key=KEY, cache_dir=None, progress=False,
                      retry=policy) as client:
        return client.get_table(2024, "acs/acs5", ["B01003_001E"], "tract", state="99")


def _geocode(geocoder: FakeGeocoder, policy: RetryPolicy):
    with CensusGeocoder(base_url=geocoder.base_url, max_workers=1, progress=False,
                        retry=policy) as client:
        return client.geocode(ADDRESSES, send_addresses_to_census_geocoder=True, **GEO)


def _download(tiger: TigerServer, policy: RetryPolicy, tmp_path):
    return download_boundaries("tract", 2020, "DE", base_url=tiger.base_url,
                               cache_dir=tmp_path / "cache", progress=False, retry=policy)


def test_the_same_policy_drives_all_three_clients(census, geocoder, tiger, tmp_path):
    waits: list[float] = []
    policy = _policy(waits, backoff=0.5)
    census.inject(500)
    geocoder.inject(500)
    tiger.fault(DE_2020, 500)
    assert len(_pull(census, policy)) == 4
    assert _geocode(geocoder, policy)["geocode_match"].notna().any()
    [path] = _download(tiger, policy, tmp_path)
    # One retry each, in turn, each drawing its jitter from the one policy's generator.
    jitter = random.Random(11)
    assert waits == [0.5 * jitter.uniform(0.5, 1.5) for _ in range(3)]
    assert (len(census.requests), len(geocoder.received), len(tiger.served(DE_2020))) == (2, 2, 2)


def test_a_429_to_one_client_pauses_the_others(census, geocoder, tiger, tmp_path):
    clock = FakeClock()
    policy = _policy(clock.waits, sleep=clock.sleep, clock=clock)
    census.inject(429, headers={"Retry-After": "30"})
    _pull(census, policy)
    clock.advance(10.0)
    _geocode(geocoder, policy)
    clock.advance(5.0)
    _download(tiger, policy, tmp_path)
    # The census retry, then the first request of the geocoder and of the download, all wait
    # out the one pause (a fresh policy per client would give one wait only).
    assert clock.waits == [30.0, 20.0, 15.0]


def test_exhausted_retries_name_the_url_with_the_key_redacted(census):
    policy = _policy([], max_retries=2)
    census.inject(429, times=5, headers={"Retry-After": "1"}, body="error: too many requests")
    with pytest.raises(CensusApiError) as caught:
        _pull(census, policy)
    message = str(caught.value)
    assert message.startswith("A request to the Census Data API failed after 3 attempts: HTTP "
                              "429: error: too many requests (GET http://127.0.0.1:")
    assert "/data/2024/acs/acs5?get=B01003_001E&for=tract:*&in=state:99&key=REDACTED)" in message
    assert message.endswith("). The Census Data API is failing, slow or rate-limiting: try "
                            "again later (a key in CENSUS_API_KEY raises the rate limit).")
    assert KEY not in message and KEY not in repr(caught.value)
    assert len(census.requests) == 3


def test_the_three_clients_report_exhausted_retries_alike(census, geocoder, tiger, tmp_path):
    policy = _policy([], max_retries=2)
    census.inject(503, times=5, body="error: busy")
    geocoder.inject(503, times=5, body="error: busy")
    tiger.fault(DE_2020, 503, 503, 503, 503)
    failures = []
    for run in (lambda: _pull(census, policy), lambda: _geocode(geocoder, policy),
                lambda: _download(tiger, policy, tmp_path)):
        with pytest.raises(SdohError) as caught:
            run()
        failures.append(str(caught.value))
    shape = (r"^A request to the ([A-Za-z ]+?) failed after 3 attempts: HTTP 503: (.+?) "
             r"\((GET|POST) (http://127\.0\.0\.1:\d+/.+?)\)\. The \1 is failing, slow or "
             r"rate-limiting: try again later(.*)\.$")
    found = [re.match(shape, message, re.DOTALL) for message in failures]
    assert all(found), failures
    assert [m.group(1) for m in found] == [
        "Census Data API", "Census Geocoder", "Census boundary file server"]
    assert [m.group(3) for m in found] == ["GET", "POST", "GET"]
    assert found[0].group(4).endswith("&key=REDACTED") and KEY not in failures[0]
    assert ", batch 1 of 1 (5 rows; row ids " in found[1].group(4)
    assert found[2].group(4).endswith("tl_2020_10_tract.zip")
    assert [m.group(5) for m in found] == [
        " (a key in CENSUS_API_KEY raises the rate limit)",
        " with smaller batches (batch_size=) or fewer workers (max_workers=)",
        " (files already downloaded are kept, and an interrupted one resumes)"]


@pytest.mark.parametrize("client", [CensusClient, CensusGeocoder])
def test_retry_settings_and_a_shared_policy_are_not_both_given(client):
    policy = _policy([])
    with pytest.raises(ValueError, match=r"retry= and \['backoff'\] were both given"):
        client(base_url="http://127.0.0.1:9", retry=policy, backoff=0.25)
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        client(base_url="http://127.0.0.1:9", retry={"max_retries": 2})
