"""The pure parts of versions: which topics and groups are a version's, lag and ETA
arithmetic, the rules that refuse a promotion or a retirement, and the group members'
Faust metadata as Kafka hands it out."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from app.versions.active import ActiveRecord
from app.versions.admin import promotion_refusal, retire_refusal
from app.versions.catch_up import CatchUp, LagSample, LagSampler, catch_up, partition_lag
from app.versions.group_members import GroupDescription, GroupMember, decode_member
from app.versions.names import topics_by_version, version_groups, version_of
from app.versions.survey import VersionReport

TOPICS = [
    "orders",
    "kappa.orders.control",
    "kappa.orders.v1.dead-letter",
    "kappa.orders.v1.window-results",
    "kappa.orders.v1-keys-changelog",
    "kappa.orders.v1-__assignor-__leader",
    "kappa.orders.v12.late",
    "kappa.orders.v2x.late",  # not a version: v2x
    "kappa.orders2.v1.late",  # another pipeline
    "kappa.orders.v.late",
]


def test_topics_and_groups_are_found_by_version() -> None:
    assert topics_by_version("orders", TOPICS) == {
        1: [
            "kappa.orders.v1-__assignor-__leader",
            "kappa.orders.v1-keys-changelog",
            "kappa.orders.v1.dead-letter",
            "kappa.orders.v1.window-results",
        ],
        12: ["kappa.orders.v12.late"],
    }
    groups = ["kappa.orders.v1", "kappa.orders.v3", "kappa.orders.v3.extra", "kappa.other.v1"]
    assert version_groups("orders", groups) == {1: "kappa.orders.v1", 3: "kappa.orders.v3"}
    # A name with regex characters is taken literally.
    assert version_of("a.b", "kappa.a.b.v4.late") == 4
    assert version_of("a.b", "kappa.aXb.v4.late") is None


def test_lag_counts_from_the_committed_offset_or_the_first_retained_record() -> None:
    ranges = {0: (0, 100), 1: (50, 80), 2: (10, 10), 3: (20, 90)}
    # Partition 1 committed before retention removed records: lag from the first kept.
    assert partition_lag({0: 100, 1: 7, 3: 85}, ranges) == {0: 0, 1: 30, 2: 0, 3: 5}


def test_rate_and_eta_from_two_samples() -> None:
    assert catch_up(None, LagSample(10.0, 500)) == CatchUp(500, None, None)
    assert catch_up(LagSample(0.0, 1300), LagSample(4.0, 500)) == CatchUp(500, 200.0, 2.5)
    # Growing lag: a negative rate and no ETA.
    assert catch_up(LagSample(0.0, 100), LagSample(2.0, 300)) == CatchUp(300, -100.0, None)
    assert catch_up(LagSample(0.0, 100), LagSample(2.0, 0)) == CatchUp(0, 50.0, 0.0)
    assert catch_up(None, LagSample(2.0, 0)) == CatchUp(0, None, 0.0)


def test_sampler_measures_over_at_least_the_interval() -> None:
    sampler = LagSampler(min_interval_s=2.0)
    assert sampler.add(LagSample(0.0, 1000)).rate is None
    assert sampler.add(LagSample(1.0, 900)).rate is None  # too close to the first
    assert sampler.add(LagSample(2.0, 800)).rate == 100.0  # against t=0
    # Within 2 s of t=2: measured against t=0, still 2 s or more back.
    assert sampler.add(LagSample(3.0, 500)).rate == pytest.approx(500 / 3)
    assert sampler.add(LagSample(4.5, 200)).rate == pytest.approx(600 / 2.5)  # against t=2


def _member(url: str | None, partitions: dict[str, list[int]]) -> dict[str, object]:
    user_data = orjson.dumps({"url": url, "__faust": {"ns": "@ClientMetadata"}}) if url else b""
    return {
        "member_id": "m-1",
        "client_host": "/127.0.0.1",
        "member_metadata": ConsumerProtocolMemberMetadata(4, ["orders"], user_data).encode(),
        "member_assignment": ConsumerProtocolMemberAssignment(
            0, sorted(partitions.items()), b""
        ).encode(),
    }


def test_members_are_decoded_from_faust_metadata() -> None:
    member = decode_member(_member("http://w1:6066", {"orders": [3, 1], "cl": [0]}))
    assert member.url == "http://w1:6066"
    assert member.partitions == {"cl": [0], "orders": [1, 3]}
    other = decode_member(_member(None, {"orders": [0]}))
    assert other.url is None
    group = GroupDescription("g", "Stable", [member, other])
    assert group.owners("orders") == {1: "http://w1:6066", 3: "http://w1:6066"}


def _report(
    version: int, lag: int, members: int, active: bool = False, rate: float | None = None
) -> VersionReport:
    people = [GroupMember(f"m{i}", "h", f"http://w{i}:1", {"orders": [i]}) for i in range(members)]
    return VersionReport(
        version=version,
        topics=[f"kappa.orders.v{version}.late"],
        group=GroupDescription(f"kappa.orders.v{version}", "Stable", people),
        input_topics=["orders"],
        lag={"orders": {0: lag}},
        progress=CatchUp(lag, rate, None if not rate else lag / rate),
        active=active,
    )


def test_promotion_rules() -> None:
    assert promotion_refusal("orders", _report(2, 1000, 1), max_lag=1000) is None
    behind = promotion_refusal("orders", _report(2, 1001, 1, rate=100.0), max_lag=1000)
    assert behind is not None
    assert "still catching up: 1,001 input records" in behind.message
    assert "about 10s more" in behind.message
    assert behind.hint
    assert "kappa versions orders" in behind.hint
    assert "no running workers" not in behind.message
    idle = promotion_refusal("orders", _report(2, 0, 0), max_lag=1000)
    assert idle is not None
    assert "no running workers" in idle.message
    assert "catching up" not in idle.message
    unknown = promotion_refusal(
        "orders", dataclasses.replace(_report(2, 0, 1), progress=None), max_lag=1000
    )
    assert unknown is not None
    assert "its lag is unknown" in unknown.message
    # Every reason at once, so that one fix is not followed by another refusal.
    both = promotion_refusal("orders", _report(2, 5000, 0), max_lag=1000)
    assert both is not None
    assert "no running workers" in both.message
    assert "not getting closer right now" in both.message
    assert both.hint == (
        "start its workers (`kappa worker` with the v2 spec), then wait until it has caught "
        "up, watching `kappa versions orders`, and promote again"
    )


def test_retire_rules() -> None:
    active = retire_refusal("orders", _report(1, 0, 0, active=True), force=True)
    assert active is not None
    assert "is the active version" in active.message
    assert active.hint
    assert "kappa promote orders" in active.hint
    running = retire_refusal("orders", _report(1, 0, 2), force=False)
    assert running is not None
    assert "http://w0:1, http://w1:1" in running.message
    assert running.hint
    assert "stop them" in running.hint
    assert retire_refusal("orders", _report(1, 0, 2), force=True) is None
    assert retire_refusal("orders", _report(1, 0, 0), force=False) is None


def test_active_record_round_trips_and_names_the_results_topic() -> None:
    record = ActiveRecord("orders", 2, 1_796_104_800_000, ("30m", "1d"))
    body = record.as_json()
    assert body["results_topic"] == "kappa.orders.v2.window-results"
    assert body["promoted_at"] == "2026-12-01T06:00:00Z"
    assert body["windows"] == ["30m", "1d"]
    assert ActiveRecord.decode(orjson.dumps(body)) == record
    # A record written before kappa kept the windows.
    del body["windows"]
    assert ActiveRecord.decode(orjson.dumps(body)) == ActiveRecord("orders", 2, 1_796_104_800_000)
    assert ActiveRecord.decode(b"{not json") is None
    assert ActiveRecord.decode(b'{"version": 2}') is None


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("versions", "Every version of PIPELINE on the cluster"),
        ("promote", "Make VERSION the active version of PIPELINE"),
        ("retire", "Delete VERSION of PIPELINE"),
    ],
)
def test_each_command_explains_itself(command: str, says: str) -> None:
    from click.testing import CliRunner

    from app.cli import main

    done = CliRunner().invoke(main, [command, "--help"])
    assert done.exit_code == 0, done.output
    assert says in " ".join(done.output.split())
    assert "Exits 0" in done.output


def test_a_version_must_be_a_positive_number() -> None:
    from click.testing import CliRunner

    from app.cli import main

    done = CliRunner().invoke(main, ["promote", "orders", "two"])
    assert done.exit_code == 2
    assert "'two' is not a valid integer" in done.output


class _Tracker:
    topic = "kappa.orders.control"
    active: ActiveRecord | None = ActiveRecord("orders", 2, 0)


class _Tail:
    """The input's newest event times as if read from its last records."""

    async def newest(self, ends: dict[int, int]) -> dict[int, int]:
        return {0: 10_000, 1: 50_000}

    def known(self, ends: dict[int, int]) -> dict[int, int]:
        return {}


