// The fluxrelay playground: plain browser JavaScript, no build step, no third-party code.
// The form is built from the served OpenAPI document (every submit field with its bounds), so
// it follows the API without being edited. Every value from the API is put on the page as text
// (textContent), never as HTML.
"use strict";

const SUBMIT_PATH = "/api/v3/wavespeed-ai/flux-schnell-lora";
const KEY_STORAGE = "fluxrelay.apiKey";
// WaveSpeed's terminal states, plus `cancelled` and `deleted` (any other status: keep polling).
const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled", "deleted"]);
const POLL_MS = 400;
const MAX_POLL_MS = 3000;
const HISTORY_PAGE = 20;
// A delivery log still pending or retrying is read again, less and less often.
const LOG_POLL_MS = 1000;
const MAX_LOG_POLL_MS = 30000;

const $ = (id) => document.getElementById(id);

/** A DOM element with attributes (`class`, `text`, properties, on* listeners) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------ the API
function apiKey() {
  return $("api-key").value.trim();
}

/** Call the API; resolves to {ok, status, data, message} and never throws. */
async function api(method, path, { body, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    return { ok: false, status: 0, data: null, message: `network error: ${error.message}` };
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // not JSON (a gateway error page): fall back to the status text
  }
  // WaveSpeed clients also treat a 200 whose envelope code is an error as an error.
  const code = envelope && typeof envelope.code === "number" ? envelope.code : response.status;
  return {
    ok: response.ok && code < 400,
    status: response.status,
    data: envelope ? envelope.data : null,
    message: (envelope && envelope.message) || response.statusText || `HTTP ${response.status}`,
  };
}

/** A refused call as one line: "409: the prediction has already ended: …". */
function refusal(answer) {
  return `${answer.status}: ${answer.message}`;
}

// ------------------------------------------------------------------ the form, from OpenAPI
let openapi = null;
const fields = new Map(); // body field name -> {read(): value | undefined}
let queryFields = new Map(); // query parameter name -> input
let loraSchema = null;
let maxLoras = 0;

function deref(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    schema = schema.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((node, part) => (node ? node[part] : undefined), openapi);
  }
  return schema || {};
}

/** `anyOf: [X, null]` (an optional field) as X, keeping the outer title/description/default. */
function plain(schema) {
  schema = deref(schema);
  const variants = schema.anyOf || schema.oneOf;
  if (!variants) return schema;
  const real = variants.map(deref).filter((v) => v.type !== "null");
  return real.length === 1 ? { ...real[0], ...schema, anyOf: undefined, oneOf: undefined, type: real[0].type } : schema;
}

function labelFor(name, schema) {
  return el(
    "span",
    { class: "label" },
    el("code", { text: name }),
    schema.description ? el("span", { class: "muted", text: ` ${schema.description}` }) : "",
  );
}

function numberInput(name, schema) {
  const input = el("input", {
    type: "number",
    name,
    id: `field-${name}`,
    min: schema.minimum ?? schema.exclusiveMinimum,
    max: schema.maximum ?? schema.exclusiveMaximum,
    step: schema.type === "integer" ? "1" : "any",
  });
  if (schema.default !== undefined) input.value = String(schema.default);
  const bounds = [schema.minimum, schema.maximum].every((b) => b !== undefined)
    ? el("span", { class: "muted bounds", text: `${schema.minimum} … ${schema.maximum}` })
    : "";
  return { input, extra: bounds, read: () => (input.value === "" ? undefined : Number(input.value)) };
}

/** `size` ("W*H"): two number inputs, each side bounded by the schema's x-side-minimum/maximum. */
function sizeInputs(name, schema) {
  const [w, h] = String(schema.default || "1024*1024").split("*");
  const side = (id, value) =>
    el("input", {
      type: "number",
      id,
      min: schema["x-side-minimum"],
      max: schema["x-side-maximum"],
      step: "16",
      value,
    });
  const width = side(`field-${name}-width`, w);
  const height = side(`field-${name}-height`, h);
  const box = el(
    "span",
    { class: "size" },
    width,
    el("span", { text: " × " }),
    height,
    el("span", { class: "muted bounds", text: ` each side ${schema["x-side-minimum"]} … ${schema["x-side-maximum"]}` }),
  );
  return { input: box, read: () => `${width.value}*${height.value}` };
}

