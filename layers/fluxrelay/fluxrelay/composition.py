"""The composition root: settings + adapters + services, built lazily once per container.

Each handler asks `container()` for the one service it needs: only that service's modules are
imported (the imports are inside the properties), only the clients it uses are created (one per
AWS service, shared by its adapters), and all of it is reused while the container stays warm.
Nothing here runs at import time, so a poll task never loads the upload parser, a task that only
records a failure never loads httpx, and no handler pays for what another one runs.
"""

from __future__ import annotations

import sys
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from fluxrelay.settings import Settings, get_settings

if TYPE_CHECKING:
    from fluxrelay.adapters.dynamo.jobs import DynamoJobStore
    from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore
    from fluxrelay.adapters.dynamo.limits import DynamoLimiter
    from fluxrelay.adapters.dynamo.slots import DynamoSlotPool
    from fluxrelay.adapters.s3 import S3OutputStore, S3UploadStore
    from fluxrelay.adapters.secrets import SecretsManagerWebhookSecrets
    from fluxrelay.adapters.stepfunctions import StepFunctionsWorkflow
    from fluxrelay.adapters.upstream_secret import WaveSpeedWebhookSecret
    from fluxrelay.adapters.urlguard.rules import UrlPolicy
    from fluxrelay.adapters.wavespeed import WaveSpeedClient
    from fluxrelay.api.idempotency import Idempotency
    from fluxrelay.api.presenter import PredictionPresenter
    from fluxrelay.domain.cancel import CancelService
    from fluxrelay.domain.deliveries import WebhookDeliverer
    from fluxrelay.domain.dispatch import Dispatcher
    from fluxrelay.domain.expiry import UploadExpiryService
    from fluxrelay.domain.fail import FailService
    from fluxrelay.domain.history import HistoryService
    from fluxrelay.domain.lifecycle import JobLifecycle
    from fluxrelay.domain.notify import NotifyService
    from fluxrelay.domain.outputs import OutputService
    from fluxrelay.domain.poll import PollService
    from fluxrelay.domain.push import PushService
    from fluxrelay.domain.submit import SubmitService
    from fluxrelay.domain.sweep import SweepService
    from fluxrelay.domain.uploads import UploadService


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}

    # --- clients ---
    def aws(self, service: str) -> Any:
        """The boto3 client of `service`, made at its first use and shared by every adapter."""
        if service not in self._clients:
            from fluxrelay.adapters.aws import client

            self._clients[service] = client(service)
        return self._clients[service]

    # --- adapters ---
    @cached_property
    def url_policy(self) -> UrlPolicy:
        from fluxrelay.adapters.urlguard.rules import UrlPolicy

        return UrlPolicy.from_name(self.settings.url_policy.value)

    def check_webhook_url(self, url: str) -> object:
        from fluxrelay.adapters.urlguard.rules import check_url

        return check_url(url, self.url_policy, label="webhook URL")

    @cached_property
    def jobs(self) -> DynamoJobStore:
        from fluxrelay.adapters.dynamo.jobs import DynamoJobStore

        return DynamoJobStore(self.settings.table_name, self.aws("dynamodb"))

    @cached_property
    def keys(self) -> DynamoApiKeyStore:
        from fluxrelay.adapters.dynamo.keys import DynamoApiKeyStore

        return DynamoApiKeyStore(self.settings.table_name, self.aws("dynamodb"))

    @cached_property
    def idempotency(self) -> Idempotency:
        from fluxrelay.api.idempotency import Idempotency

        s = self.settings
        return Idempotency(s.table_name, s.idempotency_ttl_seconds, client=self.aws("dynamodb"))

    @cached_property
    def limiter(self) -> DynamoLimiter:
        from fluxrelay.adapters.dynamo.limits import DynamoLimiter

        return DynamoLimiter(self.settings.table_name, self.aws("dynamodb"))

    @cached_property
    def slots(self) -> DynamoSlotPool:
        from fluxrelay.adapters.dynamo.slots import DynamoSlotPool

        s = self.settings
        return DynamoSlotPool(s.table_name, s.max_concurrent_upstream_tasks, self.aws("dynamodb"))

    @cached_property
    def outputs(self) -> S3OutputStore:
        from fluxrelay.adapters.s3 import S3OutputStore

        return S3OutputStore(self.settings.bucket_name, self.aws("s3"))

    @cached_property
    def upload_store(self) -> S3UploadStore:
        from fluxrelay.adapters.s3 import S3UploadStore

        return S3UploadStore(self.settings.bucket_name, self.aws("s3"))

    @cached_property
    def webhook_secrets(self) -> SecretsManagerWebhookSecrets:
        from fluxrelay.adapters.secrets import SecretsManagerWebhookSecrets

        return SecretsManagerWebhookSecrets(
            self.settings.webhook_secret_prefix, client_factory=lambda: self.aws("secretsmanager")
        )

    def _workflow(self, state_machine_arn: str) -> StepFunctionsWorkflow:
        from fluxrelay.adapters.stepfunctions import StepFunctionsWorkflow

        # The client is made at the first call: failing or notifying a job starts no workflow.
        return StepFunctionsWorkflow(state_machine_arn, client_factory=lambda: self.aws("stepfunctions"))

    def _wavespeed_key(self) -> str:
        from fluxrelay.adapters.secrets import read_secret

        s = self.settings
        if s.wavespeed_secret_name:
            return read_secret(s.wavespeed_secret_name)
        if s.wavespeed_api_key:
            return s.wavespeed_api_key
        raise RuntimeError("no WaveSpeed key configured: set WAVESPEED_SECRET_NAME or WAVESPEED_API_KEY")

    @cached_property
    def upstream(self) -> WaveSpeedClient:
        from fluxrelay.adapters.wavespeed import WaveSpeedClient

        s = self.settings
        # The key is read on the first upstream call: a job that waits for a slot, or a check
        # of a finished job, never needs it.
        return WaveSpeedClient(
            s.wavespeed_base_url,
            self._wavespeed_key,
            connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout,
            submit_read_timeout=s.upstream_submit_read_timeout,
            submit_retry_budget=s.upstream_submit_retry_budget,
            get_retries=s.upstream_get_retries,
            backoff_base=s.upstream_backoff_base,
        )

    @cached_property
    def upstream_webhook_secret(self) -> WaveSpeedWebhookSecret:
        from fluxrelay.adapters.upstream_secret import WaveSpeedWebhookSecret

        s = self.settings
        return WaveSpeedWebhookSecret(
            lambda: self.upstream.webhook_secret(),
            secret_name=s.wavespeed_webhook_secret_name,
            max_age=s.wavespeed_webhook_secret_cache_seconds,
        )

    @cached_property
    def presenter(self) -> PredictionPresenter:
        from fluxrelay.api.presenter import PredictionPresenter

        return PredictionPresenter(self.outputs, self.settings)

    # --- services ---
    @cached_property
    def lifecycle(self) -> JobLifecycle:
        from fluxrelay.domain.lifecycle import JobLifecycle

        s = self.settings
        expiry = (
            self._workflow(s.upload_expiry_state_machine_arn) if s.upload_expiry_state_machine_arn else None
        )
        return JobLifecycle(
            store=self.jobs, generation=self._workflow(s.state_machine_arn), settings=s, expiry=expiry
        )

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from fluxrelay.domain.dispatch import Dispatcher

        return Dispatcher(
            lifecycle=self.lifecycle,
            store=self.jobs,
            upstream=self.upstream,
            slots=self.slots,
            settings=self.settings,
        )

    @cached_property
    def submit(self) -> SubmitService:
        from fluxrelay.domain.submit import SubmitService

        return SubmitService(
            lifecycle=self.lifecycle,
            dispatcher=self.dispatcher,
            webhook_secrets=self.webhook_secrets,
            settings=self.settings,
            check_url=self.check_webhook_url,
        )

    @cached_property
    def poll(self) -> PollService:
        from fluxrelay.domain.poll import PollService

        return PollService(
            lifecycle=self.lifecycle,
            store=self.jobs,
            upstream=self.upstream,
            dispatcher=self.dispatcher,
            settings=self.settings,
        )

    @cached_property
    def push(self) -> PushService:
        from fluxrelay.domain.push import PushService

        return PushService(self.lifecycle)

    @cached_property
    def sweeper(self) -> SweepService:
        from fluxrelay.domain.sweep import SweepService

        return SweepService(
            lifecycle=self.lifecycle, store=self.jobs, dispatcher=self.dispatcher, settings=self.settings
        )

    @cached_property
    def store_outputs(self) -> OutputService:
        from fluxrelay.adapters.fetch import GuardedOutputSource
        from fluxrelay.domain.outputs import OutputService

        source = GuardedOutputSource(self.url_policy, max_bytes=self.settings.max_output_bytes)
        return OutputService(
            lifecycle=self.lifecycle, outputs=self.outputs, sources=source, settings=self.settings
        )

    @cached_property
    def cancel(self) -> CancelService:
        from fluxrelay.domain.cancel import CancelService

        return CancelService(self.lifecycle)

    @cached_property
    def history(self) -> HistoryService:
        from fluxrelay.domain.history import HistoryService

        return HistoryService(self.jobs)

    @cached_property
    def fail(self) -> FailService:
        from fluxrelay.domain.fail import FailService

        return FailService(self.lifecycle)

    @cached_property
    def deliverer(self) -> WebhookDeliverer:
        from fluxrelay.adapters.webhooks import StandardWebhookSender
        from fluxrelay.domain.deliveries import WebhookDeliverer

        return WebhookDeliverer(
            lifecycle=self.lifecycle,
            store=self.jobs,
            sender=StandardWebhookSender(self.url_policy),
            secrets=self.webhook_secrets,
            presenter=self.presenter,
            check_url=self.check_webhook_url,
        )

    @cached_property
    def notify(self) -> NotifyService:
        from fluxrelay.adapters.sns import SnsNotifier
        from fluxrelay.domain.notify import NotifyService

        return NotifyService(
            lifecycle=self.lifecycle,
            store=self.jobs,
            slots=self.slots,
            notifier=SnsNotifier(self.settings.topic_arn, self.aws("sns")),
            deliverer=self.deliverer,
            settings=self.settings,
        )

    @cached_property
    def upload_expiry(self) -> UploadExpiryService:
        from fluxrelay.domain.expiry import UploadExpiryService

        return UploadExpiryService(
            lifecycle=self.lifecycle, jobs=self.jobs, uploads=self.upload_store, settings=self.settings
        )

    @cached_property
    def uploads(self) -> UploadService:
        from fluxrelay.domain.uploads import UploadService

        return UploadService(
            lifecycle=self.lifecycle,
            jobs=self.jobs,
            submitter=self.submit,
            uploads=self.upload_store,
            settings=self.settings,
        )


@lru_cache(maxsize=1)
def container() -> Container:
    return Container(get_settings())


def reset() -> None:
    """Forget everything cached for this container (settings, clients, secrets, idempotency
    store), as a cold start would. For the local stack and tests, which change the environment
    within one process; a Lambda container never needs it."""
    from aws_lambda_powertools.utilities import parameters

    get_settings.cache_clear()
    container.cache_clear()
    api = sys.modules.get("fluxrelay.api.app")
    if api is not None:
        api.create_app.cache_clear()  # the resolver takes its CORS origins from the settings
    parameters.clear_caches()
