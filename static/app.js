// Live progress for background jobs: one store of jobs, fed by SSE and the JSON API,
// rendered in batches (one requestAnimationFrame per burst of updates).

const TERMINAL = new Set(['finished', 'failed', 'stopped', 'canceled', 'skipped']);
const RECONNECT_MS = 5000;
const FALLBACK_AFTER_MS = 4000;
const POLL_MS = 3000;

/** The only state: job id -> latest job JSON (a batch's items are jobs too). */
const jobs = new Map();
/** Each job's output as far as the page has it: job id -> { text, end } (end in code
 * points, as the server counts offsets). */
const outputs = new Map();
/** Each queued job's place in line: job id -> { position, eta_seconds }. Places move
 * while jobs do not change, so they come apart from the jobs' states: as `queue` in
 * the API's answers and the snapshot, and live as `event: queue`. */
const places = new Map();
/** The batches whose items are shown. */
const expanded = new Set();
/** What the page calls each kind, from the server's registry; the API keeps `kind`. */
let kindNames = {};
/** The list's filters: the statuses each shows (as GET /api/jobs?status= takes them). */
const FILTERS = {
  active: ['queued', 'scheduled', 'deferred', 'started'],
  failed: ['failed', 'stopped'],
  finished: ['finished'],
};
/** The filter shown ('' for all), and per filter the cursor of its next older page
 * (the API's next_before; null once there is none, absent before the first page). */
let filter = '';
const older = new Map();
/** A shared job's page (/watch/<token>): its stream's URL; the page is read-only. */
let watching = null;
/** Jobs that ended while the tab was hidden, counted in its title. */
let unseen = 0;
let baseTitle = '';

const $ = (id) => document.getElementById(id);
const scheduleRender = createBatcher(renderJobs);

// ---------------------------------------------------------------- store

/** Merge one job into the store and schedule its row for rendering. */
export function applyJob(job) {
  if (!job?.id) return;
  const old = jobs.get(job.id);
  const placed = 'queue' in job && (!old || (job.version ?? 0) >= (old.version ?? 0));
  if (placed) applyPlace(job.id, job.queue);
  const merged = mergeJob(old, job);
  if (!merged) {
    if (placed) scheduleRender(job.id);
    return;
  }
  if (merged.status !== 'queued') places.delete(job.id);
  jobs.set(job.id, merged);
  // Terminal states are announced for whole jobs, not for each item of a batch.
  if (old && !merged.parent && !TERMINAL.has(old.status) && TERMINAL.has(merged.status)) {
    announce(merged);
    noteIfHidden(merged);
  }
  scheduleRender(job.id);
}

/** Whether `job` is a newer state than `old`: the rule of myapp/ordering.py
 * (versions, never clocks: hosts' clocks disagree). */
function isNewer(job, old) {
  return (job.version ?? 0) > (old.version ?? 0);
}

/** The job to store, or null when the incoming update must be ignored. */
export function mergeJob(old, job) {
  if (!old) return job;
  if (!isNewer(job, old)) return null; // stale or duplicate
  // A late event never reopens an ended job; only a retry (back to queued) does.
  if (TERMINAL.has(old.status) && !TERMINAL.has(job.status) && job.status !== 'queued') return null;
  if (old.status === job.status && movesBackwards(old.progress, job.progress)) {
    return { ...job, progress: old.progress };
  }
  return job;
}

/** The user's line moved: `{ jobs: { <id>: { position, eta_seconds } } }`. */
function applyLine(data) {
  for (const [id, place] of Object.entries(data?.jobs ?? {})) {
    if (jobs.get(id)?.status !== 'queued') continue;
    applyPlace(id, place);
    scheduleRender(id);
  }
}

function applyPlace(id, place) {
  if (Number.isInteger(place?.position) && place.position > 0) places.set(id, place);
  else places.delete(id);
}

/** "3rd in line · starts in about 20 s", or "3rd in line" with no estimate yet. */
export function placeText(place) {
  const where = `${ordinal(place.position)} in line`;
  const eta = place.eta_seconds;
  if (typeof eta !== 'number' || !(eta >= 0)) return where;
  if (eta < 60) return `${where} · starts in about ${Math.max(5, Math.ceil(eta / 5) * 5)} s`;
  return `${where} · starts in about ${Math.round(eta / 60)} min`;
}