function fieldFor(name, schema, required) {
  if (schema.type === "string" && schema["x-side-minimum"] !== undefined) return sizeInputs(name, schema);
  if (schema.enum) {
    const select = el("select", { name, id: `field-${name}` }, ...schema.enum.map((v) => el("option", { value: v, text: v })));
    if (schema.default !== undefined) select.value = schema.default;
    return { input: select, read: () => select.value };
  }
  if (schema.type === "boolean") {
    const box = el("input", { type: "checkbox", name, id: `field-${name}`, checked: Boolean(schema.default) });
    return { input: box, read: () => box.checked };
  }
  if (schema.type === "integer" || schema.type === "number") return numberInput(name, schema);
  const long = schema.format !== "uri" && (schema.maxLength || 0) > 300;
  const input = el(long ? "textarea" : "input", {
    name,
    id: `field-${name}`,
    maxlength: schema.maxLength,
    minlength: schema.minLength,
    pattern: long ? undefined : schema.pattern,
    required: required ? "" : undefined,
    rows: long ? "3" : undefined,
    placeholder: schema.format === "uri" ? "https://…" : undefined,
  });
  if (typeof schema.default === "string") input.value = schema.default;
  return { input, read: () => (input.value === "" ? undefined : input.value) };
}

/** An image field (`format: uri`): a URL, or a file uploaded through the upload-ticket API. */
function uriField(name, schema) {
  const field = fieldFor(name, schema, false);
  const file = el("input", { type: "file", id: `file-${name}`, accept: "image/jpeg,image/png,image/webp" });
  $("img2img").append(
    el("label", { class: "field" }, labelFor(name, schema), field.input, el("span", { class: "muted", text: " or a file: " }), file),
  );
  return {
    read: field.read,
    file: () => file.files[0],
  };
}

function loraRow() {
  const props = loraSchema.properties || {};
  const path = plain(props.path || {});
  const scale = plain(props.scale || {});
  const pathInput = el("input", { class: "lora-path", placeholder: "owner/repo or https://….safetensors", maxlength: path.maxLength });
  const scaleInput = el("input", {
    class: "lora-scale",
    type: "number",
    min: scale.minimum,
    max: scale.maximum,
    step: "0.05",
    value: "1",
    title: `scale ${scale.minimum} … ${scale.maximum}`,
  });
  const row = el(
    "div",
    { class: "lora-row" },
    pathInput,
    el("span", { class: "muted", text: " scale " }),
    scaleInput,
    el("span", { class: "muted bounds", text: ` ${scale.minimum} … ${scale.maximum} ` }),
    el("button", { type: "button", text: "remove", onclick: () => (row.remove(), updateLoraButton()) }),
  );
  $("lora-rows").append(row);
  updateLoraButton();
  pathInput.focus();
}

function updateLoraButton() {
  const count = $("lora-rows").children.length;
  $("add-lora").disabled = count >= maxLoras;
  $("lora-count").textContent = `(${count} of at most ${maxLoras})`;
}

function readLoras() {
  return [...$("lora-rows").children]
    .map((row) => ({ path: row.querySelector(".lora-path").value.trim(), scale: Number(row.querySelector(".lora-scale").value) }))
    .filter((lora) => lora.path !== "");
}

async function buildForm() {
  const box = $("fields");
  let response;
  try {
    response = await fetch("/openapi.json");
    openapi = await response.json();
  } catch (error) {
    box.replaceChildren(el("p", { class: "error", text: `Could not read /openapi.json: ${error.message}` }));
    return;
  }
  const operation = ((openapi.paths || {})[SUBMIT_PATH] || {}).post;
  if (!operation) {
    box.replaceChildren(el("p", { class: "error", text: `/openapi.json has no POST ${SUBMIT_PATH}` }));
    return;
  }
  const body = deref(operation.requestBody.content["application/json"].schema);
  const required = new Set(body.required || []);
  box.replaceChildren();
  for (const [name, raw] of Object.entries(body.properties || {})) {
    const schema = plain(raw);
    if (schema.type === "array" && schema.items) {
      loraSchema = deref(schema.items);
      maxLoras = schema.maxItems ?? 3;
      fields.set(name, { read: readLoras });
      continue;
    }
    if (schema.format === "uri") {
      fields.set(name, uriField(name, schema));
      continue;
    }
    const field = fieldFor(name, schema, required.has(name));
    fields.set(name, field);
    box.append(el("label", { class: `field field-${schema.type}` }, labelFor(name, schema), field.input, field.extra || ""));
  }
  queryFields = new Map();
  for (const parameter of operation.parameters || []) {
    if (parameter.in !== "query") continue;
    const schema = { ...plain(parameter.schema || {}), description: parameter.description };
    const field = fieldFor(parameter.name, schema, false);
    field.input.placeholder = "https://… (optional)";
    queryFields.set(parameter.name, field);
    box.append(el("label", { class: "field" }, labelFor(`?${parameter.name}`, schema), field.input));
  }
  updateLoraButton();
  $("submit").disabled = false;
}

