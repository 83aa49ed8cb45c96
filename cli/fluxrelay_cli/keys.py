"""`fluxrelay keys`: issue, list and revoke API keys, on the local stack or a deployed one.

Keys live in the stack's DynamoDB table (only their hashes), so these commands talk to the table,
not to the HTTP API: locally through the emulated AWS of `.local/stack.json`, for a deployed
stack (`--stack-name`) with your AWS credentials and the table from the stack's TableName output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from rich.table import Table

from fluxrelay.apikeys import InvalidKeyError
from fluxrelay_cli.app import JsonOption, Options, app, err, out, print_json
from fluxrelay_cli.target import START_HINT, CliError, read_stack_file

if TYPE_CHECKING:
    from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore

keys_app = typer.Typer(help="Issue, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

StackName = Annotated[
    str | None,
    typer.Option("--stack-name", help="A deployed stack (default: the local stack).", show_default=False),
]
Region = Annotated[str | None, typer.Option(help="The deployed stack's region (default: your AWS config).")]


@contextmanager
def _aws_errors(where: str, local: bool) -> Iterator[None]:
    try:
        yield
    except EndpointConnectionError:
        if local:
            raise CliError(
                f"the local stack is not running (nothing answers at {where}); {START_HINT}"
            ) from None
        raise CliError(f"cannot reach {where}") from None
    except NoCredentialsError:
        raise CliError(
            "no AWS credentials: configure them (aws configure, AWS_PROFILE) for --stack-name"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(f"{error.get('Code', 'AWS error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise CliError(str(exc)) from None


@contextmanager
def key_store(options: Options, stack_name: str | None, region: str | None) -> Iterator[DynamoApiKeyStore]:
    """The key store of the chosen stack, with AWS failures turned into one-line errors."""
    # boto3 and the adapters load only for these commands: the others start faster without them.
    import boto3
    from botocore.config import Config

    from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore

    if stack_name:
        with _aws_errors(f"AWS (stack {stack_name})", local=False):
            session = boto3.session.Session(region_name=region)
            stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            if "TableName" not in outputs:
                raise CliError(f"stack {stack_name} has no TableName output")
            store = DynamoApiKeyStore(outputs["TableName"], client=session.client("dynamodb"))
            yield store
        return
    info = read_stack_file(options.stack_file)
    endpoint = str(info.get("aws_endpoint_url", ""))
    client = boto3.client(
        "dynamodb",
        region_name=info.get("region", "us-east-1"),
        endpoint_url=endpoint,
        # The emulated AWS takes any credentials: never send real ones to it.
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        # A stopped stack should fail at once, not after botocore's retries.
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    with _aws_errors(endpoint, local=True):
        yield DynamoApiKeyStore(str(info.get("table", "")), client=client)


@keys_app.command("create")
def create(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option(help="Who the key belongs to; jobs are scoped to the owner.")],
    rpm: Annotated[int | None, typer.Option(help="Submits per minute (default: the stack's).", min=1)] = None,
    images_per_day: Annotated[
        int | None, typer.Option(help="Images per UTC day (default: the stack's).", min=1)
    ] = None,
    stack_name: StackName = None,
    region: Region = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a key. It is printed once; only its hash is stored."""
    with key_store(ctx.obj, stack_name, region) as store:
        try:
            key, item = store.create(owner, requests_per_minute=rpm, images_per_day=images_per_day)
        except InvalidKeyError:
            raise CliError("--owner must be 1..128 letters, digits or . _ @ -") from None
    if as_json:
        print_json({"key": key, **_public(item.as_json())})
        return
    err.print(f"API key for {item.owner} (id {item.key_id}); shown once, store it now:")
    out.print(key)


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key (fr_...) or its 12-character id.")],
    stack_name: StackName = None,
    region: Region = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key at once: calls with it get 401."""
    with key_store(ctx.obj, stack_name, region) as store:
        from fluxrelay.domain.errors import NotFoundError

        try:
            store.revoke(key)
        except NotFoundError:
            raise CliError(f"no such API key: {_shown(key)}") from None
    if as_json:
        print_json({"revoked": _shown(key)})
    else:
        err.print(f"revoked {_shown(key)}")


@keys_app.command("list")
def list_keys(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys.")] = None,
    stack_name: StackName = None,
    region: Region = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (ids, never the keys themselves), oldest first."""
    with key_store(ctx.obj, stack_name, region) as store:
        items = [_public(item.as_json()) for item in store.list(owner)]
    if as_json:
        print_json(items)
        return
    table = Table("id", "owner", "status", "created", "per minute", "per day")
    for item in items:
        table.add_row(
            item["key_id"],
            item["owner"],
            item["status"],
            item["created_at"][:19].replace("T", " "),
            str(item["requests_per_minute"] or "default"),
            str(item["images_per_day"] or "default"),
        )
    out.print(table)


def _public(item: dict[str, Any]) -> dict[str, Any]:
    # The full hash finds the key in the table: it is no secret, but there is no use for it here.
    item.pop("key_hash", None)
    return item


def _shown(key: str) -> str:
    return key[:6] + "..." if key.startswith("fr_") else key