/** 1st, 2nd, 3rd, 4th … 11th, 12th, 13th … 21st, 22nd, 23rd. */
export function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** Add a piece of a job's output: in order, each character once. A piece that starts
 * past what the page has means some were missed (a snapshot after a long absence):
 * the rest is fetched from the API. */
export function applyOutput(out) {
  if (typeof out?.job !== 'string' || typeof out.text !== 'string') return;
  const known = outputs.get(out.job) ?? { text: '', end: 0 };
  outputs.set(out.job, known);
  if (out.offset > known.end) {
    if (!watching) fetchOutput(out.job, known);
    return;
  }
  const chars = [...out.text];
  if (out.offset + chars.length <= known.end) return; // had it already
  const fresh = chars.slice(known.end - out.offset).join('');
  known.text += fresh;
  known.end = out.offset + chars.length;
  showOutput(out.job, fresh);
}

async function fetchOutput(id, known) {
  try {
    const out = await requestJson(`/api/jobs/${encodeURIComponent(id)}/output?after=${known.end}`);
    applyOutput({ job: id, offset: known.end, text: out.text });
  } catch (error) {
    showAlert(`Could not load the output: ${error.message}`);
  }
}

function movesBackwards(oldProgress, newProgress) {
  const before = oldProgress?.percent;
  const after = newProgress?.percent;
  return typeof before === 'number' && (typeof after !== 'number' || after < before);
}

// ---------------------------------------------------------------- network

/**
 * Streams events; the stream starts with a snapshot (or, on a reconnect, replays
 * what was missed after Last-Event-ID, which the browser sends by itself). While it
 * cannot connect, polls GET /api/jobs, and goes back to streaming once it can.
 */
function connect(url = '/stream') {
  let fallback = 0;
  let poller = 0;
  const startPolling = () => {
    if (watching) return; // the API is the owner's: a watcher waits for the stream
    setConnection('polling');
    loadJobs();
    poller ||= setInterval(loadJobs, POLL_MS);
  };
  const stopPolling = () => {
    clearTimeout(fallback);
    clearInterval(poller);
    fallback = poller = 0;
  };
  const open = () => {
    const source = new EventSource(url);
    source.addEventListener('open', () => {
      stopPolling();
      setConnection('live');
      showAlert(''); // an error from polling while it was down no longer holds
    });
    source.addEventListener('job', (event) => applyJob(parseJson(event.data)));
    source.addEventListener('output', (event) => applyOutput(parseJson(event.data)));
    source.addEventListener('queue', (event) => applyLine(parseJson(event.data)));
    source.addEventListener('snapshot', (event) => {
      const snapshot = parseJson(event.data);
      applyAll(snapshot);
      if (!older.has('')) older.set('', snapshot?.next_before ?? null);
      updateEmpty();
    });
    source.addEventListener('error', () => {
      if (!poller) setConnection('reconnecting');
      fallback ||= setTimeout(startPolling, FALLBACK_AFTER_MS);
      // EventSource retries by itself unless the server refused it: then start over,
      // or, on a shared job's page, say why the link ended.
      if (source.readyState !== EventSource.CLOSED) return;
      if (watching) checkLink(url, () => setTimeout(open, RECONNECT_MS));
      else setTimeout(open, RECONNECT_MS);
    });
  };
  open();
}

/** Why a shared job's stream was refused: the job ended (204: stop), the link expired
 * or was revoked (410: say so and stop), or it was a blip (try again). */
async function checkLink(url, retry) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch {
    return retry();
  }
  if (response.status === 204) return setConnection('ended');
  if (response.ok) {
    response.body?.cancel();
    return retry();
  }
  const body = parseJson(await response.text());
  setConnection('ended');
  showAlert(`This link no longer works: ${body?.error ?? `error ${response.status}`}.`);
}

async function loadJobs() {
  try {
    applyAll(await requestJson('/api/jobs'));
    updateEmpty();
  } catch (error) {
    showAlert(`Could not load the jobs: ${error.message}`);
  }
}

function applyAll(data) {
  (data?.jobs ?? []).forEach(applyJob);
}

/** One more page of older jobs for the filter shown, then each next_before in turn.
 * All jobs go on from the snapshot's next_before (it holds the newest, without a gap);
 * a filter starts from its newest match. Known jobs are merged as usual. */