// ------------------------------------------------------------------ uploads
/** Upload a file with the upload-ticket API; resolves to its download_url. */
async function upload(file) {
  const ticket = await api("POST", "/api/v3/media/uploads", {
    body: { filename: file.name, size: file.size, content_type: file.type },
  });
  if (!ticket.ok) throw new Error(`upload of ${file.name} refused: ${ticket.message}`);
  // Exactly the ticket's headers and no Authorization: the signature covers them. The browser
  // sets Content-Length itself (it refuses to let a script set it).
  const headers = Object.fromEntries(Object.entries(ticket.data.upload.headers || {}).filter(([h]) => h.toLowerCase() !== "content-length"));
  let put;
  try {
    put = await fetch(ticket.data.upload.url, { method: ticket.data.upload.method || "PUT", headers, body: file });
  } catch (error) {
    throw new Error(`upload of ${file.name} failed: ${error.message}`);
  }
  if (!put.ok) throw new Error(`upload of ${file.name} failed: HTTP ${put.status}`);
  return ticket.data.download_url;
}

// ------------------------------------------------------------------ submit
async function onSubmit(event) {
  event.preventDefault();
  const error = $("form-error");
  error.textContent = "";
  if (!apiKey()) {
    error.textContent = "Enter your API key first (make run prints one).";
    $("api-key").focus();
    return;
  }
  if (!$("submit-form").reportValidity()) return;
  $("submit").disabled = true;
  try {
    const body = {};
    for (const [name, field] of fields) {
      const chosen = field.file && field.file();
      if (chosen) setStatus(`uploading ${chosen.name}`);
      const value = chosen ? await upload(chosen) : field.read();
      if (value !== undefined) body[name] = value;
    }
    const query = {};
    for (const [name, field] of queryFields) {
      const value = field.read();
      if (value !== undefined) query[name] = value;
    }
    setStatus("submitting");
    const submittedAt = performance.now();
    const answer = await api("POST", SUBMIT_PATH, { body, query });
    if (!answer.ok) {
      error.textContent = refusal(answer);
      setStatus("idle");
      return;
    }
    follow(answer.data, submittedAt);
    loadHistory();
  } catch (failure) {
    error.textContent = failure.message;
    setStatus("idle");
  } finally {
    $("submit").disabled = false;
  }
}

// ------------------------------------------------------------------ the current job
// The job on show: `ran` = it was unfinished when shown (so its end changes the history).
let job = null; // {id, since, ended, ran, generation, logTimer}
let generation = 0;

function setStatus(status) {
  const badge = $("job-status");
  badge.textContent = status;
  badge.className = `badge status-${status.split(" ")[0]}`;
}

/** Show `prediction` and keep polling it until it ends; `since` = when we submitted it. */
function follow(prediction, since) {
  generation += 1;
  job = { id: prediction.id, since, ended: null, ran: !TERMINAL.has(prediction.status), generation, logTimer: null };
  $("job-id").textContent = prediction.id;
  $("job-id").className = "";
  $("images").replaceChildren();
  $("job-error").textContent = "";
  $("job-notice").textContent = "";
  $("webhooks").replaceChildren(el("p", { class: "muted", text: "Read when the job ends (or press refresh)." }));
  $("load-webhooks").disabled = false;
  render(prediction);
  if (!TERMINAL.has(prediction.status)) poll(job.generation, POLL_MS);
  tick();
}

async function poll(mine, wait) {
  await new Promise((resolve) => setTimeout(resolve, wait));
  if (!job || job.generation !== mine || job.ended) return;
  const answer = await api("GET", `/api/v3/predictions/${job.id}`);
  if (job.generation !== mine) return;
  if (answer.ok) {
    render(answer.data);
    if (!TERMINAL.has(answer.data.status)) poll(mine, POLL_MS);
    return;
  }
  if (answer.status === 401 || answer.status === 404) {
    $("job-error").textContent = refusal(answer);
    return;
  }
  // 429, 5xx, network: keep trying, more slowly
  $("job-error").textContent = `still trying (${answer.status}: ${answer.message})`;
  poll(mine, Math.min(wait * 2, MAX_POLL_MS));
}

