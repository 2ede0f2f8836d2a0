"""Servers that take only encrypted, authenticated clients, started inside a test: a PostgreSQL
server that accepts TLS connections only, and a Kafka broker with a SASL_SSL (SCRAM) listener.
Their certificates are made here with the openssl command, signed by a throwaway CA."""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .services import ROOT, free_port

AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate clients trust
    cert: Path  # the server's certificate (CN localhost, SAN localhost and 127.0.0.1)
    key: Path  # its private key (PKCS#8, unencrypted)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    """A CA, and a server certificate it signs for localhost and 127.0.0.1."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = (
        directory / "server.pem",
        directory / "server.key",
        directory / "server.csr",
    )
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=stockledger test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", ca_key, "-out", ca)  # fmt: skip
    _openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", key, "-out", request)
    extensions = directory / "server.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    _openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-extfile", extensions, "-out", cert)  # fmt: skip
    return Certificates(ca, cert, key)


def _wait_for_port(port: int, alive: subprocess.Popen[bytes] | None, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the server exited with {alive.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port} after {seconds:.0f}s")


def _wait_for_line(log: Path, text: str, alive: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"the server exited with {alive.returncode} while starting")
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{text!r} not in {log} after {seconds:.0f}s")


# --- PostgreSQL, TLS only ---------------------------------------------------------------------


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        raise RuntimeError(
            "no PostgreSQL server under /usr/lib/postgresql (make setup installs it)"
        )
    return Path(found[-1])


def _as_owner(*command: str | Path) -> list[str]:
    """The server refuses to run as root: as root, it runs as the postgres system user."""
    prefix = ["runuser", "-u", "postgres", "--"] if AS_ROOT else []
    return [*prefix, *map(str, command)]


@contextlib.contextmanager
def tls_only_postgres(certificates: Certificates, password: str) -> Iterator[str]:
    """A fresh cluster on a free port whose pg_hba.conf admits TCP clients over TLS only
    (``hostssl``, SCRAM); yields the superuser's URL of its ``postgres`` database, without any
    TLS option (the caller adds them)."""
    home = Path(tempfile.mkdtemp(prefix="stockledger-pg-tls-"))
    data, port = home / "data", free_port()
    cert, key = home / "server.pem", home / "server.key"  # where the server may read them
    shutil.copy(certificates.cert, cert)
    shutil.copy(certificates.key, key)
    key.chmod(0o600)
    (home / "pwfile").write_text(password + "\n")
    if AS_ROOT:
        shutil.chown(home, "postgres")
        for path in home.iterdir():
            shutil.chown(path, "postgres")
    initdb = _as_owner(_pg_bin() / "initdb", "-D", data, "-U", "stockledger",
                       f"--pwfile={home / 'pwfile'}", "--auth-local=trust",
                       "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
    subprocess.run(initdb, check=True, capture_output=True)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{home}'\n"
            f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
            "max_connections = 30\n"
        )
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
    )
    ctl = _pg_bin() / "pg_ctl"
    log = home / "server.log"
    subprocess.run(_as_owner(ctl, "-D", data, "-l", log, "-w", "-t", "60", "start"), check=True)
    try:
        _wait_for_port(port, None, 30)
        yield f"postgresql://stockledger:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner(ctl, "-D", data, "-m", "immediate", "-w", "stop"), check=False)
        shutil.rmtree(home, ignore_errors=True)


# --- Kafka, SASL_SSL with SCRAM -----------------------------------------------------------------


def _kafka_libs() -> Path:
    state = Path(os.environ.get("STATE_DIR", ROOT / ".local"))
    libs = state / "kafka" / "libs"
    if not any(libs.glob("kafka_*.jar")):
        raise RuntimeError(f"no Kafka jars in {libs}; run make setup")
    return libs


def _broker_properties(home: Path, ports: Mapping[str, int], keystore: Path) -> str:
    client, controller, internal = ports["client"], ports["controller"], ports["internal"]
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller},INTERNAL://127.0.0.1:{internal}
advertised.listeners=SASL_SSL://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
log.dirs={home / "data"}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
"""


@contextlib.contextmanager
def sasl_ssl_kafka(
    home: Path, certificates: Certificates, users: Mapping[str, str]
) -> Iterator[str]:
    """A one-node KRaft broker whose client listener is SASL_SSL with SCRAM-SHA-256, knowing
    ``users`` (name: password, added when its storage is formatted); yields its address."""
    libs = _kafka_libs()
    ports = {"client": free_port(), "controller": free_port(), "internal": free_port()}
    keystore = home / "keystore.pem"  # the private key and the certificate, as Kafka reads PEM
    keystore.write_text(certificates.key.read_text() + certificates.cert.read_text())
    config = home / "server.properties"
    config.write_text(_broker_properties(home, ports, keystore))
    java = ["java", "-cp", f"{libs}/*", f"-Dkafka.logs.dir={home / 'logs'}",
            f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}"]  # fmt: skip
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    scram = [("--add-scram", f"SCRAM-SHA-256=[name={n},password={pw}]") for n, pw in users.items()]
    format_storage = [*java, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster,
                      "-c", str(config), *(arg for pair in scram for arg in pair)]  # fmt: skip
    subprocess.run(format_storage, check=True, capture_output=True)
    with (home / "kafka.out").open("wb") as out:
        broker = subprocess.Popen(
            [java[0], "-Xmx256m", *java[1:], "kafka.Kafka", str(config)], stdout=out, stderr=out
        )
    try:
        _wait_for_port(ports["client"], broker, 90)
        _wait_for_line(home / "logs" / "server.log", "Kafka Server started", broker, 60)
        yield f"127.0.0.1:{ports['client']}"
    finally:
        broker.terminate()
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