async function loadOlder() {
  const params = new URLSearchParams({ limit: '50' });
  if (filter) params.set('status', FILTERS[filter].join(','));
  const before = older.get(filter);
  if (before) params.set('before', before);
  const shown = filter;
  try {
    const page = await requestJson(`/api/jobs?${params}`);
    applyAll(page);
    older.set(shown, page.next_before ?? null);
  } catch (error) {
    showAlert(`Could not load older jobs: ${error.message}`);
  }
  updateListTools();
}

function setFilter() {
  filter = $('filter').value;
  for (const row of $('jobs').children) {
    const job = jobs.get(row.dataset.jobId);
    if (job) row.hidden = !isShown(job);
  }
  updateListTools();
  if (!older.has(filter)) loadOlder(); // its matching jobs, older ones included
}

function isShown(job) {
  return !filter || FILTERS[filter].includes(job.status);
}

function updateListTools() {
  if (watching) return; // a shared job's page lists that job only
  $('load-older').hidden = older.get(filter) === null || !$('empty').hidden;
  const any = [...$('jobs').children].some((row) => !row.hidden);
  $('none-shown').hidden = any || !$('empty').hidden;
}

function postJob(kind, params) {
  return requestJson('/api/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken() },
    body: JSON.stringify({ kind, params }),
  });
}

/** POST /api/jobs/<id>/<action> (cancel or retry); the stream brings the outcome. */
function postAction(id, action) {
  return requestJson(`/api/jobs/${encodeURIComponent(id)}/${action}`, {
    method: 'POST',
    headers: { 'X-CSRFToken': csrfToken() },
  });
}

/** fetch() that resolves to the JSON body, or throws an Error with the server's message. */
async function requestJson(url, options = {}) {
  const response = await fetch(url, {
    ...options,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...options.headers },
  });
  const isJson = (response.headers.get('Content-Type') ?? '').includes('application/json');
  const body = isJson ? await response.json().catch(() => null) : null;
  if (response.ok && body) return body;
  const signedOut = response.status === 401 || response.redirected;
  throw new Error(body?.error ?? (signedOut
    ? 'your session has ended, reload the page to sign in again'
    : `unexpected response (HTTP ${response.status})`));
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? '';
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

// ---------------------------------------------------------------- actions

async function startProcesses(event) {
  const button = event.currentTarget;
  button.disabled = true;
  showAlert('');
  try {
    const requests = Array.from({ length: 10 }, () => postJob('process_run', randomParams()));
    const results = await Promise.allSettled(requests);
    results.filter((r) => r.status === 'fulfilled').forEach((r) => applyJob(r.value));
    const failures = results.filter((r) => r.status === 'rejected');
    if (failures.length) {
      showAlert(`${failures.length} of 10 processes could not be started: ${failures[0].reason.message}`);
    }
  } finally {
    button.disabled = false;
    keepFocus(button);
  }
}

/** Starts one job from a button whose data-kind names it (Publish album, Generate profile). */
async function startKind(event) {
  const button = event.currentTarget;
  const kind = button.dataset.kind;
  button.disabled = true;
  showAlert('');
  try {
    applyJob(await postJob(kind, kind === 'publish_album' ? albumParams() : {}));
  } catch (error) {
    showAlert(`Could not start ${kind}: ${error.message}`);
  } finally {
    button.disabled = false;
    keepFocus(button);
  }
}

async function onRowAction(event) {
  const toggle = event.target.closest('button.toggle-items');
  if (toggle) return toggleItems(toggle.closest('li.job').dataset.jobId);
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const id = button.closest('li.job').dataset.jobId;
  if (button.dataset.action === 'share') return shareJob(id, button);
  if (button.dataset.action === 'output') return loadOutput(id, button);
  button.disabled = true;
  showAlert('');
  try {
    applyJob(await postAction(id, button.dataset.action));
  } catch (error) {
    showAlert(`Could not ${button.dataset.action} the job: ${error.message}`);
  } finally {
    button.disabled = false;
    keepFocus(button.hidden ? rowFocus(button.closest('li.job')) : button);
  }
}