function tick() {
  const mine = job && job.generation;
  const update = () => {
    if (!job || job.generation !== mine) return;
    const text = job.since === null ? "" : `${(((job.ended ?? performance.now()) - job.since) / 1000).toFixed(1)} s`;
    $("job-elapsed").textContent = text;
    if (!job.ended) window.requestAnimationFrame(update);
  };
  update();
}

function render(prediction) {
  const ended = TERMINAL.has(prediction.status);
  if (ended && !job.ended) {
    job.ended = performance.now();
    // Its webhook goes out now; a job seen running has a new status for the history.
    loadWebhooks();
    if (job.ran) loadHistory();
  }
  setStatus(prediction.status);
  $("cancel").disabled = ended;
  const problems = [prediction.error, prediction.error_type && `(${prediction.error_type})`].filter(Boolean);
  $("job-error").textContent = problems.join(" ");
  const box = $("images");
  (prediction.outputs || []).forEach((output, index) => {
    if (box.querySelector(`[data-index="${index}"]`)) return;
    box.append(figure(output, index, (prediction.has_nsfw_contents || [])[index]));
  });
  renderMetrics(prediction.metrics);
}

/** A base64 output (enable_base64_output) as a data URL, its type told by its first bytes. */
function dataUrl(base64) {
  const type = base64.startsWith("iVBOR") ? "png" : base64.startsWith("UklGR") ? "webp" : "jpeg";
  return `data:image/${type};base64,${base64}`;
}

function figure(output, index, nsfw) {
  const src = /^https?:\/\//.test(output) ? output : dataUrl(output);
  const caption = el("figcaption", {});
  const flag = el("span", { class: nsfw ? "nsfw-flag flagged" : "nsfw-flag", text: nsfw ? "NSFW: flagged" : "NSFW: no" });
  const img = el("img", { src, alt: `output ${index + 1}`, class: nsfw ? "nsfw" : "" });
  const size = el("span", { class: "muted" });
  img.addEventListener("load", () => (size.textContent = ` ${img.naturalWidth}×${img.naturalHeight} `));
  img.addEventListener("error", () => (size.textContent = " (could not be loaded) "));
  if (nsfw) img.addEventListener("click", () => img.classList.toggle("nsfw"));
  caption.append(el("span", { text: `#${index + 1}` }), size, flag, " ", el("a", { href: src, target: "_blank", rel: "noreferrer", text: "open" }));
  return el("figure", { "data-index": String(index) }, img, caption);
}

