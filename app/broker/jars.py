"""Fetch a pinned Apache Kafka release's jars from Maven Central with ``mvn``.

``org.apache.kafka:kafka_2.13`` plus its runtime dependency closure is a runnable
broker. The POM carries no logging binding, so reload4j (Kafka 3.x's own choice) is
added. The jars land in the cache dir once and are reused afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from agents.errors import BrokerError

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kappa.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""

_COMPLETE = ".complete"


def require_tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(
            f"`{name}` is not on PATH; kappa needs it {purpose}.",
            hint=f"install it (Debian: apt-get install {_DEBIAN_PACKAGE[name]}), or set "
            "KAPPA_BOOTSTRAP_SERVERS to use an existing Kafka cluster instead",
        )
    return path


_DEBIAN_PACKAGE = {"java": "openjdk-17-jre-headless", "mvn": "maven"}


def kafka_libs(cache_dir: Path, version: str) -> Path:
    """Return the directory of the Kafka jars, fetching them on first use."""
    libs = cache_dir / f"kafka-{version}" / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    mvn = require_tool("mvn", "to fetch the Kafka jars from Maven Central")
    libs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kappa-mvn-") as work:
        (Path(work) / "pom.xml").write_text(_POM.format(version=version))
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs.resolve()}",
                "-DincludeScope=runtime",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise BrokerError(
            f"mvn could not fetch org.apache.kafka:kafka_2.13:{version}:\n{tail}",
            hint="check that Maven Central is reachable and KAPPA_KAFKA_VERSION names a release",
        )
    (libs / _COMPLETE).write_text(version)
    return libs