/** Makes a link to watch the job, copies it and shows it in the row. */
async function shareJob(id, button) {
  showAlert('');
  try {
    const { url, expires_at: expires } = await requestJson(`/api/jobs/${encodeURIComponent(id)}/share`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken() },
      body: JSON.stringify({}),
    });
    const field = button.closest('li.job').querySelector('.share-link');
    field.value = url;
    field.hidden = false;
    field.title = `works until ${new Date(parseTime(expires)).toLocaleString()}`;
    let copied = false;
    try {
      await navigator.clipboard.writeText(url);
      copied = true;
    } catch {
      field.select(); // no clipboard here (a page not served over https): ready to copy
    }
    button.textContent = copied ? 'Link copied' : 'Share';
  } catch (error) {
    showAlert(`Could not share the job: ${error.message}`);
  }
}

/** Shows an ended job's output, which the page had not seen live. */
async function loadOutput(id, button) {
  showAlert('');
  button.disabled = true;
  const known = outputs.get(id) ?? { text: '', end: 0 };
  outputs.set(id, known);
  await fetchOutput(id, known);
  button.disabled = false;
  if (!known.text) return; // failed (the alert says why) or empty: the button stays
  button.hidden = true;
  button.closest('li.job').querySelector(':scope > .job-output').focus();
}

/**
 * Disabling or hiding the focused control drops the focus to <body>, and a keyboard
 * user back to the top of the page: put it on `target` instead.
 */
function keepFocus(target) {
  const active = document.activeElement;
  if (target && (active === null || active === document.body)) target.focus();
}

/** Where focus goes in a row whose focused control went away: Retry, or the row. */
function rowFocus(row) {
  const retry = row.querySelector('.action-retry');
  if (retry && !retry.hidden) return retry;
  row.tabIndex = -1;
  return row;
}

async function importContacts(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = new FormData(form);
  body.set('kind', 'import_contacts');
  const button = form.querySelector('button');
  button.disabled = true;
  showAlert('');
  try {
    applyJob(await requestJson('/api/jobs', {
      method: 'POST', headers: { 'X-CSRFToken': csrfToken() }, body,
    }));
    form.reset();
  } catch (error) {
    showAlert(`Could not import the file: ${error.message}`);
  } finally {
    button.disabled = false;
    keepFocus(button);
  }
}

/** A demo album: 12 photos of random sizes, with a few transient upload errors. */
function albumParams() {
  const items = Array.from({ length: 12 }, (_, i) => ({
    name: `photo-${String(i + 1).padStart(2, '0')}.jpg`,
    size_kb: 200 + Math.floor(Math.random() * 3000),
  }));
  return { items, failure_rate: 0.15, latency_ms: 600 };
}

/** Shows or hides a batch's items; their current states come from the API. */
async function toggleItems(id) {
  if (expanded.has(id)) expanded.delete(id);
  else expanded.add(id);
  scheduleRender(id);
  if (!expanded.has(id) || watching) return; // a shared job's stream brings its pieces
  try {
    applyAll(await requestJson(`/api/jobs?parent=${encodeURIComponent(id)}`));
  } catch (error) {
    showAlert(`Could not load the items: ${error.message}`);
  }
}

function randomParams() {
  const steps = 10 + Math.floor(Math.random() * 31); // 10–40
  const stepSeconds = Math.round((0.05 + Math.random() * 0.25) * 100) / 100; // 0.05–0.30
  return { steps, step_seconds: stepSeconds };
}

// ---------------------------------------------------------------- rendering

/** Collects ids and calls render(ids) once, on the next animation frame. */
function createBatcher(render) {
  const ids = new Set();
  let frame = 0;
  return (id) => {
    ids.add(id);
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      const batch = [...ids];
      ids.clear();
      render(batch);
    });
  };
}

function renderJobs(ids) {
  const list = $('jobs');
  for (const id of ids) {
    const job = jobs.get(id);
    if (job.parent) {
      renderItem(job);
      continue;
    }
    const row = list.querySelector(`li[data-job-id="${CSS.escape(id)}"]`) ?? insertRow(list, job);
    updateRow(row, job);
    if (job.children) renderItems(row, job);
  }
  updateEmpty();
}

