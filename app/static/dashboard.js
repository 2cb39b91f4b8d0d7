// kappa's live dashboard. It polls /api/status and /api/sink, draws what the worker says,
// and keeps a few minutes of history in the page for the charts (uPlot). Nothing is computed here
// that the status does not hold, except rates over the interval between two polls.
// Text from the worker (keys, reasons, details) is only ever set as textContent.
"use strict";

// How often to ask the worker: ?poll_ms=500 in the page's address, 250 ms to a minute.
const POLL_MS = Math.min(60000, Math.max(250, Number(new URLSearchParams(location.search).get("poll_ms")) || 2000));
const KEEP = 300; // points per chart: ten minutes at the default of one poll every two seconds
const LISTED = 8; // latest dead letters and late events shown
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const NONE = "—";

const $ = (id) => document.getElementById(id);

function known(value) {
  return value !== null && value !== undefined;
}

function iso(ms) {
  return known(ms) ? new Date(ms).toISOString() : NONE;
}

function num(value) {
  return known(value) ? Math.round(value).toLocaleString("en-US") : NONE;
}

// A duration for people: 45 s, 12 min, 3.5 h, 2.1 d, 1.3 y.
function span(seconds) {
  if (!known(seconds) || !isFinite(seconds)) return NONE;
  const sign = seconds < 0 ? "-" : "";
  const abs = Math.abs(seconds);
  const units = [[31557600, "y"], [86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  for (const [size, unit] of units) {
    if (abs >= size) {
      const n = abs / size;
      return `${sign}${n.toFixed(n < 10 ? 1 : 0)} ${unit}`;
    }
  }
  return `${sign}${abs.toFixed(1)} s`;
}

// Axis labels for durations: one unit for the whole axis, with the decimals that tell
// neighbouring ticks apart (a replay's watermark is years behind, by changing seconds).
function spanTicks(ticks) {
  const largest = Math.max(...ticks.map(Math.abs));
  const units = [[31557600, "y"], [86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  const [size, unit] = units.find(([s]) => largest >= s) || [1, "s"];
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) / size : 1;
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step))));
  return ticks.map((t) => `${(t / size).toFixed(decimals)} ${unit}`);
}

function utcTime(ticks) {
  return ticks.map((t) => new Date(t * 1000).toISOString().slice(11, 19));
}

