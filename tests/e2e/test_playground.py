"""The playground page (`GET /playground`) in a real headless browser against the local stack.

Playwright drives the system's Chromium (Debian's `chromium`; `make test` installs it), never a
browser of its own: set CHROMIUM to another binary to use that one. Each test saves a screenshot
under its own temporary folder.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from fluxrelay_local.stack import LocalStack
from tests.support.stack import Api, WebhookReceiver, api_for, standin_of

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 30_000
SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora"
# Assertions wait as long as actions (a loaded CI machine runs jobs slowly); 5 s by default.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    if executable is None:
        pytest.fail(
            "no chromium on PATH: `make test` installs Debian's chromium, or set CHROMIUM=/path/to/it"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack: LocalStack, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    # No CDN: everything the page loads or calls is the API itself, or the stack's storage
    # (presigned uploads and outputs); images given as base64 are data: URLs.
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(origin(request)))
    page.goto(f"{stack.api_url}/playground")
    # The form is built from /openapi.json: ready once the submit button is enabled.
    expect(page.locator("#submit")).to_be_enabled()
    yield page
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    context.close()
    assert script_errors == []
    assert origins <= {origin_of(stack.api_url), origin_of(stack.aws_endpoint_url), "data:"}, origins


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


def origin(request: Request) -> str:
    return origin_of(request.url)


def submit_schema(stack: LocalStack) -> dict[str, Any]:
    doc = httpx.get(f"{stack.api_url}/openapi.json").json()
    ref = doc["paths"][SUBMIT_PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return dict(doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"])


def upstream_input(stack: LocalStack, prompt: str) -> dict[str, Any]:
    [submission] = [s for s in standin_of(stack).submissions if s["input"]["prompt"] == prompt]
    return dict(submission["input"])


def displayed_images(page: Page, count: int) -> list[dict[str, int]]:
    """Wait until `count` output images are loaded and decoded; their natural sizes."""
    page.wait_for_function(
        """count => {
            const imgs = [...document.querySelectorAll('#images img')];
            return imgs.length === count && imgs.every(img => img.complete && img.naturalWidth > 0);
        }""",
        arg=count,
    )
    sizes: list[dict[str, int]] = page.eval_on_selector_all(
        "#images img", "imgs => imgs.map(img => ({width: img.naturalWidth, height: img.naturalHeight}))"
    )
    return sizes


def png_file(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_the_page_is_served_without_a_key_with_a_strict_content_policy(stack: LocalStack) -> None:
    page = httpx.get(f"{stack.api_url}/playground")
    script = httpx.get(f"{stack.api_url}/playground/playground.js")
    unknown = httpx.get(f"{stack.api_url}/playground/secrets.json")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/playground/playground.js"' in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert unknown.status_code == 404
    assert unknown.json() == {"code": 404, "message": "no such route", "data": None}
    assert not any(
        path.startswith("/playground") for path in httpx.get(f"{stack.api_url}/openapi.json").json()["paths"]
    )


def test_the_form_takes_every_parameter_and_its_bounds_from_openapi(page: Page, stack: LocalStack) -> None:
    schema = submit_schema(stack)

    for name in ("num_images", "seed", "strength"):
        field = page.locator(f"#field-{name}")
        assert field.get_attribute("min") == str(schema[name]["minimum"]).removesuffix(".0")
        assert field.get_attribute("max") == str(schema[name]["maximum"]).removesuffix(".0")
        assert field.input_value() == str(schema[name]["default"])
    options = page.eval_on_selector_all("#field-output_format option", "os => os.map(o => o.value)")
    assert options == schema["output_format"]["enum"]
    width = page.locator("#field-size-width")
    assert width.get_attribute("min") == str(schema["size"]["x-side-minimum"])
    assert width.get_attribute("max") == str(schema["size"]["x-side-maximum"])
    for name in ("enable_base64_output", "enable_sync_mode", "enable_safety_checker"):
        assert page.locator(f"#field-{name}").is_checked() == schema[name]["default"]
    assert page.locator("#field-image").count() == 1
    assert page.locator("#file-mask_image").count() == 1
    # LoRA rows: no more than the schema's maxItems.
    for _ in range(schema["loras"]["maxItems"]):
        page.click("#add-lora")
    expect(page.locator("#add-lora")).to_be_disabled()
    assert page.locator(".lora-row").count() == schema["loras"]["maxItems"]


def test_submit_shows_live_status_then_the_images_with_their_nsfw_flags(
    page: Page, stack: LocalStack, alice: Api, tmp_path: Path
) -> None:
    prompt = f"a lighthouse at dusk, watercolor {uuid.uuid4().hex[:8]}"
    # Given a filled form
    page.fill("#api-key", str(alice.key))
    page.fill("#field-prompt", prompt)
    page.fill("#field-size-width", "512")
    page.fill("#field-size-height", "384")
    page.fill("#field-num_images", "2")
    page.fill("#field-seed", "42")
    page.select_option("#field-output_format", "png")
    page.click("#add-lora")
    page.fill(".lora-row .lora-path", "alvdansen/frosting_lane_flux")
    page.fill(".lora-row .lora-scale", "0.8")

    # When it is submitted
    page.click("#submit")

    # Then the job runs to the end and both images are displayed at the requested size
    expect(page.locator("#job-status")).to_have_text("completed")
    assert displayed_images(page, 2) == [{"width": 512, "height": 384}] * 2
    job_id = page.inner_text("#job-id")
    prediction = alice.result(job_id).json()["data"]
    flags = ["NSFW: flagged" if flag else "NSFW: no" for flag in prediction["has_nsfw_contents"]]
    assert page.locator(".nsfw-flag").all_inner_texts() == flags
    assert page.inner_text("#job-elapsed").endswith(" s")
    expect(page.locator("#cancel")).to_be_disabled()
    sent = upstream_input(stack, prompt)
    assert (sent["size"], sent["num_images"], sent["seed"], sent["output_format"]) == (
        "512*384",
        2,
        42,
        "png",
    )
    assert sent["loras"] == [{"path": "alvdansen/frosting_lane_flux", "scale": 0.8}]
    page.screenshot(path=str(tmp_path / "playground-completed.png"), full_page=True)
    # And the key stays in the browser for the next visit
    page.reload()
    expect(page.locator("#api-key")).to_have_value(str(alice.key))


def test_image_and_mask_files_are_uploaded_with_tickets_for_inpainting(
    page: Page, stack: LocalStack, alice: Api, tmp_path: Path
) -> None:
    prompt = f"the same scene as a watercolor {uuid.uuid4().hex[:8]}"
    photo = png_file(tmp_path / "photo.png", (20, 120, 200))
    mask = png_file(tmp_path / "mask.png", (255, 255, 255))
    page.fill("#api-key", str(alice.key))
    page.fill("#field-prompt", prompt)
    page.fill("#field-size-width", "256")
    page.fill("#field-size-height", "256")
    page.fill("#field-strength", "0.6")
    page.set_input_files("#file-image", str(photo))
    page.set_input_files("#file-mask_image", str(mask))

    page.click("#submit")

    expect(page.locator("#job-status")).to_have_text("completed")
    assert displayed_images(page, 1) == [{"width": 256, "height": 256}]
    sent = upstream_input(stack, prompt)
    assert sent["strength"] == 0.6
    # The upstream got presigned GETs of the uploaded files, which hold exactly their bytes.
    assert httpx.get(sent["image"]).content == photo.read_bytes()
    assert httpx.get(sent["mask_image"]).content == mask.read_bytes()
    assert "/uploads/alice/" in sent["image"]


def test_a_refused_submit_shows_the_api_message(page: Page, alice: Api) -> None:
    page.fill("#api-key", str(alice.key))
    page.fill("#field-prompt", "   ")

    page.click("#submit")

    expect(page.locator("#form-error")).to_contain_text("400: prompt must be a non-empty string")
    expect(page.locator("#job-id")).to_have_text("none yet")


def test_history_lists_the_owners_jobs_and_opens_one_with_its_flags(page: Page, stack: LocalStack) -> None:
    # Given an owner of their own: a flagged job, then a failed one
    pat = api_for(stack, "pat")
    flagged = pat.submit({"prompt": "a red square [nsfw]", "size": "256*256"}).json()["data"]["id"]
    assert pat.wait_finished(flagged)["has_nsfw_contents"] == [True]
    failed = pat.submit({"prompt": "a blue square [fail]", "size": "256*256"}).json()["data"]["id"]
    assert pat.wait_finished(failed)["status"] == "failed"

    # When the page reads the history (GET /api/v3/predictions) with their key
    page.fill("#api-key", str(pat.key))
    page.click("#load-history")

    # Then both are listed, newest first, with their status
    items = page.locator(".history-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text(f"failed {failed}")
    expect(items.nth(1)).to_contain_text(f"completed {flagged}")
    # And the flagged one opens with its image blurred as flagged, and no webhook
    items.nth(1).click()
    expect(page.locator("#job-id")).to_have_text(flagged)
    expect(page.locator("#job-status")).to_have_text("completed")
    displayed_images(page, 1)
    expect(page.locator(".nsfw-flag")).to_have_text("NSFW: flagged")
    expect(page.locator("#images img.nsfw")).to_have_count(1)
    expect(page.locator("#webhooks")).to_have_text("No webhook for this job (submit with a webhook URL).")
    # The failed one shows its error
    items.nth(0).click()
    expect(page.locator("#job-status")).to_have_text("failed")
    expect(page.locator("#job-error")).not_to_be_empty()


def test_the_history_reads_the_next_page_with_the_cursor(page: Page, stack: LocalStack) -> None:
    # Given one job more than the page shows (20)
    rosa = api_for(stack, "rosa")
    for n in range(21):
        assert rosa.submit({"prompt": f"square number {n}", "size": "256*256"}).status_code == 200
    newest_first = [
        p["id"] for p in rosa.get("/api/v3/predictions", params={"limit": 21}).json()["data"]["items"]
    ]

    # When the page reads the history, then its next page
    page.fill("#api-key", str(rosa.key))
    page.click("#load-history")
    expect(page.locator(".history-item")).to_have_count(20)
    page.click("#history-more")

    # Then every job is listed once, newest first, and there is nothing more to read
    expect(page.locator(".history-item")).to_have_count(21)
    expect(page.locator("#history-more")).to_be_hidden()
    listed = page.locator(".history-item code").all_inner_texts()
    assert [text.strip() for text in listed] == newest_first


def test_cancel_ends_a_running_job_and_the_history_shows_it(page: Page, stack: LocalStack) -> None:
    quinn = api_for(stack, "quinn")
    page.fill("#api-key", str(quinn.key))
    page.fill("#field-prompt", "a job that never ends [hang]")
    page.fill("#field-size-width", "256")
    page.fill("#field-size-height", "256")

    # Given a submitted job the page shows live as processing
    page.click("#submit")
    expect(page.locator("#job-status")).to_have_text("processing")
    job_id = page.inner_text("#job-id")
    expect(page.locator(".history-item")).to_contain_text([f"{job_id}"])

    # When it is cancelled from the page
    page.click("#cancel")

    # Then it ends as cancelled, says what that means for billing, and cannot be cancelled again
    expect(page.locator("#job-status")).to_have_text("cancelled")
    prediction = quinn.result(job_id).json()["data"]
    assert prediction["status"] == "cancelled"
    expect(page.locator("#job-error")).to_contain_text(prediction["error"])
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#job-notice")).to_be_empty()
    expect(page.locator(".history-item").first).to_contain_text(f"cancelled {job_id}")
    # A second cancel (another tab, say) is the API's 409, shown as it is
    page.evaluate("document.getElementById('cancel').disabled = false")
    page.click("#cancel")
    expect(page.locator("#job-notice")).to_have_text(
        "409: the prediction has already ended: its status is cancelled"
    )


def test_the_delivery_log_shows_each_attempt_of_the_jobs_webhook(page: Page, alice: Api) -> None:
    # A receiver that fails the first delivery: the workflow retries, the log shows both attempts.
    with WebhookReceiver(statuses=[503]) as receiver:
        page.fill("#api-key", str(alice.key))
        page.fill("#field-prompt", f"a signed lighthouse {uuid.uuid4().hex[:8]}")
        page.fill("#field-size-width", "256")
        page.fill("#field-size-height", "256")
        page.fill("#field-webhook", receiver.url)

        page.click("#submit")

        expect(page.locator("#job-status")).to_have_text("completed")
        job_id = page.inner_text("#job-id")
        # The page reads the log when the job ends and again while it is pending or retrying.
        expect(page.locator("#webhook-state")).to_contain_text(
            f"delivered to 127.0.0.1:{receiver.port} · 2 attempts"
        )
        expect(page.locator("#webhook-state")).to_contain_text(f"webhook-id msg_{job_id}")
        rows = page.locator("#webhooks tbody tr")
        expect(rows).to_have_count(2)
        log = alice.get(f"/api/v3/predictions/{job_id}/webhooks").json()["data"]
        assert [(a["outcome"], a["status_code"]) for a in log["items"]] == [
            ("delivered", 200),
            ("will_retry", 503),
        ]
        for row, attempt in zip(rows.all(), log["items"], strict=True):
            expect(row).to_contain_text(attempt["outcome"])
            expect(row).to_contain_text(str(attempt["status_code"]))
        assert [d.json()["id"] for d in receiver.deliveries] == [job_id]
