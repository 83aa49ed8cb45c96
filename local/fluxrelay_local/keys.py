"""Issue and revoke fluxrelay API keys.

    python -m fluxrelay_local.keys create --owner alice [--rpm 60] [--images-per-day 500]
    python -m fluxrelay_local.keys revoke fr_...            # or the 12-char key id
    python -m fluxrelay_local.keys create --owner alice --stack-name fluxrelay --region eu-west-1

By default the target is the running local stack (`.local/stack.json`: table and moto endpoint).
With `--stack-name` it is a deployed stack: the table comes from its `TableName` output, read with
CloudFormation DescribeStacks and the caller's real AWS credentials. The key is printed once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3

from fluxrelay.adapters.dynamo_keys import DynamoApiKeyStore
from fluxrelay.domain.errors import NotFoundError

DEFAULT_STATE_FILE = Path(".local/stack.json")


class TargetError(RuntimeError):
    pass


def local_target(state_file: Path) -> tuple[str, Any]:
    """(table name, DynamoDB client) of the local stack described by `state_file`."""
    try:
        info = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TargetError(
            f"{state_file} not found: start the local stack (`python -m fluxrelay_local`) "
            "or pass --stack-name for a deployed stack"
        ) from exc
    client = boto3.client(
        "dynamodb",
        region_name=info["region"],
        endpoint_url=info["aws_endpoint_url"],
        # moto accepts any credentials; never send real ones to it.
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
    )
    return str(info["table"]), client


def deployed_target(stack_name: str, region: str | None) -> tuple[str, Any]:
    """(table name, DynamoDB client) of a deployed stack, from its TableName output."""
    session = boto3.session.Session(region_name=region)
    stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "TableName" not in outputs:
        raise TargetError(f"stack {stack_name} has no TableName output")
    return outputs["TableName"], session.client("dynamodb")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fluxrelay_local.keys", description=__doc__.split("\n")[0]
    )
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--stack-name", help="a deployed stack (default: the local stack)")
    target.add_argument("--region", help="region of the deployed stack (default: your AWS config)")
    target.add_argument(
        "--state-file", type=Path, default=DEFAULT_STATE_FILE, help="the local stack's state file"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", parents=[target], help="issue a key (printed once)")
    create.add_argument("--owner", required=True)
    create.add_argument("--rpm", type=int, help="requests per minute (default: the deployment's)")
    create.add_argument("--images-per-day", type=int, help="images per day (default: the deployment's)")
    revoke = sub.add_parser("revoke", parents=[target], help="revoke a key by the key or its id")
    revoke.add_argument("key", help="the key (fr_...) or its 12-character id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.stack_name:
            table, client = deployed_target(args.stack_name, args.region)
        else:
            table, client = local_target(args.state_file)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = DynamoApiKeyStore(table, client=client)
    if args.command == "create":
        key, item = store.create(args.owner, requests_per_minute=args.rpm, images_per_day=args.images_per_day)
        print(f"API key for {item.owner} (id {item.key_id}); shown once, store it now:", file=sys.stderr)
        print(key)
        return 0
    try:
        store.revoke(args.key)
    except NotFoundError:
        print(f"error: no such API key: {args.key}", file=sys.stderr)
        return 1
    print(f"revoked {args.key if not args.key.startswith('fr_') else args.key[:6] + '...'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