function bytes(n) {
  if (!known(n)) return NONE;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function setText(id, text) {
  $(id).textContent = text;
}

function td(text, field) {
  const cell = document.createElement("td");
  cell.textContent = text;
  if (field) cell.dataset.field = field;
  return cell;
}

function tr(cells, data = {}) {
  const row = document.createElement("tr");
  Object.assign(row.dataset, data);
  row.append(...cells);
  return row;
}

function fillTable(id, rows, empty) {
  const body = $(id).querySelector("tbody");
  if (!rows.length) {
    const cell = td(empty);
    cell.colSpan = $(id).querySelectorAll("thead th").length;
    cell.className = "empty";
    rows = [tr([cell])];
  }
  body.replaceChildren(...rows);
}

// --- charts ----------------------------------------------------------------------

function makeChart(element, labels, ticks) {
  const options = {
    width: Math.max(element.clientWidth, 300),
    height: 190,
    scales: { x: { time: true } },
    legend: { live: false },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [
      { values: (u, t) => utcTime(t) }, // UTC, as every time on the page
      { size: 96, values: (u, t) => ticks(t) },
    ],
  };
  const chart = new uPlot(options, [[], ...labels.map(() => [])], element);
  chart.kappaElement = element;
  return chart;
}

const history = { times: [], throughput: [], lag: [], behind: [] };
let charts = null;
let previous = null;

// A line per input partition for the lag, per state partition for the watermark: the
// input's count when the page opened (a reload draws partitions the input grew by since).
function ensureCharts(status) {
  if (charts) return;
  const named = (partitions) => partitions.map((p) => `partition ${p}`);
  const inputs = named(inputPartitions(status));
  const states = named(Array.from({ length: status.partitions }, (_, p) => p));
  history.lag = inputs.map(() => []);
  history.behind = states.map(() => []);
  charts = {
    throughput: makeChart($("chart-throughput"), ["events/s"], (t) => t.map(num)),
    lag: makeChart($("chart-lag"), inputs, (t) => t.map(num)),
    behind: makeChart($("chart-watermark"), states, spanTicks),
  };
  window.addEventListener("resize", () => {
    for (const chart of Object.values(charts)) {
      chart.setSize({ width: Math.max(chart.kappaElement.clientWidth, 300), height: 190 });
    }
  });
}

function record(status, now) {
  const events = status.counts.events_since_start;
  let rate = null;
  if (previous && now > previous.at && events >= previous.events) {
    rate = (events - previous.events) / ((now - previous.at) / 1000);
  }
  previous = { at: now, events };
  history.times.push(now / 1000);
  history.throughput.push(rate);
  history.lag.forEach((series, p) => series.push(known(status.lag[p]) ? status.lag[p] : null));
  history.behind.forEach((series, p) => {
    const watermark = status.watermarks[p];
    series.push(known(watermark) ? (now - watermark) / 1000 : null);
  });
  if (history.times.length > KEEP) {
    history.times.shift();
    history.throughput.shift();
    for (const series of [...history.lag, ...history.behind]) series.shift();
  }
  charts.throughput.setData([history.times, history.throughput]);
  charts.lag.setData([history.times, ...history.lag]);
  charts.behind.setData([history.times, ...history.behind]);
  return rate;
}

// --- the status ------------------------------------------------------------------

function health(status) {
  const recovery = status.recovery;
  if (recovery.in_progress) {
    const eta = known(recovery.eta_s) ? `, ETA ${span(recovery.eta_s)}` : "";
    return ["warn", `recovering: ${num(recovery.remaining_records)} changelog records left${eta}`];
  }
  if (status.rebalancing) return ["warn", "rebalancing"];
  if (!status.kafka_answered) return ["warn", "Kafka did not answer in time: offsets and lag are missing"];
  return ["ok", "running"];
}

function setHealth(kind, text) {
  const badge = $("health");
  badge.className = `badge ${kind}`;
  badge.textContent = text;
}

function ownerOf(status, partition) {
  for (const [url, partitions] of Object.entries(status.owners)) {
    if (partitions.includes(partition)) return url;
  }
  return NONE;
}

// The input's partitions: the version's N, and any the input grew by since.
function inputPartitions(status) {
  const grown = Object.keys(status.end_offsets).map(Number);
  const count = Math.max(status.partitions, ...grown.map((p) => p + 1));
  return Array.from({ length: count }, (_, p) => p);
}

function renderPartitions(status) {
  const input = inputPartitions(status);
  // Input partition p is assigned with state partition p only while the input has N.
  const coPartitioned = input.length === status.partitions;
  const rows = input.map((p) =>
    tr(
      [
        td(String(p), "partition"),
        td(
          status.partitions_owned.includes(p) ? status.url : coPartitioned ? ownerOf(status, p) : NONE,
          "owner",
        ),
        td(num(status.processed_offsets[p]), "processed"),
        td(num(status.end_offsets[p]), "end"),
        td(num(status.lag[p]), "lag"),
      ],
      { partition: String(p) },
    ),
  );
  fillTable("partitions", rows, "no partitions");
}

function renderStates(status, now) {
  const hop = status.hop;
  const rows = [];
  for (let p = 0; p < status.partitions; p += 1) {
    const watermark = status.watermarks[p];
    const state = status.state[p] || {};
    rows.push(
      tr(
        [
          td(String(p), "partition"),
          td(ownerOf(status, p), "owner"),
          td(num(hop.processed_offsets[p]), "hop-processed"),
          td(num(hop.end_offsets[p]), "hop-end"),
          td(num(hop.lag[p]), "hop-lag"),
          td(iso(watermark), "watermark"),
          td(iso(status.newest_event_times[p]), "newest"),
          td(known(watermark) ? span((now - watermark) / 1000) : NONE, "behind"),
          td(num(state.keys), "keys"),
          td(num(state.open_windows), "open-windows"),
        ],
        { partition: String(p) },
      ),
    );
  }
  fillTable("state-partitions", rows, "no partitions");
}

function renderRejects(status) {
  const reasons = Object.entries(status.counts.dead_letters_by_reason_since_start).map(([reason, n]) =>
    tr([td(reason, "reason"), td(num(n), "count")], { reason }),
  );
  fillTable("dead-letter-reasons", reasons, "none since the worker started");
  const dead = status.latest_dead_letters.slice(-LISTED).reverse().map((d) =>
    tr([
      td(iso(d.at * 1000), "at"),
      td(d.reason, "reason"),
      td(d.detail, "detail"),
      td(`${d.source.topic}:${d.source.partition}:${d.source.offset}`, "source"),
    ]),
  );
  fillTable("latest-dead-letters", dead, "none since the worker started");
  const late = status.latest_late_events.slice(-LISTED).reverse().map((e) =>
    tr([td(iso(e.at * 1000), "at"), td(e.key, "key"), td(iso(e.event_ms)), td(iso(e.watermark_ms))]),
  );
  fillTable("latest-late", late, "none since the worker started");
}

function replayProgress(replay) {
  if (replay.state === "running") {
    if (known(replay.bytes_total) && replay.bytes_total > 0) {
      const pct = (100 * replay.bytes_read) / replay.bytes_total;
      return `${pct.toFixed(1)}% of ${bytes(replay.bytes_total)} read`;
    }
    return "producing";
  }
  if (replay.state !== "complete") return replay.state;
  if (replay.processed_by_this_worker) return "processed by this worker";
  const behind = Object.values(replay.records_behind).reduce((a, b) => a + b, 0);
  return `produced; ${num(behind)} records for this worker to process`;
}

function replayEta(replay, rate, now) {
  let seconds = null;
  if (replay.state === "running") {
    seconds = replay.eta_s;
  } else if (replay.state === "complete" && !replay.processed_by_this_worker && rate > 0) {
    seconds = Object.values(replay.records_behind).reduce((a, b) => a + b, 0) / rate;
  }
  return known(seconds) ? `${iso(now + seconds * 1000)} (in ${span(seconds)})` : NONE;
}

function renderReplays(status, rate, now) {
  const rows = status.replays.map((replay) =>
    tr(
      [
        td(replay.id, "id"),
        td(replay.state, "state"),
        td((replay.files || []).map((f) => f.split("/").pop()).join(", ")),
        td(num(replay.produced), "produced"),
        td(num(replay.bad_rows), "bad-rows"),
        td(replayProgress(replay), "progress"),
        td(known(replay.rows_per_second) ? `${num(replay.rows_per_second)} rows/s` : NONE, "rate"),
        td(replayEta(replay, rate, now), "eta"),
        td(replay.updated_at ? iso(Date.parse(replay.updated_at)) : NONE),
      ],
      { replay: replay.id },
    ),
  );
  fillTable("replays", rows, "no replays of this pipeline version yet");
}

function renderOwners(status) {
  const rows = Object.entries(status.owners)
    .sort()
    .map(([url, partitions]) => tr([td(url, "worker"), td(partitions.join(", "), "partitions")]));
  fillTable("owners", rows, "no assignment yet (a rebalance is under way)");
}

function renderRecovery(status) {
  const recovery = status.recovery;
  const standby = `${num(recovery.standby_remaining_records)} standby records left`;
  setText(
    "recovery",
    recovery.in_progress
      ? `rebuilding tables from their changelogs: ${num(recovery.remaining_records)} records left; ${standby}`
      : `not recovering; ${standby}`,
  );
}

function render(status, now) {
  ensureCharts(status);
  const rate = record(status, now);
  const { name, version } = status.pipeline;
  sessionWindows = status.pipeline.sessions || [];
  setText("pipeline-name", name);
  setText("pipeline-version", String(version));
  setText("version-name", name);
  setText("version-number", String(version));
  document.title = `kappa: ${name} v${version}`;
  setText("worker", status.worker);
  setText("worker-url", status.url);
  setText("started-at", iso(now - status.uptime_s * 1000));
  setText("updated-at", iso(now));
  const [kind, text] = health(status);
  setHealth(kind, text);

  const counts = status.counts;
  setText("events-processed", num(counts.events_since_start));
  setText("throughput", num(rate));
  const lags = Object.values(status.lag);
  setText("total-lag", lags.length ? num(lags.reduce((a, b) => a + b, 0)) : NONE);
  const hopLags = Object.values(status.hop.lag);
  setText("hop-lag", hopLags.length ? num(hopLags.reduce((a, b) => a + b, 0)) : NONE);
  setText("hop-sent", num(status.hop.records_sent_since_start));
  setText("late-events", num(counts.late_events));
  setText("late-since-start", num(counts.late_since_start));
  setText("dead-letters", num(counts.dead_letters));
  setText("dead-letters-since-start", num(counts.dead_letters_since_start));
  setText("duplicates", num(counts.duplicates_skipped_since_start));
  setText("filtered", num(counts.filtered_since_start));
  setText("window-results", num(counts.window_results_since_start));
  setText("gap-records", num(counts.gap_records_read_back_since_start));

  renderPartitions(status);
  renderStates(status, now);
  renderRejects(status);
  renderReplays(status, rate, now);
  renderOwners(status);
  renderRecovery(status);
}

async function poll() {
  try {
    const response = await fetch("/api/status", { signal: AbortSignal.timeout(3 * POLL_MS) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json(), Date.now());
  } catch (error) {
    setHealth("error", `the worker did not answer (${error.message}); retrying`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// --- the PostgreSQL sink ---------------------------------------------------------

// The sink's survey opens a PostgreSQL connection, so it is asked less often than the status.
const SINK_POLL_MS = Math.max(POLL_MS, 5000);

function renderSink(sink) {
  if (sink.state === "none") {
    setText("sink-state", "no sink: no PostgreSQL views for this pipeline");
  } else if (sink.state === "unreachable") {
    setText("sink-state", `PostgreSQL does not answer (${sink.error}); checked ${sink.checked_at}`);
  } else {
    setText("sink-state", `PostgreSQL answers; the views show version ${sink.views_version}; checked ${sink.checked_at}`);
  }
  fillTable("sink-versions", sink.versions.map((v) => tr([
    td(`v${v.version}`, "version"),
    td(v.views ? "yes" : "no", "views"),
    td(v.started ? num(v.lag_total) : "not started", "lag"),
  ], { version: v.version })), NONE);
}

async function pollSink() {
  try {
    const response = await fetch("/api/sink", { signal: AbortSignal.timeout(3 * SINK_POLL_MS) });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    renderSink(body);
  } catch (error) {
    setText("sink-state", `the sink's state could not be read (${error.message}); retrying`);
  } finally {
    setTimeout(pollSink, SINK_POLL_MS);
  }
}

// --- key lookup ------------------------------------------------------------------

// The pipeline's session windows, from the latest status: a key lookup lists its sessions.
let sessionWindows = [];

function renderKey(key, status, body) {
  const out = $("key-result");
  if (status !== 200) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = body && body.error ? body.error : `HTTP ${status}`;
    out.replaceChildren(error);
    return;
  }
  const totals = body.totals;
  const summary = document.createElement("p");
  summary.append(`${key}: `);
  const count = document.createElement("strong");
  count.id = "key-count";
  count.textContent = num(totals.count);
  summary.append(count, ` events, last offset ${num(body.last_offset)}`);
  const table = document.createElement("table");
  const values = Object.entries(totals.values || {});
  const metrics = values.length ? Object.keys(values[0][1]) : [];
  const head = tr([td("value"), ...metrics.map((m) => td(m))]);
  head.className = "head";
  table.append(
    head,
    ...values.map(([name, agg]) =>
      tr([td(name), ...metrics.map((m) => td(known(agg[m]) ? String(agg[m]) : "null"))], {
        value: name,
      }),
    ),
  );
  out.replaceChildren(summary, table);
}

// A key's sessions of every session window, open and closed (retained), oldest first.
async function renderSessions(key) {
  const rows = [];
  for (const name of sessionWindows) {
    const path = `/api/keys/${encodeURIComponent(key)}/windows?window=${encodeURIComponent(name)}`;
    const response = await fetch(path, { signal: AbortSignal.timeout(10000) });
    const body = await response.json();
    if (response.status !== 200) {
      rows.push(tr([td(name), td(body.error || `HTTP ${response.status}`)]));
      continue;
    }
    for (const session of body.windows) {
      rows.push(
        tr(
          [
            td(name, "window"),
            td(session.start, "start"),
            td(session.end, "end"),
            td(session.final ? "final" : "open", "state"),
            td(num(session.count), "count"),
          ],
          { start: String(session.start_ms) },
        ),
      );
    }
  }
  const table = document.createElement("table");
  table.id = "key-sessions";
  const head = tr(["session", "start", "end (exclusive)", "state", "events"].map((h) => td(h)));
  head.className = "head";
  table.append(head, ...rows);
  $("key-result").append(table);
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  try {
    const response = await fetch(`/api/keys/${encodeURIComponent(key)}`, {
      signal: AbortSignal.timeout(10000),
    });
    renderKey(key, response.status, await response.json());
    if (response.ok && sessionWindows.length) await renderSessions(key);
  } catch (error) {
    renderKey(key, 0, { error: `the worker did not answer (${error.message})` });
  }
});

poll();
pollSink();
