"""The local broker's storage format command takes any cluster id, even one that
starts with '-' (a base64 UUID does, one time in 64)."""

from __future__ import annotations

from pathlib import Path

from app.broker.local import storage_format_args


def test_a_cluster_id_starting_with_a_dash_stays_one_argument(tmp_path: Path) -> None:
    args = storage_format_args("-Xq3kTXeRZ2m0q9s1lNn_w", tmp_path / "server.properties")
    assert "--cluster-id=-Xq3kTXeRZ2m0q9s1lNn_w" in args
    assert "-Xq3kTXeRZ2m0q9s1lNn_w" not in args