/** A batch's items, in its order, inside its row while it is expanded. */
function renderItems(row, job) {
  const items = row.querySelector('.items');
  const open = expanded.has(job.id);
  items.hidden = !open;
  const toggle = row.querySelector('.toggle-items');
  toggle.setAttribute('aria-expanded', String(open));
  const count = job.children.length;
  toggle.textContent = `${open ? 'Hide' : 'Show'} ${count} ${job.kind === 'generate_profile' ? 'stages' : 'items'}`;
  if (!open) return;
  for (const childId of job.children) {
    if (jobs.has(childId)) renderItem(jobs.get(childId));
  }
}

function renderItem(job) {
  if (!expanded.has(job.parent)) return;
  const parentRow = $('jobs').querySelector(`li[data-job-id="${CSS.escape(job.parent)}"]`);
  const order = jobs.get(job.parent)?.children;
  if (!parentRow || !order) return;
  const items = parentRow.querySelector('.items');
  let row = items.querySelector(`li[data-job-id="${CSS.escape(job.id)}"]`);
  if (!row) {
    row = createRow(job);
    const position = order.indexOf(job.id);
    const after = [...items.children].find((li) => order.indexOf(li.dataset.jobId) > position);
    items.insertBefore(row, after ?? null);
  }
  updateRow(row, job);
}

/** Creates the row and puts it in place: newest first by created_at. */
function insertRow(list, job) {
  const row = createRow(job);
  const older = [...list.children].find((li) => jobs.get(li.dataset.jobId)?.created_at < job.created_at);
  list.insertBefore(row, older ?? null);
  return row;
}

function createRow(job) {
  const row = el('li', 'job');
  row.dataset.jobId = job.id;
  const elapsed = el('span', 'job-elapsed');
  elapsed.append(el('span', 'visually-hidden', 'elapsed '), el('span', 'elapsed-value'));
  const head = el('div', 'job-head');
  head.append(el('span', 'job-kind'), el('span', 'badge'), el('span', 'job-id', job.id.slice(0, 8)), elapsed);
  const bar = el('div', 'bar');
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.append(el('div', 'bar-fill'));
  const foot = el('div', 'job-foot');
  foot.append(el('span', 'job-percent'), el('span', 'job-message'));
  const result = el('p', 'job-result');
  // The job's output, following its end unless the reader scrolled up. Not live for
  // screen readers: they hear the status line, not every token.
  const output = el('pre', 'job-output', outputs.get(job.id)?.text);
  output.hidden = !outputs.get(job.id)?.text;
  output.tabIndex = 0;
  output.setAttribute('aria-label', `Output of ${kindName(job)} ${job.id.slice(0, 8)}`);
  row.append(head, bar, foot, el('p', 'job-error'), result, output);
  if (job.parent) return row; // an item is canceled and retried with its batch
  const actions = el('div', 'job-actions');
  if (!watching) {
    const link = el('input', 'share-link');
    link.readOnly = true;
    link.hidden = true;
    link.setAttribute('aria-label', `Share link of ${kindName(job)} ${job.id.slice(0, 8)}`);
    actions.append(
      actionButton('cancel', 'Cancel', job),
      actionButton('retry', 'Retry', job),
      actionButton('share', 'Share', job),
      actionButton('output', 'Show output', job),
      link,
    );
  }
  row.append(actions);
  if (job.children) {
    const items = el('ul', 'items');
    items.id = `items-${job.id}`;
    items.hidden = true;
    items.setAttribute('aria-label', `${kindName(job)} ${job.id.slice(0, 8)} items`);
    const toggle = el('button', 'button-quiet toggle-items', 'Show items');
    toggle.type = 'button';
    toggle.setAttribute('aria-controls', items.id);
    toggle.setAttribute('aria-expanded', 'false');
    actions.prepend(toggle);
    row.append(items);
  }
  return row;
}

function showOutput(id, text) {
  const row = $('jobs').querySelector(`li[data-job-id="${CSS.escape(id)}"]`);
  const panel = row?.querySelector(':scope > .job-output');
  if (!panel || !text) return;
  const following = panel.hidden || panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 4;
  panel.hidden = false;
  panel.append(text);
  if (following) panel.scrollTop = panel.scrollHeight;
}

function actionButton(action, label, job) {
  const button = el('button', `button-quiet action-${action}`, label);
  button.type = 'button';
  button.dataset.action = action;
  button.setAttribute('aria-label', `${label} ${kindName(job)} ${job.id.slice(0, 8)}`);
  return button;
}