function renderMetrics(metrics) {
  const box = $("metrics-box");
  if (!metrics || typeof metrics !== "object") {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  $("metrics").replaceChildren(
    ...Object.entries(metrics).map(([name, value]) =>
      el("tr", {}, el("th", { text: name }), el("td", { text: typeof value === "object" ? JSON.stringify(value) : String(value) })),
    ),
  );
}

async function onCancel() {
  if (!job) return;
  $("cancel").disabled = true;
  $("job-notice").textContent = "";
  const answer = await api("POST", `/api/v3/predictions/${job.id}/cancel`);
  if (answer.ok) {
    if (answer.data && answer.data.id === job.id) render(answer.data);
    return;
  }
  $("job-notice").textContent = refusal(answer);
  // 409: the job has ended meanwhile (the next poll shows how); anything else may be retried.
  $("cancel").disabled = answer.status === 409;
}

// ------------------------------------------------------------------ webhook delivery log
/** "2026-12-01T18:15:06.715313Z" as "18:15:06" (the full time is the cell's tooltip). */
function clock(iso) {
  return iso ? String(iso).slice(11, 19) : "";
}

// One row per attempt, newest first; the receiver's host is in the summary line above.
const ATTEMPT_COLUMNS = [
  ["#", (a) => String(a.attempt)],
  ["at", (a) => clock(a.at), (a) => a.at],
  ["trigger", (a) => a.trigger],
  ["answer", (a) => (a.status_code ? `HTTP ${a.status_code}` : "none")],
  ["error", (a) => a.error || ""],
  ["latency", (a) => `${a.latency_ms} ms`],
  ["outcome", (a) => a.outcome],
  ["next try", (a) => clock(a.next_retry_at), (a) => a.next_retry_at],
];

function attemptsTable(attempts) {
  const cell = ([, text, title], attempt) => el("td", { text: text(attempt), title: title ? title(attempt) || undefined : undefined });
  return el(
    "table",
    { class: "log" },
    el("thead", {}, el("tr", {}, ...ATTEMPT_COLUMNS.map(([name]) => el("th", { text: name })))),
    el("tbody", {}, ...attempts.map((attempt) => el("tr", {}, ...ATTEMPT_COLUMNS.map((column) => cell(column, attempt))))),
  );
}

/** The delivery's state in one line: "delivered to hooks.example.com · 2 attempts · msg_…". */
function deliverySummary(log) {
  const parts = [`${log.state}${log.url_host ? ` to ${log.url_host}` : ""}`];
  parts.push(`${log.attempts} attempt${log.attempts === 1 ? "" : "s"}`);
  if (log.next_retry_at) parts.push(`next try ${log.next_retry_at}`);
  if (log.gave_up_reason) parts.push(`gave up: ${log.gave_up_reason}`);
  if (log.webhook_id) parts.push(`webhook-id ${log.webhook_id}`);
  return el("p", { id: "webhook-state", class: `delivery-${log.state}`, text: parts.join(" · ") });
}

/** Read the current job's delivery log; while it is pending or retrying, read it again later. */
async function loadWebhooks(wait = LOG_POLL_MS) {
  if (!job) return;
  const mine = job.generation;
  const box = $("webhooks");
  const answer = await api("GET", `/api/v3/predictions/${job.id}/webhooks`);
  if (!job || job.generation !== mine) return;
  if (!answer.ok) {
    box.replaceChildren(el("p", { class: "error", text: refusal(answer) }));
    return;
  }
  const log = answer.data || {};
  if (log.state === "none") {
    box.replaceChildren(el("p", { class: "muted", text: "No webhook for this job (submit with a webhook URL)." }));
    return;
  }
  const attempts = log.items || [];
  box.replaceChildren(deliverySummary(log), attempts.length ? attemptsTable(attempts) : el("p", { class: "muted", text: "No attempt yet." }));
  if (log.state === "pending" || log.state === "retrying") {
    clearTimeout(job.logTimer);
    job.logTimer = setTimeout(() => job && job.generation === mine && loadWebhooks(Math.min(wait * 2, MAX_LOG_POLL_MS)), wait);
  }
}

// ------------------------------------------------------------------ history
let cursor = null;
// Reads can overlap (the key field's change, a refresh, a job's end): only the latest one counts.
let historyRead = 0;

async function loadHistory(more = false) {
  if (!apiKey()) {
    $("history-message").textContent = "Enter your API key to see your jobs.";
    return;
  }
  const query = { limit: String(HISTORY_PAGE) };
  if (more && cursor) query.cursor = cursor;
  const mine = ++historyRead;
  const answer = await api("GET", "/api/v3/predictions", { query });
  if (mine !== historyRead) return;
  const list = $("history");
  if (!answer.ok) {
    if (!more) list.replaceChildren();
    $("history-message").textContent = refusal(answer);
    $("history-more").hidden = true;
    return;
  }
  const items = (answer.data && answer.data.items) || [];
  if (!more) list.replaceChildren();
  for (const prediction of items) {
    list.append(
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "history-item", onclick: () => follow(prediction, null) },
          el("span", { class: `badge status-${prediction.status}`, text: prediction.status }),
          el("code", { text: ` ${prediction.id} ` }),
          el("span", { class: "muted", text: prediction.created_at || "" }),
        ),
      ),
    );
  }
  cursor = (answer.data && answer.data.next_cursor) || null;
  $("history-more").hidden = !cursor;
  $("history-message").textContent = list.children.length ? "" : "No jobs yet.";
}

// ------------------------------------------------------------------ start
function start() {
  const key = $("api-key");
  key.value = window.localStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("input", () => window.localStorage.setItem(KEY_STORAGE, apiKey()));
  key.addEventListener("change", () => loadHistory());
  $("toggle-key").addEventListener("click", () => {
    key.type = key.type === "password" ? "text" : "password";
    $("toggle-key").textContent = key.type === "password" ? "show" : "hide";
  });
  $("submit").disabled = true;
  $("submit-form").addEventListener("submit", onSubmit);
  $("add-lora").addEventListener("click", loraRow);
  $("cancel").addEventListener("click", onCancel);
  $("load-webhooks").addEventListener("click", () => loadWebhooks());
  $("load-history").addEventListener("click", () => loadHistory());
  $("history-more").addEventListener("click", () => loadHistory(true));
  buildForm();
  loadHistory();
}

start();
