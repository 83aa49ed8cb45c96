"""The composition root: settings + adapters + services, built lazily once per container.

Each handler asks `container()` for the one service it needs; only the clients that service
uses are ever created, and they are reused while the container stays warm. Nothing here runs
at import time.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

from fluxrelay.adapters.dynamo_jobs import DynamoJobStore
from fluxrelay.adapters.dynamo_keys import DynamoApiKeyStore
from fluxrelay.adapters.dynamo_limits import DynamoLimiter
from fluxrelay.adapters.dynamo_slots import DynamoSlotPool
from fluxrelay.adapters.fetch import GuardedOutputSource
from fluxrelay.adapters.messaging import SnsNotifier, StepFunctionsWorkflow
from fluxrelay.adapters.s3 import S3OutputStore, S3UploadStore
from fluxrelay.adapters.secrets import SecretsManagerWebhookSecrets, read_secret
from fluxrelay.adapters.webhooks import StandardWebhookSender
from fluxrelay.service import (
    Dispatcher,
    FailService,
    NotifyService,
    OutputService,
    PollService,
    PredictionPresenter,
    SubmitService,
)
from fluxrelay.settings import Settings, get_settings
from fluxrelay.uploads import UploadService
from fluxrelay.upstream import WaveSpeedClient
from fluxrelay.urlguard import UrlPolicy, check_url


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # --- adapters ---
    @cached_property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy.from_name(self.settings.url_policy.value)

    def check_webhook_url(self, url: str) -> Any:
        return check_url(url, self.url_policy, label="webhook URL")

    @cached_property
    def jobs(self) -> DynamoJobStore:
        return DynamoJobStore(self.settings.table_name)

    @cached_property
    def keys(self) -> DynamoApiKeyStore:
        return DynamoApiKeyStore(self.settings.table_name)

    @cached_property
    def limiter(self) -> DynamoLimiter:
        return DynamoLimiter(self.settings.table_name)

    @cached_property
    def outputs(self) -> S3OutputStore:
        return S3OutputStore(self.settings.bucket_name)

    @cached_property
    def webhook_secrets(self) -> SecretsManagerWebhookSecrets:
        return SecretsManagerWebhookSecrets(self.settings.webhook_secret_prefix)

    def upstream(self) -> WaveSpeedClient:
        return self._upstream

    @cached_property
    def _upstream(self) -> WaveSpeedClient:
        s = self.settings
        if s.wavespeed_secret_name:
            key = read_secret(s.wavespeed_secret_name)
        elif s.wavespeed_api_key is not None:
            key = s.wavespeed_api_key.get_secret_value()
        else:
            raise RuntimeError("no WaveSpeed key configured: set WAVESPEED_SECRET_NAME or WAVESPEED_API_KEY")
        return WaveSpeedClient(
            s.wavespeed_base_url,
            key,
            connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout,
            submit_retry_budget=s.upstream_submit_retry_budget,
            get_retries=s.upstream_get_retries,
            backoff_base=s.upstream_backoff_base,
        )

    @cached_property
    def presenter(self) -> PredictionPresenter:
        return PredictionPresenter(self.outputs, self.settings)

    # --- services ---
    @cached_property
    def slots(self) -> DynamoSlotPool:
        return DynamoSlotPool(self.settings.table_name, self.settings.max_concurrent_upstream_tasks)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(store=self.jobs, upstream=self.upstream, slots=self.slots, settings=self.settings)

    @cached_property
    def submit(self) -> SubmitService:
        return SubmitService(
            store=self.jobs,
            dispatcher=self.dispatcher,
            workflow=StepFunctionsWorkflow(self.settings.state_machine_arn),
            webhook_secrets=self.webhook_secrets,
            settings=self.settings,
            check_url=self.check_webhook_url,
        )

    @cached_property
    def poll(self) -> PollService:
        return PollService(
            store=self.jobs, upstream=self.upstream, dispatcher=self.dispatcher, settings=self.settings
        )

    @cached_property
    def store_outputs(self) -> OutputService:
        source = GuardedOutputSource(self.url_policy, max_bytes=self.settings.max_output_bytes)
        return OutputService(store=self.jobs, outputs=self.outputs, sources=source, settings=self.settings)

    @cached_property
    def fail(self) -> FailService:
        return FailService(store=self.jobs)

    @cached_property
    def notify(self) -> NotifyService:
        return NotifyService(
            store=self.jobs,
            slots=self.slots,
            notifier=SnsNotifier(self.settings.topic_arn),
            sender=StandardWebhookSender(self.url_policy),
            secrets=self.webhook_secrets,
            presenter=self.presenter,
            settings=self.settings,
            check_url=self.check_webhook_url,
        )

    # --- uploads and img2img from S3 (issue 4) ---
    @cached_property
    def upload_store(self) -> S3UploadStore:
        return S3UploadStore(self.settings.bucket_name)

    @cached_property
    def uploads(self) -> UploadService:
        s = self.settings
        expiry = (
            StepFunctionsWorkflow(s.upload_expiry_state_machine_arn)
            if s.upload_expiry_state_machine_arn
            else None
        )
        return UploadService(
            jobs=self.jobs,
            submitter=self.submit,
            uploads=self.upload_store,
            generation=StepFunctionsWorkflow(s.state_machine_arn),
            expiry=expiry,
            settings=s,
        )


@lru_cache(maxsize=1)
def container() -> Container:
    return Container(get_settings())


def reset() -> None:
    """Forget everything cached for this container (settings, clients, secrets, idempotency
    store), as a cold start would. For the local stack and tests, which change the environment
    within one process; a Lambda container never needs it."""
    from aws_lambda_powertools.utilities import parameters

    from fluxrelay import idempotency

    get_settings.cache_clear()
    container.cache_clear()
    idempotency.reset()
    parameters.clear_caches()