function updateRow(row, job) {
  row.className = `job job--${job.status}${TERMINAL.has(job.status) ? ' job--terminal' : ''}${job.parent ? ' item' : ''}`;
  row.querySelector('.job-kind').textContent = job.parent ? job.name : kindName(job);
  const badge = row.querySelector('.badge');
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  updateBar(row, job);
  row.querySelector('.job-message').textContent = detailText(job);
  const error = row.querySelector('.job-error');
  error.textContent = errorText(job);
  error.hidden = !error.textContent;
  updateResult(row.querySelector('.job-result'), job);
  row.querySelector('.elapsed-value').textContent = elapsedText(job);
  if (job.parent || watching) return;
  row.hidden = !isShown(job);
  const cancel = row.querySelector('.action-cancel');
  const cancelFocused = document.activeElement === cancel;
  cancel.hidden = TERMINAL.has(job.status);
  row.querySelector('.action-retry').hidden = !['failed', 'canceled', 'stopped'].includes(job.status);
  // An ended job's output is not sent again: the page loads it when asked (after a reload).
  row.querySelector('.action-output').hidden =
    !(TERMINAL.has(job.status) && job.has_output && !outputs.get(job.id)?.text);
  if (cancelFocused && cancel.hidden) rowFocus(row).focus();
}

/** A finished job's result: a link to what it made, or its summary in words. */
function updateResult(node, job) {
  const result = job.status === 'finished' ? job.result : null;
  const link = typeof result?.link === 'string' && result.link.startsWith('/') ? result.link : null;
  const text = resultText(job, result);
  node.hidden = !link && !text;
  if (node.dataset.shown === `${link}|${text}`) return;
  node.dataset.shown = `${link}|${text}`;
  node.replaceChildren();
  if (text) node.append(text);
  if (link) {
    const anchor = el('a', 'result-link', linkLabel(job));
    anchor.href = link;
    node.append(text ? ' · ' : '', anchor);
  }
}

function resultText(job, result) {
  if (!result || typeof result !== 'object') return '';
  if (typeof result.summary === 'string') return result.summary;
  if (typeof result.imported === 'number') {
    return `${result.imported} imported${result.bad ? `, ${result.bad} bad rows skipped` : ''}`;
  }
  if (Array.isArray(result.finished)) return `${result.finished.length} done`;
  return '';
}

function linkLabel(job) {
  if (job.kind === 'import_contacts') return 'View contacts';
  if (job.kind.startsWith('generate_profile')) return 'Open profile';
  return 'Open result';
}

function updateBar(row, job) {
  const bar = row.querySelector('.bar');
  const percent = percentOf(job);
  const working = percent === null && job.status === 'started';
  bar.classList.toggle('indeterminate', working);
  bar.firstElementChild.style.width = percent === null ? '' : `${percent}%`;
  if (percent === null) bar.removeAttribute('aria-valuenow');
  else bar.setAttribute('aria-valuenow', String(Math.floor(percent)));
  bar.setAttribute('aria-valuetext', valueText(job, percent, working));
  bar.setAttribute('aria-label', `${kindName(job)} ${job.id.slice(0, 8)} progress`);
  row.querySelector('.job-percent').textContent =
    percent === null ? (working ? 'working…' : '') : `${Math.floor(percent)}%`;
}

/** 0–100, or null when indeterminate. A finished job is always full. */
function percentOf(job) {
  if (job.status === 'finished') return 100;
  const percent = job.progress?.percent;
  return typeof percent === 'number' ? Math.min(100, Math.max(0, percent)) : null;
}

function valueText(job, percent, working) {
  const { done, total, message } = job.progress ?? {};
  const detail = message || (done != null && total != null ? `step ${done} of ${total}` : '');
  const head = percent !== null ? `${Math.floor(percent)}%` : (working ? 'working…' : job.status);
  return detail ? `${head} — ${detail}` : head;
}

/** The message, with the time left while running, the place in line while queued,
 * or the wait before a retry. */
function detailText(job) {
  const message = job.progress?.message ?? '';
  const place = job.status === 'queued' ? places.get(job.id) : null;
  if (place) return placeText(place);
  const eta = job.status === 'started' ? job.progress?.eta_seconds : null;
  if (typeof eta === 'number') return `${message}${message ? ' · ' : ''}about ${Math.ceil(eta)} s left`;
  if (job.retry) {
    const wait = job.retry.at ? Math.max(0, Math.ceil((parseTime(job.retry.at) - Date.now()) / 1000)) : 0;
    const when = wait ? `retrying in ${wait} s` : 'retrying';
    return `${when} (attempt ${job.retry.attempt} of ${job.retry.of})`;
  }
  return message;
}

