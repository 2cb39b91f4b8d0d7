"""The orjson codec that every kappa topic and table uses."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

CODEC = "orjson"


class OrjsonCodec(codecs.Codec):
    """JSON via orjson: several times faster than the stdlib json Faust uses by default."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    codecs.register(CODEC, OrjsonCodec())