async def test_a_workers_catch_up_covers_every_partition_of_its_version() -> None:
    from typing import Any, cast

    from app.versions.status import VersionStatus

    versions = VersionStatus(
        "orders",
        1,
        cast(Any, _Tracker()),
        cast(Any, None),
        cast(Any, _Tail()),
        "orders",
        1.0,
        ("1h",),
    )
    status = {
        "kafka_answered": True,
        # This worker owns partition 1; partition 0's offset is the group's committed one.
        "end_offsets": {"0": 100, "1": 40},
        "processed_offsets": {"0": 89, "1": 39},
        "newest_event_times": {"1": 45_000},
        "watermarks": {"1": 44_000},
    }
    body = await versions.catch_up(status)
    assert body["lag"] == {"0": 10, "1": 0}
    assert body["lag_total"] == 10
    assert body["rate_per_s"] is None  # one sample so far
    assert body["behind_input_ms"] == {"1": 5_000}
    assert body["watermark_iso"] == "1970-01-01T00:00:44Z"
    assert body["input_newest_event_time_iso"] == "1970-01-01T00:00:50Z"
    assert (body["version"], body["active_version"], body["active"]) == (1, 2, False)
    assert versions.forward_to() == 2
    assert versions.active_json()["this_worker_windows"] == ["1h"]


def test_kafka_unreachable_is_said_plainly() -> None:
    from click.testing import CliRunner

    from app.cli import main

    done = CliRunner().invoke(
        main, ["versions", "orders"], env={"KAPPA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    )
    assert done.exit_code == 1
    assert "Kafka failed at 127.0.0.1:1" in done.output
    assert "kappa kafka status" in done.output


def test_state_sums_the_workers_counts_and_is_unknown_while_one_still_counts() -> None:
    report = _report(1, 0, 2)
    report.workers = {
        "http://w0:1": {"state": {"0": {"keys": 25, "open_windows": 11}}},
        "http://w1:1": {"state": {"1": {"keys": 30, "open_windows": 4}}},
    }
    assert report.state() == {"keys": 55, "open_windows": 15}
    # A restarted worker counts its partition's stored keys in a thread: null meanwhile.
    report.workers["http://w1:1"]["state"]["1"] = {"keys": None, "open_windows": None}
    assert report.state() == {"keys": None, "open_windows": None}