function errorText(job) {
  if (job.status === 'failed') return job.error ?? 'failed without an error message';
  if (job.status === 'skipped') return job.error ?? 'skipped';
  if (job.retry && job.error) return `last error: ${job.error}`;
  return '';
}

function elapsedText(job) {
  if (!job.started_at) return '';
  const end = job.ended_at ? parseTime(job.ended_at) : Date.now();
  const seconds = Math.max(0, end - parseTime(job.started_at)) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
}

/** Date.parse of an ISO time, trimmed to milliseconds (some engines reject microseconds). */
function parseTime(iso) {
  return Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));
}

/** Refreshes the elapsed time of running rows, and the countdown of waiting retries. */
function tickElapsed() {
  if (document.hidden) return;
  for (const row of $('jobs').querySelectorAll('.job--started, .job--scheduled')) {
    const job = jobs.get(row.dataset.jobId);
    if (!job) continue;
    row.querySelector('.elapsed-value').textContent = elapsedText(job);
    if (job.retry) row.querySelector('.job-message').textContent = detailText(job);
  }
}

function updateEmpty() {
  $('empty').hidden = [...jobs.values()].some((job) => !job.parent);
  updateListTools();
}

/** A name for people: "Simulated process" for process_run; a piece's own label. */
function kindName(job) {
  return kindNames[job.kind] ?? job.kind;
}

// ---------------------------------------------------------------- messages

/** Screen-reader announcement of a terminal state (never of percent updates). */
function announce(job) {
  const outcome = job.status === 'failed' ? `failed: ${job.error ?? 'unknown error'}` : job.status;
  const region = $('announcer');
  region.append(el('p', '', `${kindName(job)} ${job.id.slice(0, 8)} ${outcome}`));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

/** A job that ended while the tab was hidden: counted in the title ("(2) myapp"), and
 * a notification when the user allowed them. Seeing the tab again clears the count. */
function noteIfHidden(job) {
  if (!document.hidden) return;
  unseen += 1;
  document.title = `(${unseen}) ${baseTitle}`;
  if (globalThis.Notification?.permission === 'granted') {
    new Notification(`${kindName(job)} ${job.status}`, { body: errorText(job), tag: job.id });
  }
}

function onVisible() {
  if (document.hidden) return;
  unseen = 0;
  document.title = baseTitle;
}

/** The "Notify me" button, offered while the user has not answered the browser's question. */
function offerNotifications() {
  const button = $('notify');
  button.hidden = globalThis.Notification?.permission !== 'default';
  button.addEventListener('click', async () => {
    await Notification.requestPermission();
    button.hidden = true;
  });
}

function showAlert(message) {
  $('alert').textContent = message;
}

function setConnection(state) {
  const labels = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    polling: 'reconnecting… (polling)',
    ended: 'ended',
  };
  const indicator = $('connection');
  indicator.textContent = labels[state];
  indicator.dataset.state = state;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- start-up

function init() {
  if (!$('jobs')) return; // the sign-in view has no dashboard
  const dashboard = $('dashboard');
  kindNames = parseJson(dashboard.dataset.kindNames) ?? {};
  baseTitle = document.title;
  $('jobs').addEventListener('click', onRowAction);
  setInterval(tickElapsed, 1000);
  if (dashboard.dataset.stream) {
    watching = dashboard.dataset.stream;
    expanded.add(dashboard.dataset.job); // its pieces, shown at once
    setConnection('connecting');
    connect(watching);
    return;
  }
  document.addEventListener('visibilitychange', onVisible);
  offerNotifications();
  $('filter').addEventListener('change', setFilter);
  $('load-older').addEventListener('click', loadOlder);
  $('start-processes').addEventListener('click', startProcesses);
  document.querySelectorAll('button[data-kind]').forEach((b) => b.addEventListener('click', startKind));
  $('import-form')?.addEventListener('submit', importContacts);
  setConnection('connecting');
  connect();
}

if (globalThis.document) init();
