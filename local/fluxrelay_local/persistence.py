"""What survives a restart of the local stack: the data in the emulated AWS, kept under `.local/`.

moto keeps everything in memory and has no persistence of its own, so when the stack stops its
data is read out through the service APIs into `<state dir>/state/`, and put back the same way
after the next deploy:
- every item of the stack's DynamoDB tables (API keys, jobs, idempotency records, counters);
- every object of its buckets, with content type and metadata (outputs, uploads);
- every Secrets Manager secret but the WaveSpeed key, which each deploy writes anew (webhook
  signing secrets);
- the name and input of each workflow execution still running, started again on restore;
- the WaveSpeed stand-in's state (its tasks and webhook secret), so that a job in flight finds
  its upstream task again.

A deploy gives resources new random physical names (`...-JobsTable-P2KTRU217M83`), and servers
on port 0 new addresses: restored strings that name an old resource or address (an execution ARN
in a job item, a bucket in an upload URL, our API in a stand-in task's webhook) are rewritten to
the new one. The snapshot is written beside the old one and swapped in whole, so a
crash while saving leaves the previous snapshot intact.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxrelay_local.deploy import DeployedStack

LOG = logging.getLogger(__name__)
FORMAT_VERSION = 1
# Physical ids shorter than this are too generic to rewrite safely inside restored strings.
_MIN_RENAME_LENGTH = 12

ClientFactory = Callable[[str], Any]


@dataclass
class Execution:
    """A workflow execution that was running when the stack stopped."""

    state_machine: str  # logical id
    name: str
    input: str


@dataclass
class Snapshot:
    dev_key: str | None = None
    executions: list[Execution] = field(default_factory=list)
    standin: dict[str, Any] | None = None  # StandIn.export_state()


def endpoint_ids(endpoints: dict[str, str]) -> dict[str, str]:
    """The stack's own base URLs (name → URL) as renameable names. Each ends in `/`, so one
    address is never rewritten inside a longer one (`:4000/` is not in `:40001/...`)."""
    return {f"{name}#endpoint": url.rstrip("/") + "/" for name, url in endpoints.items() if url}


class StateStore:
    """Saves a deployed stack's data to `folder` and puts it back into a fresh deploy."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def exists(self) -> bool:
        return (self.folder / "state.json").is_file()

    # --- save -----------------------------------------------------------------------------------
    def save(
        self, deployed: DeployedStack, client: ClientFactory, snapshot: Snapshot, endpoints: dict[str, str]
    ) -> None:
        """Write the stack's data and `snapshot`; `endpoints` are its base URLs (api, upstream)."""
        staging = self.folder.with_name(self.folder.name + ".saving")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        index: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stack_name": deployed.stack_name,
            "physical_ids": {**_physical_ids(deployed), **endpoint_ids(endpoints)},
            "dev_key": snapshot.dev_key,
            "executions": [e.__dict__ for e in snapshot.executions],
            "standin": snapshot.standin,
            "tables": _save_tables(deployed, client("dynamodb"), staging),
            "buckets": _save_buckets(deployed, client("s3"), staging),
            "secrets": _read_secrets(deployed, client("secretsmanager")),
        }
        (staging / "state.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        previous = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(previous, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(previous)
        staging.rename(self.folder)
        shutil.rmtree(previous, ignore_errors=True)

    # --- restore --------------------------------------------------------------------------------
    def restore(self, deployed: DeployedStack, client: ClientFactory, endpoints: dict[str, str]) -> Snapshot:
        """Put the saved data into `deployed`; the dev key, the executions to start again and the
        stand-in's state, with old names and addresses rewritten to those of now."""
        index = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        if index.get("version") != FORMAT_VERSION:
            LOG.warning("ignoring %s: saved by another version of the local stack", self.folder)
            return Snapshot()
        rename = _renames(index["physical_ids"], {**_physical_ids(deployed), **endpoint_ids(endpoints)})
        _restore_tables(deployed, client("dynamodb"), self.folder, index["tables"], rename)
        _restore_buckets(deployed, client("s3"), self.folder, index["buckets"], rename)
        _restore_secrets(client("secretsmanager"), index["secrets"], rename)
        executions = [
            Execution(e["state_machine"], e["name"], rename(e["input"]))
            for e in index["executions"]
            if e["state_machine"] in deployed.state_machines
        ]
        standin = index.get("standin")
        return Snapshot(
            dev_key=index.get("dev_key"),
            executions=executions,
            standin=_rename_strings(standin, rename) if standin else None,
        )


# --- names -------------------------------------------------------------------------------------
def _physical_ids(deployed: DeployedStack) -> dict[str, str]:
    ids = {lid: pid for lid, (_, pid) in deployed.resources.items() if pid}
    ids.update({f"{lid}#arn": arn for lid, arn in deployed.state_machines.items()})
    # The name alone too: an execution's ARN (a job's `execution_arn`) holds it after `execution:`.
    ids.update({f"{lid}#name": arn.rsplit(":", 1)[-1] for lid, arn in deployed.state_machines.items()})
    return ids


def _renames(old: dict[str, str], new: dict[str, str]) -> Callable[[str], str]:
    pairs = sorted(
        ((was, new[lid]) for lid, was in old.items() if lid in new and new[lid] != was),
        key=lambda pair: -len(pair[0]),  # longest first: an ARN before the name inside it
    )
    pairs = [(was, now) for was, now in pairs if len(was) >= _MIN_RENAME_LENGTH]

    def rename(text: str) -> str:
        for was, now in pairs:
            if was in text:
                text = text.replace(was, now)
        return text

    return rename


def _rename_strings(value: Any, rename: Callable[[str], str]) -> Any:
    """Every string inside plain JSON data through `rename`."""
    if isinstance(value, str):
        return rename(value)
    if isinstance(value, dict):
        return {k: _rename_strings(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_strings(v, rename) for v in value]
    return value


# --- DynamoDB ----------------------------------------------------------------------------------
def _save_tables(deployed: DeployedStack, dynamodb: Any, folder: Path) -> dict[str, str]:
    saved = {}
    (folder / "tables").mkdir()
    for logical_id, table in deployed.physical_ids("AWS::DynamoDB::Table").items():
        path = folder / "tables" / f"{logical_id}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                for item in page["Items"]:
                    out.write(json.dumps(_map_item(item, _bytes_out)) + "\n")
        saved[logical_id] = str(path.relative_to(folder))
    return saved


def _restore_tables(
    deployed: DeployedStack, dynamodb: Any, folder: Path, saved: dict[str, str], rename: Callable[[str], str]
) -> None:
    tables = deployed.physical_ids("AWS::DynamoDB::Table")
    for logical_id, relative in saved.items():
        if logical_id not in tables:
            continue
        with (folder / relative).open(encoding="utf-8") as lines:
            for line in lines:
                item = _map_item(json.loads(line), _bytes_in, rename)
                dynamodb.put_item(TableName=tables[logical_id], Item=item)


def _map_item(value: Any, binary: Callable[[Any], Any], rename: Callable[[str], str] | None = None) -> Any:
    """Walk a DynamoDB-JSON item: binary values through `binary`, strings through `rename`."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind == "B":
                return {"B": binary(inner)}
            if kind == "BS":
                return {"BS": [binary(v) for v in inner]}
            if kind == "S" and rename is not None:
                return {"S": rename(inner)}
            if kind == "SS" and rename is not None:
                return {"SS": [rename(v) for v in inner]}
        return {k: _map_item(v, binary, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_item(v, binary, rename) for v in value]
    return value


def _bytes_out(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _bytes_in(value: str) -> bytes:
    return base64.b64decode(value)


# --- S3 ----------------------------------------------------------------------------------------
def _save_buckets(deployed: DeployedStack, s3: Any, folder: Path) -> dict[str, list[dict[str, Any]]]:
    saved: dict[str, list[dict[str, Any]]] = {}
    for logical_id, bucket in deployed.physical_ids("AWS::S3::Bucket").items():
        objects: list[dict[str, Any]] = []
        target = folder / "objects" / logical_id
        target.mkdir(parents=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for listed in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket, Key=listed["Key"])
                path = target / str(len(objects))
                path.write_bytes(got["Body"].read())
                objects.append(
                    {
                        "key": listed["Key"],
                        "file": str(path.relative_to(folder)),
                        "content_type": got.get("ContentType", "binary/octet-stream"),
                        "metadata": got.get("Metadata", {}),
                    }
                )
        saved[logical_id] = objects
    return saved


def _restore_buckets(
    deployed: DeployedStack,
    s3: Any,
    folder: Path,
    saved: dict[str, list[dict[str, Any]]],
    rename: Callable[[str], str],
) -> None:
    buckets = deployed.physical_ids("AWS::S3::Bucket")
    for logical_id, objects in saved.items():
        bucket = buckets.get(logical_id)
        if bucket is None or not objects:
            continue
        # An object put back under a trigger prefix must not start a second (paid) job: the
        # bucket's event notifications are off while it is refilled.
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        notifications.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            for saved_object in objects:
                s3.put_object(
                    Bucket=bucket,
                    Key=saved_object["key"],
                    Body=(folder / saved_object["file"]).read_bytes(),
                    ContentType=saved_object["content_type"],
                    Metadata={k: rename(v) for k, v in saved_object["metadata"].items()},
                )
        finally:
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=notifications, SkipDestinationValidation=True
            )


# --- Secrets Manager ---------------------------------------------------------------------------
def _read_secrets(deployed: DeployedStack, secrets: Any) -> list[dict[str, str]]:
    found = []
    for page in secrets.get_paginator("list_secrets").paginate():
        for listed in page["SecretList"]:
            if listed["Name"] == deployed.secret_name:
                continue  # the WaveSpeed key: every deploy writes the current one
            value = secrets.get_secret_value(SecretId=listed["ARN"])
            if "SecretString" in value:
                found.append({"name": listed["Name"], "value": value["SecretString"]})
    return found


def _restore_secrets(secrets: Any, saved: list[dict[str, str]], rename: Callable[[str], str]) -> None:
    for secret in saved:
        name, value = rename(secret["name"]), secret["value"]
        try:
            secrets.create_secret(Name=name, SecretString=value)
        except secrets.exceptions.ResourceExistsException:
            secrets.put_secret_value(SecretId=name, SecretString=value)
