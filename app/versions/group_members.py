"""Who is in a Faust consumer group, read from Kafka's group coordinator.

Faust's assignor puts each member's advertised URL (``canonical_url``) in the JSON user
data of its subscription metadata (``faust.assignor.ClientMetadata``), and Kafka hands
out each member's assignment as the protocol's topic-partition list. Decoded here with
aiokafka's protocol structs, so that any process (the CLI, another version's worker)
can find a version's workers and the owner of each input partition without joining the
group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import GroupIdNotFound, for_code
from aiokafka.protocol.admin import DeleteGroupsRequest

from agents.errors import KappaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_host: str
    url: str | None  # None when the member is not a Faust worker (no URL in its metadata)
    partitions: dict[str, list[int]]  # assigned topic -> partitions

    def as_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "client_host": self.client_host,
            "url": self.url,
            "partitions": self.partitions,
        }


@dataclass(frozen=True)
class GroupDescription:
    group: str
    state: str  # Kafka's: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
    members: list[GroupMember]

    def owners(self, topic: str) -> dict[int, str]:
        """The advertised URL of the member that owns each partition of ``topic``."""
        return {
            partition: member.url
            for member in self.members
            if member.url is not None
            for partition in member.partitions.get(topic, [])
        }


def decode_member(member: dict[str, Any]) -> GroupMember:
    url: str | None = None
    partitions: dict[str, list[int]] = {}
    try:
        metadata = ConsumerProtocolMemberMetadata.decode(member["member_metadata"])
        found = orjson.loads(metadata.user_data) if metadata.user_data else None
        if isinstance(found, dict) and isinstance(found.get("url"), str):
            url = found["url"]
    except (ValueError, orjson.JSONDecodeError):
        log.debug("member %s has no Faust metadata", member["member_id"])
    if member["member_assignment"]:
        assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        for topic, numbers in assignment.assignment:
            partitions.setdefault(topic, []).extend(numbers)
    return GroupMember(
        member_id=member["member_id"],
        client_host=member["client_host"],
        url=url,
        partitions={topic: sorted(numbers) for topic, numbers in sorted(partitions.items())},
    )


async def describe_group(admin: AIOKafkaAdminClient, group: str) -> GroupDescription:
    """The group's state and members; an unknown group is Dead with no members."""
    responses = await admin.describe_consumer_groups([group])
    for response in responses:
        for found in response.to_object()["groups"]:
            if found["group"] != group:
                continue
            if found["error_code"]:
                raise for_code(found["error_code"])(f"describing consumer group {group}")
            return GroupDescription(
                group=group,
                state=found["state"],
                members=[decode_member(member) for member in found["members"]],
            )
    return GroupDescription(group=group, state="Dead", members=[])


async def delete_group(admin: AIOKafkaAdminClient, group: str) -> bool:
    """Delete an empty consumer group (its committed offsets); False if it did not exist.

    aiokafka 0.14 has Kafka's DeleteGroups request but no admin method for it: the
    request goes to the group's coordinator, as Kafka requires.
    """
    coordinator = await admin.find_coordinator(group)
    response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
    for name, code in response.results:
        if name != group or not code:
            continue
        error = for_code(code)
        if error is GroupIdNotFound:
            return False
        raise KappaError(
            f"Kafka refused to delete consumer group {group}: {error.__name__}",
            hint="a group with members cannot be deleted: stop its workers, wait for "
            "their session to end (KAPPA_SESSION_TIMEOUT), and retry",
        )
    return True
