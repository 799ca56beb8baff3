// Conveyor dashboard: polls the JSON routes every 2 s and renders them. It has no
// data of its own: the throughput chart is the server's per-minute history
// (`/queues/history`), the "Done / min" figures the difference of `succeeded`
// counts between polls.
"use strict";

(() => {
  const POLL_MS = 2000;
  const FEATURES_EVERY = 5; // polls between refreshes of the feature cards
  const SAMPLES_MS = 60 * 1000; // polls' counts kept for the "now" rates
  const RATE_WINDOW_MS = 30 * 1000; // "now" rates are averaged over this
  const CHART_MINUTES = 60; // the throughput chart's span, from /queues/history
  const CHART_EVERY_MS = 15 * 1000; // the history changes by the minute: fetched this often
  const RUNNING_LIMIT = 200;
  const TOKEN_KEY = "conveyor.adminToken";
  const RETRYABLE = new Set(["failed", "dead"]);
  const CANCELLABLE = new Set(["queued", "failed"]);
  const ABORTABLE = new Set(["running"]); // queued or failed ones are cancelled instead

  const view = {
    samples: [], // {t, total, byQueue} per successful /queues poll
    history: null, // the last answer of /queues/history: {ok, status, data, message}
    historyAt: 0, // when it was asked for (ms)
    historyMinutes: CHART_MINUTES, // null once the server said it keeps fewer
    filter: { status: "", queue: "", kind: "", id: "", limit: 20 },
    cursors: [null], // `before` of each page visited; the last one is shown
    nextBefore: null,
    selected: null, // id of the job in the detail panel
    revealDetail: false, // scroll to the panel after the next render (one column)
    listed: false, // whether the server let the page read the jobs list, last poll
    shown: new Map(), // region -> JSON last rendered, so unchanged DOM is left alone
    polls: 0,
    ads: null, // {scope, key} once looked up
    reportsServer: "",
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(node, attrs);
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "style") throw new Error("inline styles are refused by the page's CSP: use a class");
      else node.setAttribute(name === "className" ? "class" : name, value === true ? "" : String(value));
    }
  }

  // Replaces a region's content only when its data changed (keeps clicks and focus).
  function renderOnce(region, data, build) {
    const key = JSON.stringify(data);
    if (view.shown.get(region) === key) return;
    view.shown.set(region, key);
    build();
  }

  // Changes a text only when it differs, so that an unchanged node is left alone.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // Puts `rows` into `body` in this order. A node taken out of the document loses the
  // keyboard focus, so rows that stay are never taken out: the others are removed
  // first, then the new ones inserted where they belong.
  function placeRows(body, rows) {
    const wanted = new Set(rows);
    for (const row of [...body.children]) if (!wanted.has(row)) row.remove();
    rows.forEach((row, i) => {
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
  }

  // The row saying a table is empty; the one shown already, if any.
  function emptyRow(body, columns, text) {
    const shown = body.querySelector("tr.empty");
    if (shown && shown.textContent === text) return shown;
    return h("tr", { className: "empty" }, h("td", { colspan: columns }, text));
  }

  function badge(status) {
    return h("span", { className: "badge", "data-status": status }, status);
  }

  function message(text, tone) {
    return h("p", { className: `message ${tone || "muted"}` }, text);
  }

  function showError(id, text) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  // ---------------------------------------------------------------- formatting

  const number = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");

  function time(iso) {
    if (!iso) return "–";
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) return iso;
    const today = new Date().toDateString() === at.toDateString();
    const clock = at.toLocaleTimeString("en-GB", { hour12: false });
    if (today) return clock;
    return `${at.toISOString().slice(0, 10)} ${clock.slice(0, 5)}`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${ms} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours} h ${m % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  // A coarse span for people: "42 s", "3 min", "2 h 5 min", "3 d 4 h".
  function span(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours} h ${m % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function relative(iso) {
    if (!iso) return "";
    const ms = new Date(iso).getTime() - Date.now();
    if (Number.isNaN(ms)) return "";
    return ms >= 0 ? `in ${span(ms)}` : `${span(-ms)} ago`;
  }

  // A relative time that keeps ticking: the instant stays on the node, and
  // `tickRelative` rewrites the text each second. A region that did not change is not
  // rebuilt (see `renderOnce`), so without this "3 s ago" would stay 3 s.
  function ago(iso) {
    return h("span", { "data-at": iso }, relative(iso));
  }

  function tickRelative() {
    for (const node of document.querySelectorAll("[data-at]")) setText(node, relative(node.dataset.at));
  }

  // The tail of a ULID (its random part) tells jobs apart; the head is their time.
  const shortId = (id) => (id && id.length > 8 ? `…${id.slice(-8)}` : id || "");

  // ---------------------------------------------------------------- HTTP

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  // Every call resolves (never throws): {ok, status, data, message}.
  async function call(method, path, body) {
    const headers = { accept: "application/json" };
    const bearer = token().trim();
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      return { ok: false, status: 0, data: null, message: `cannot reach the server (${err.message})` };
    }
    const text = await response.text().catch(() => "");
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    return {
      ok: response.ok,
      status: response.status,
      data,
      message: response.ok ? "" : errorText(response.status, data, text),
    };
  }

  // The JSON error's message: {"error", "message"} on the system routes,
  // {"success": false, "message"} on the ad routes, {"error"} on the report routes.
  function errorText(status, data, text) {
    if (data && typeof data === "object") {
      if (typeof data.message === "string" && data.message) return data.message;
      if (typeof data.error === "string" && data.error) return data.error;
    }
    const body = (text || "").trim().slice(0, 200);
    return body ? `HTTP ${status}: ${body}` : `HTTP ${status}`;
  }

  const query = (params) => {
    const pairs = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined);
    return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
  };

  // ---------------------------------------------------------------- flash messages

  let flashTimer = null;

  function flash(text, kind) {
    const box = $("action-message");
    $("action-text").textContent = text;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(flashTimer);
    // Errors stay until dismissed: the operator has to read them.
    if (kind !== "error") flashTimer = setTimeout(() => (box.hidden = true), 5000);
  }

  // ---------------------------------------------------------------- access

  // What the token in the page may do, from `GET /access`: `open` (the server has no
  // ADMIN_TOKEN), `admin` or `read`; `none` when the server refuses the token. It is
  // kept on <body data-access>: the buttons that change something show for `open` and
  // `admin` only (app.css), since the server refuses a read-only token's changes. A
  // failed call keeps what was known.
  async function loadAccess() {
    const answer = await call("GET", "/access");
    if (answer.ok && answer.data && typeof answer.data.access === "string") {
      document.body.dataset.access = answer.data.access;
    } else if (answer.status === 401) {
      document.body.dataset.access = "none";
    }
    $("token-access").hidden = document.body.dataset.access !== "read";
  }

  // ---------------------------------------------------------------- overview

  async function loadOverview() {
    const [queues, running] = await Promise.all([
      call("GET", "/queues"),
      call("GET", `/jobs${query({ status: "running", limit: RUNNING_LIMIT })}`),
    ]);
    const live = $("live");
    if (queues.ok && Array.isArray(queues.data)) {
      live.dataset.state = "live";
      live.textContent = `live · ${time(new Date().toISOString())}`;
      showError("queues-error", "");
      record(queues.data);
      renderQueues(queues.data);
      queueOptions(queues.data.map((q) => q.queue));
      addOptions($("kinds"), queues.data.flatMap((q) => q.kinds || []).sort());
    } else {
      live.dataset.state = "down";
      live.textContent = queues.status === 0 ? "offline" : `degraded (${queues.status})`;
      showError("queues-error", queues.message || "unexpected answer from /queues");
    }
    renderWorkers(queues.ok ? queues.data : null, running);
  }

  function record(queues) {
    const now = Date.now();
    const byQueue = {};
    let total = 0;
    for (const q of queues) {
      byQueue[q.queue] = q.succeeded;
      total += q.succeeded;
    }
    view.samples.push({ t: now, total, byQueue });
    while (view.samples.length > 2 && view.samples[0].t < now - SAMPLES_MS) view.samples.shift();
  }

  // Succeeded jobs per minute between sample `i` and the oldest sample at most
  // `windowMs` older (at least the one before it), for one queue or all.
  function rateAt(i, windowMs, queue) {
    if (i < 1) return null;
    let j = i - 1;
    while (j > 0 && view.samples[j - 1].t >= view.samples[i].t - windowMs) j -= 1;
    const a = view.samples[j];
    const b = view.samples[i];
    const before = queue ? a.byQueue[queue] : a.total;
    const after = queue ? b.byQueue[queue] : b.total;
    if (before === undefined || after === undefined || b.t <= a.t) return null;
    return (Math.max(0, after - before) * 60000) / (b.t - a.t);
  }

  // The current rate: over the last 30 s of samples.
  const perMinute = (queue) => rateAt(view.samples.length - 1, RATE_WINDOW_MS, queue);

  // A share from 0 to 1 (`failure_rate`), or null when there was nothing to count.
  const percent = (share) => (typeof share !== "number" ? "–" : share === 0 ? "0 %" : `${(100 * share).toFixed(1)} %`);

  const rateText = (rate) => (rate === null ? "–" : rate < 10 ? `${+rate.toFixed(1)}` : `${Math.round(rate)}`);

  function renderQueues(queues) {
    const sum = (field) => queues.reduce((acc, q) => acc + (q[field] || 0), 0);
    const workers = new Set(queues.flatMap((q) => q.workers || []));
    const rate = perMinute(null);
    const tiles = [
      ["Queued", sum("queued"), ""],
      ["Running", sum("running"), ""],
      ["Retrying", sum("failed"), sum("failed") ? "warn" : ""],
      ["Dead", sum("dead"), sum("dead") ? "bad" : ""],
      ["Workers", workers.size, workers.size ? "" : "warn"],
      ["Done / min", rateText(rate), ""],
    ];
    $("summary").replaceChildren(
      ...tiles.map(([label, value, tone]) =>
        h("div", { className: "stat", "data-tone": tone || null },
          h("div", { className: "label" }, label),
          h("div", { className: "value" }, typeof value === "number" ? number(value) : value)),
      ),
    );
    const body = $("queues-body");
    const kept = new Map([...body.querySelectorAll("tr[data-queue]")].map((row) => [row.dataset.queue, row]));
    const rows = queues.map((q) => {
      const row = kept.get(q.queue) || queueRow(q.queue);
      fillQueueRow(row, q);
      return row;
    });
    placeRows(body, rows.length ? rows : [emptyRow(body, 12, "no queues")]);
  }

  // The queues table's columns after the name: the field of /queues each shows, its
  // value and text; `opens` makes the count a button listing those jobs, `narrow`
  // columns fold away on a phone.
  const QUEUE_COLUMNS = [
    ...["queued", "running", "succeeded", "failed", "dead"].map((field) =>
      ({ field, opens: true, value: (q) => q[field] || 0, text: number })),
    { field: "cancelled", narrow: true, value: (q) => q.cancelled, text: number },
    { field: "depth", value: (q) => q.depth, text: number },
    {
      field: "latency", narrow: true, value: (q) => q.latency_ms, text: (ms) => (ms ? duration(ms) : "–"),
      title: "how long the oldest queued job has waited",
    },
    {
      field: "failure_rate", narrow: true, value: (q) => q.failure_rate, text: percent,
      title: "failed attempts / (succeeded jobs + failed attempts) over FAILURE_RATE_MINUTES (an hour by default); – when none",
    },
    { field: "workers", value: (q) => (q.workers || []).length, text: String },
    { field: "rate", narrow: true, value: (q) => perMinute(q.queue), text: rateText },
  ];

  // A queue's row, made once and then filled on every poll (`fillQueueRow`): a row
  // rebuilt every 2 s would take the keyboard focus from its buttons.
  function queueRow(name) {
    return h("tr", { "data-queue": name },
      h("td", { className: "queue-name" }, h("b", {}, name),
        h("button", {
          type: "button", className: "small",
          onclick: (e) => setPaused(name, e.currentTarget.dataset.action),
        })),
      QUEUE_COLUMNS.map((column) => h("td", { "data-field": column.field, title: column.title },
        column.opens && h("button", {
          type: "button", className: "count", title: `show ${column.field} jobs`,
          onclick: () => filterBy(column.field, name),
        }))));
  }

  function fillQueueRow(row, q) {
    if (q.paused) row.dataset.paused = "true";
    else delete row.dataset.paused;
    const name = row.cells[0];
    const pause = name.querySelector("button");
    const pausedBadge = name.querySelector(".badge");
    if (q.paused && !pausedBadge) name.insertBefore(badge("paused"), pause);
    if (!q.paused && pausedBadge) pausedBadge.remove();
    pause.dataset.action = q.paused ? "resume" : "pause";
    pause.title = q.paused ? "let workers take this queue's tasks again" : "stop workers taking this queue's tasks";
    setText(pause, q.paused ? "Resume" : "Pause");
    QUEUE_COLUMNS.forEach((column, i) => {
      const cell = row.cells[i + 1];
      const value = column.value(q);
      cell.className = ["num", column.narrow && "hide-sm", !value && "zero"].filter(Boolean).join(" ");
      setText(cell.querySelector("button") || cell, column.text(value));
    });
  }

  // Pausing stops every worker from taking the queue's tasks (running ones finish);
  // jobs keep being accepted and wait until it is resumed.
  async function setPaused(queue, action) {
    if (action === "pause" &&
      !window.confirm(`Pause queue ${queue}? Workers stop taking its tasks; new jobs wait until it is resumed.`)) return;
    const answer = await call("POST", `/queues/${encodeURIComponent(queue)}/${action}`);
    if (answer.ok) {
      flash(`Queue ${queue} ${action === "pause" ? "paused" : "resumed"}.`, "ok");
    } else {
      const what = action === "pause" ? "Pause" : "Resume";
      flash(`${what} of queue ${queue} failed (${answer.status || "network"}): ${answer.message}`, "error");
    }
    refresh();
  }

  // The throughput chart: jobs succeeded and attempts failed per minute over the last
  // CHART_MINUTES, every queue together, as the server stored them (so a reload loses
  // nothing). Asked for every CHART_EVERY_MS, and at each poll while it fails. A
  // server keeping less (THROUGHPUT_HISTORY_MINUTES) refuses the span: then the chart
  // shows all it keeps.
  async function loadHistory() {
    const fresh = view.history && view.history.ok && Date.now() - view.historyAt < CHART_EVERY_MS;
    if (fresh) return;
    view.historyAt = Date.now();
    let answer = await call("GET", `/queues/history${query({ minutes: view.historyMinutes })}`);
    if (answer.status === 400 && view.historyMinutes) {
      view.historyMinutes = null;
      answer = await call("GET", "/queues/history");
    }
    view.history = answer;
    renderThroughput();
  }

  // One point per minute of the answer's window, oldest first, summed over the queues;
  // a minute the server left out (nothing happened) is zero. Null for an odd answer.
  function minuteTotals(data) {
    const from = Date.parse(data && data.from);
    const to = Date.parse(data && data.to);
    if (Number.isNaN(from) || Number.isNaN(to) || to < from || !Array.isArray(data.queues)) return null;
    const count = Math.round((to - from) / 60000) + 1;
    const points = Array.from({ length: count }, (_, i) => ({ t: from + i * 60000, succeeded: 0, failed: 0 }));
    for (const q of data.queues) {
      for (const m of q.minutes || []) {
        const i = Math.round((Date.parse(m.minute) - from) / 60000);
        if (!(i >= 0 && i < count)) continue;
        points[i].succeeded += m.succeeded || 0;
        points[i].failed += m.failed || 0;
      }
    }
    return points;
  }

  function renderThroughput() {
    const answer = view.history;
    if (!answer) return;
    const box = $("throughput");
    const width = Math.max(240, Math.round(box.clientWidth || 600));
    renderOnce("throughput", { data: answer.ok ? answer.data : answer.message, width },
      () => drawThroughput(box, answer, width));
  }

  function drawThroughput(box, answer, width) {
    const summary = $("throughput-summary");
    const points = answer.ok ? minuteTotals(answer.data) : null;
    if (!points) {
      summary.replaceChildren();
      box.replaceChildren(message(`Throughput unavailable: ${answer.message || "unexpected answer"}`, "error"));
      return;
    }
    const total = (field) => number(points.reduce((acc, p) => acc + p[field], 0));
    const during = points.length === 60 ? "the last hour" : `the last ${points.length} min`;
    const succeeded = `${total("succeeded")} succeeded, `;
    const failed = `${total("failed")} failed in ${during}`;
    const said = succeeded + failed;
    summary.replaceChildren(
      h("span", { className: "key succeeded", "aria-hidden": "true" }), succeeded,
      h("span", { className: "key failed", "aria-hidden": "true" }), failed);
    const height = 150;
    const pad = { left: 40, right: 10, top: 10, bottom: 20 };
    const last = Math.max(1, points.length - 1);
    const most = Math.max(...points.map((p) => Math.max(p.succeeded, p.failed)));
    const top = niceCeiling(Math.max(2, most));
    const x = (i) => pad.left + (i / last) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);
    const line = (field) => points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[field]).toFixed(1)}`).join("");
    const base = y(0).toFixed(1);
    const area = `${line("succeeded")}L${x(points.length - 1).toFixed(1)},${base}L${x(0).toFixed(1)},${base}Z`;
    const grid = [0, top / 2, top].map((v) =>
      svg("g", {},
        svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }),
        svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, compact(v))));
    // The window's start, every quarter of an hour back (half an hour when narrow),
    // and the current minute.
    const step = width < 480 ? 30 : 15;
    const label = (at, anchor, text) => svg("text", { x: x(at), y: height - 4, "text-anchor": anchor }, text);
    const labels = [
      label(0, "start", points.length === 60 ? "−1 h" : `−${points.length} min`),
      ...Array.from({ length: Math.max(0, Math.ceil(last / step) - 1) }, (_, i) =>
        label(last - (i + 1) * step, "middle", `−${(i + 1) * step} min`)),
      label(last, "end", "now"),
    ];
    box.replaceChildren(
      svg("svg", {
        viewBox: `0 0 ${width} ${height}`, role: "img",
        "aria-label": `Jobs succeeded and attempts failed per minute, every queue: ${said}; ` +
          `at most ${number(most)} in one minute`,
      },
      svg("g", { class: "grid" }, grid),
      svg("path", { class: "area", d: area }),
      svg("path", { class: "line succeeded", d: line("succeeded") }),
      svg("path", { class: "line failed", d: line("failed") }),
      labels),
    );
  }

  function niceCeiling(v) {
    if (v <= 1) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(v));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= v) return step * magnitude;
    return 10 * magnitude;
  }

  function compact(v) {
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return `${+v.toFixed(1)}`;
  }

  // Rebuilt only when what it shows changes, so that a focused job link keeps the
  // focus across polls.
  function renderWorkers(queues, running) {
    const runningJobs = running.ok && running.data && Array.isArray(running.data.jobs) ? running.data.jobs : [];
    renderOnce("workers", {
      workers: queues && queues.map((q) => [q.queue, q.workers || []]),
      running: runningJobs.map((job) => [job.id, job.worker, job.kind, job.started_at]),
      refused: running.ok ? "" : running.message,
    }, () => drawWorkers(queues, running, runningJobs));
  }

  function drawWorkers(queues, running, runningJobs) {
    const box = $("workers");
    if (!queues) {
      box.replaceChildren(message("unknown: /queues did not answer", "error"));
      $("workers-count").textContent = "";
      return;
    }
    const jobsByWorker = new Map();
    for (const job of runningJobs) {
      const name = job.worker || "";
      if (!jobsByWorker.has(name)) jobsByWorker.set(name, []);
      jobsByWorker.get(name).push(job);
    }
    const alive = new Set();
    const groups = [];
    for (const q of queues) {
      const names = q.workers || [];
      if (!names.length) continue;
      names.forEach((n) => alive.add(n));
      groups.push(h("div", { className: "worker-group", "data-queue": q.queue },
        h("h4", {}, q.queue, " ", h("span", { className: "muted" }, `· ${names.length}`)),
        h("ul", {}, names.map((name) => workerItem(name, jobsByWorker.get(name) || [])))));
    }
    const orphans = runningJobs.filter((job) => !alive.has(job.worker || ""));
    if (orphans.length) {
      groups.push(h("div", { className: "worker-group" },
        h("h4", {}, "running on a worker that stopped heartbeating"),
        h("ul", {}, h("li", {}, h("div", { className: "worker-jobs" }, orphans.map(jobLine))))));
    }
    $("workers-count").textContent = `${alive.size} alive · ${runningJobs.length} jobs running`;
    if (!running.ok) groups.unshift(message(`running jobs unknown: ${running.message}`, "error"));
    box.replaceChildren(...(groups.length ? groups : [message("No worker is alive.", "note")]));
  }

  function workerItem(name, jobs) {
    return h("li", { "data-worker": name },
      h("div", { className: "worker-name" },
        h("span", { className: "mono", title: name }, name),
        jobs.length ? badge("running") : h("span", { className: "muted" }, "idle")),
      jobs.length ? h("div", { className: "worker-jobs" }, jobs.map(jobLine)) : null);
  }

  function jobLine(job) {
    return h("div", {},
      h("a", { href: "#jobs", className: "mono", "data-job-id": job.id, onclick: () => select(job.id) },
        shortId(job.id)),
      ` ${job.kind} · since ${time(job.started_at)}`);
  }

  function filterBy(status, queue) {
    $("filter-status").value = status;
    view.filter.status = status;
    renderBulk();
    queueOptions([queue]);
    $("filter-queue").value = queue;
    view.filter.queue = queue;
    // A count stands for the queue's jobs of that status, whatever their ids.
    $("filter-id").value = "";
    view.filter.id = "";
    resetPages();
    location.hash = "#jobs";
    refresh();
  }

  // The bulk buttons act on what the filters show: every dead job (retry or discard)
  // or every queued one (cancel) of the chosen queue and kind, after a confirmation
  // naming them.
  const BULK = {
    retry: { status: "dead", label: "Retry all dead", verb: "Retry every dead job", done: "enqueued again" },
    discard: { status: "dead", label: "Discard all dead", verb: "Delete every dead job", done: "discarded" },
    cancel: { status: "queued", label: "Cancel all queued", verb: "Cancel every queued job", done: "cancelled" },
  };
  const BULK_BUTTONS = { "bulk-action": ["retry", "cancel"], "bulk-discard": ["discard"] };

  // The action a bulk button stands for under the current status filter, if any.
  function bulkFor(id) {
    return BULK_BUTTONS[id].find((action) => BULK[action].status === view.filter.status);
  }

  // Shown only beside a list that loaded: when the server wants a token the page does
  // not have, there is nothing to act on (and the action would be refused). Not under
  // an id filter either: the bulk routes take a queue and a kind, so the button would
  // act on more jobs than the list shows.
  function renderBulk() {
    for (const id of Object.keys(BULK_BUTTONS)) {
      const action = bulkFor(id);
      $(id).hidden = !action || !view.listed || Boolean(view.filter.id);
      if (action) $(id).textContent = BULK[action].label;
    }
  }

  async function bulkAction(id) {
    const action = bulkFor(id);
    if (!action) return;
    const { verb } = BULK[action];
    const scope = [
      view.filter.queue ? `queue ${view.filter.queue}` : "every queue",
      view.filter.kind ? `kinds matching "${view.filter.kind}"` : "every kind",
    ].join(", ");
    if (!window.confirm(`${verb} of ${scope}?`)) return;
    let done = 0;
    // Each call acts on at most 1000 jobs; repeat while there are more (bounded).
    for (let calls = 0; calls < 20; calls++) {
      const answer = await call("POST", "/jobs/bulk", {
        action, queue: view.filter.queue || undefined, kind: view.filter.kind || undefined,
      });
      if (!answer.ok) {
        flash(`${verb} failed after ${done} (${answer.status || "network"}): ${answer.message}`, "error");
        refresh();
        return;
      }
      done += answer.data.done;
      if (!answer.data.more) break;
    }
    flash(`${done} job${done === 1 ? "" : "s"} ${BULK[action].done}.`, "ok");
    resetPages();
    refresh();
  }

  // The queue filter offers every queue seen, and the kind filter every kind the
  // queues run, each added once (rebuilding them on each poll would lose the focus).
  function addOptions(list, names) {
    const known = new Set([...list.options].map((o) => o.value));
    for (const name of names) {
      if (name && !known.has(name)) {
        list.append(h("option", { value: name }, name));
        known.add(name);
      }
    }
  }

  function queueOptions(names) {
    addOptions($("filter-queue"), names);
  }

  // ---------------------------------------------------------------- jobs

  function resetPages() {
    view.cursors = [null];
    view.nextBefore = null;
  }

  async function loadJobs() {
    const before = view.cursors[view.cursors.length - 1];
    const page = await call("GET", `/jobs${query({ ...view.filter, before })}`);
    view.listed = Boolean(page.ok && page.data && Array.isArray(page.data.jobs));
    renderBulk();
    // A 400 is a filter the server refuses (an id with a letter ids do not have): say
    // why, and list nothing rather than the jobs of the filter before.
    const refused = page.status === 400;
    $("filter-id").setAttribute("aria-invalid", String(refused && Boolean(view.filter.id)));
    if (!view.listed) {
      showError("jobs-error", refused
        ? `Filter refused: ${page.message}`
        : `Jobs unavailable: ${page.message || "unexpected answer"}`);
      if (refused) {
        renderOnce("jobs", { jobs: [], selected: view.selected }, () => renderJobs([]));
        $("page-newer").disabled = true;
        $("page-older").disabled = true;
      }
      return;
    }
    showError("jobs-error", "");
    view.nextBefore = page.data.next_before || null;
    $("page-newer").disabled = view.cursors.length === 1;
    $("page-older").disabled = !view.nextBefore;
    $("page-label").textContent = `page ${view.cursors.length}`;
    renderOnce("jobs", { jobs: page.data.jobs, selected: view.selected }, () => renderJobs(page.data.jobs));
  }

  // What each job row shows (its job's JSON): a row is rebuilt only when its job
  // changed, and kept in place otherwise, so that a row focused from the keyboard
  // stays focused while the list refreshes.
  const rowShows = new WeakMap();

  function renderJobs(jobs) {
    const body = $("jobs-body");
    const kept = new Map([...body.querySelectorAll("tr[data-job-id]")].map((row) => [row.dataset.jobId, row]));
    let refocus = null;
    const rows = jobs.map((job) => {
      const shows = JSON.stringify(job);
      let row = kept.get(job.id);
      if (!row || rowShows.get(row) !== shows) {
        const fresh = jobRow(job);
        rowShows.set(fresh, shows);
        // A focused row whose job changed hands the focus to its successor.
        if (row && row.contains(document.activeElement)) refocus = fresh.querySelector("button.open");
        row = fresh;
      }
      row.classList.toggle("selected", job.id === view.selected);
      return row;
    });
    placeRows(body, rows.length ? rows : [emptyRow(body, 8, "No jobs match.")]);
    if (refocus) refocus.focus();
  }

  // A row opens its job when clicked anywhere but on its actions; its id is a button
  // so that the keyboard reaches it (Tab) and opens it (Enter or Space) too.
  function jobRow(job) {
    return h("tr", {
      "data-job-id": job.id, "data-status": job.status, "data-queue": job.queue,
      onclick: () => select(job.id),
    },
    h("td", {}, h("button", { type: "button", className: "open", title: job.id }, shortId(job.id))),
    h("td", { className: "kind", title: job.kind }, job.kind),
    h("td", { className: "hide-sm" }, job.queue),
    h("td", {}, badge(job.status)),
    h("td", { className: "num hide-sm" }, `${job.attempts}/${job.max_attempts}`),
    h("td", { className: "hide-sm", title: job.created_at }, time(job.created_at)),
    h("td", { className: "num hide-sm" }, duration(job.elapsed_ms)),
    h("td", { className: "actions" }, actionButtons(job, true)));
  }

  function actionButtons(job, small) {
    const buttons = [];
    if (RETRYABLE.has(job.status)) {
      buttons.push(h("button", {
        type: "button", className: small ? "small" : "primary", "data-action": "retry",
        title: "enqueue again with a fresh attempt budget",
        onclick: (e) => { e.stopPropagation(); act("retry", job.id); },
      }, "Retry"));
    }
    if (CANCELLABLE.has(job.status)) {
      buttons.push(h("button", {
        type: "button", className: small ? "small danger" : "danger", "data-action": "cancel",
        title: "cancel before it runs",
        onclick: (e) => { e.stopPropagation(); act("cancel", job.id); },
      }, "Cancel"));
    }
    // Aborting stops work under way: offered in the job's panel, where its details are
    // in view, not in the list.
    if (ABORTABLE.has(job.status) && !small) {
      buttons.push(h("button", {
        type: "button", className: "danger", "data-action": "abort",
        title: "stop it now: it is cancelled and its worker drops the attempt",
        onclick: (e) => { e.stopPropagation(); act("abort", job.id); },
      }, "Abort"));
    }
    return buttons;
  }

  // The operator actions on one job: the request, the question asked first (if any),
  // and what the page says once done.
  const ACTIONS = {
    retry: { what: "Retry", method: "POST", path: "/retry", done: "enqueued again" },
    cancel: { what: "Cancel", method: "DELETE", path: "", done: "cancelled", ask: (id) => `Cancel job ${id}?` },
    abort: {
      what: "Abort", method: "POST", path: "/abort", done: "aborted: it is cancelled",
      ask: (id) => `Abort job ${id}? It is cancelled now, its worker drops the attempt, and its effect is not applied.`,
    },
  };

  async function act(action, id) {
    const { what, method, path, done, ask } = ACTIONS[action];
    if (ask && !window.confirm(ask(id))) return;
    const answer = await call(method, `/jobs/${encodeURIComponent(id)}${path}`);
    if (answer.ok) {
      flash(`Job ${id} ${done}.`, "ok");
    } else {
      flash(`${what} of ${id} failed (${answer.status || "network"}): ${answer.message}`, "error");
    }
    view.selected = id;
    refresh();
  }

  function select(id) {
    view.selected = id;
    view.shown.delete("detail");
    // On one column the panel is below the list: bring it into view once shown.
    view.revealDetail = window.matchMedia("(max-width: 1000px)").matches;
    refresh();
  }

  async function loadDetail() {
    const panel = $("job-detail");
    const layout = panel.parentElement;
    const id = view.selected;
    if (!id) {
      panel.hidden = true;
      layout.classList.remove("with-detail");
      view.shown.delete("detail");
      return;
    }
    panel.hidden = false;
    layout.classList.add("with-detail");
    const answer = await call("GET", `/jobs/${encodeURIComponent(id)}`);
    if (view.selected !== id) return;
    renderOnce("detail", { id, answer: answer.ok ? answer.data : answer.message }, () => {
      panel.dataset.jobId = id;
      panel.dataset.status = answer.ok && answer.data ? answer.data.status : "";
      const children = answer.ok && answer.data
        ? detailOf(answer.data)
        : [detailHead(id, null), message(answer.message, "error")];
      panel.replaceChildren(...children.flat().filter(Boolean));
    });
    if (view.revealDetail) {
      view.revealDetail = false;
      panel.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  function detailHead(id, status) {
    return h("div", { className: "detail-head" },
      h("span", { className: "mono" }, id),
      status ? badge(status) : null,
      h("button", {
        type: "button", className: "icon", "aria-label": "Close", id: "detail-close",
        onclick: () => { view.selected = null; refresh(); },
      }, "×"));
  }

  function detailOf(job) {
    const fields = [
      ["Kind", job.kind],
      ["Queue", job.queue],
      ["Attempts", `${job.attempts} of ${job.max_attempts}`],
      ["Worker", job.worker || "–"],
      ["Created", [time(job.created_at), " (", ago(job.created_at), ")"]],
      ["Started", job.status === "running"
        ? [time(job.started_at), " (", ago(job.started_at), ")"]
        : time(job.started_at)],
      ["Finished", time(job.finished_at)],
      ["Took", duration(job.elapsed_ms)],
    ];
    if (job.run_at) fields.push(["Next attempt", [time(job.run_at), " (", ago(job.run_at), ")"]]);
    return [
      detailHead(job.id, job.status),
      h("dl", { className: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { className: "label" }, "Arguments"),
      h("pre", {}, JSON.stringify(job.args, null, 2)),
      job.result !== null && job.result !== undefined
        ? [h("div", { className: "label" }, "Result"), h("pre", { id: "detail-result" }, JSON.stringify(job.result, null, 2))]
        : null,
      job.error ? [h("div", { className: "label" }, "Last error"), h("pre", { className: "error" }, job.error)] : null,
      attemptLog(job.attempt_log),
      h("div", { className: "detail-actions" }, actionButtons(job, false)),
    ];
  }

  // Failed attempts, oldest first: number, worker, when, how long, why.
  function attemptLog(log) {
    if (!Array.isArray(log) || log.length === 0) return null;
    return [
      h("div", { className: "label" }, `Failed attempts (${log.length})`),
      h("ol", { className: "attempts", id: "detail-attempts" }, log.map((a) =>
        h("li", {},
          h("div", { className: "muted" },
            `#${a.attempt} on ${a.worker}, ${time(a.started_at)}, ` +
            `${duration(new Date(a.finished_at) - new Date(a.started_at))}`),
          h("pre", { className: "error" }, a.error)))),
    ];
  }

  // ---------------------------------------------------------------- schedules

  async function loadSchedules() {
    const answer = await call("GET", "/schedules");
    if (!answer.ok || !Array.isArray(answer.data)) {
      showError("schedules-error", `Schedules unavailable: ${answer.message || "unexpected answer"}`);
      return;
    }
    showError("schedules-error", "");
    // Rebuilt only when a timetable changed (relative times tick on their own), so that
    // a focused "Run now" keeps the focus.
    renderOnce("schedules", answer.data, () => renderSchedules(answer.data));
  }

  function renderSchedules(schedules) {
    const rows = schedules.map((s) => {
      const last = s.last_run;
      // Housekeeping runs on an interval from the scheduler's start: the api knows
      // neither its next nor its last run.
      const interval = s.interval_secs !== undefined;
      const next = !s.enabled
        ? badge("off")
        : s.next_run
          ? [time(s.next_run), h("div", { className: "muted" }, ago(s.next_run))]
          : interval
            ? h("span", { className: "muted" }, `every ${span(s.interval_secs * 1000)}`)
            : h("span", { className: "message error" }, s.problem || "no further tick");
      // A cron timetable can be run now (housekeeping runs inside the scheduler).
      const runNow = interval ? null : h("button", {
        type: "button", className: "small", "data-action": "run-now",
        title: "enqueue the job a tick would, now",
        onclick: () => runSchedule(s.name),
      }, "Run now");
      return h("tr", { "data-schedule": s.name },
        h("td", { className: "queue-name" }, h("b", {}, s.name), runNow,
          h("div", { className: "muted" }, interval
            ? `every ${span(s.interval_secs * 1000)} · stuck after ${span(s.stuck_after_secs * 1000)}`
            : [h("code", {}, s.cron), ` · ${s.timezone}`])),
        h("td", {}, next),
        h("td", { className: "wrap" }, last
          ? [badge(last.status), " ",
            h("a", { href: "#jobs", className: "mono", onclick: () => select(last.job_id) }, shortId(last.job_id)),
            h("div", { className: "muted" }, `${time(last.created_at)} · ${last.reason || "?"}`),
            last.error ? h("div", { className: "message error" }, last.error) : null]
          : h("span", { className: "muted" }, interval ? "not recorded" : "never")));
    });
    $("schedules-body").replaceChildren(
      ...(rows.length ? rows : [h("tr", { className: "empty" }, h("td", { colspan: 3 }, "No timetables."))]),
    );
  }

  async function runSchedule(name) {
    const answer = await call("POST", `/schedules/${encodeURIComponent(name)}/run`);
    if (answer.ok) {
      flash(`${name} runs now: job ${answer.data.job_id}.`, "ok");
    } else {
      flash(`Run of ${name} failed (${answer.status || "network"}): ${answer.message}`, "error");
    }
    refresh();
  }

  // ---------------------------------------------------------------- features

  async function loadFeatures() {
    await Promise.all([loadRates(), loadAds(), loadReports(), loadOutliers()].map(guard));
  }

  async function loadRates() {
    const box = $("feature-rates");
    const answer = await call("GET", "/rates");
    if (!answer.ok || !answer.data || !answer.data.rates) {
      $("rates-date").textContent = "";
      box.replaceChildren(message(answer.message || "unexpected answer", answer.status === 404 ? "muted" : "error"));
      return;
    }
    const rates = Object.entries(answer.data.rates);
    $("rates-date").textContent = `${answer.data.date} · per 1 ${answer.data.base}`;
    box.replaceChildren(rates.length
      ? h("div", { className: "kv" }, rates.map(([code, rate]) =>
        h("div", { "data-currency": code }, h("b", {}, code), h("span", {}, +rate.toPrecision(6)))))
      : message("No currencies on that day."));
  }

  async function loadAds() {
    if (!view.ads) return;
    const box = $("feature-ads");
    const { scope, key } = view.ads;
    const answer = await call("GET", `/statistics${query({ [scope]: key })}`);
    const counts = answer.ok && answer.data ? answer.data[key] : null;
    if (!counts) {
      box.replaceChildren(message(answer.message || "unexpected answer", answer.status === 404 ? "muted" : "error"));
      return;
    }
    box.replaceChildren(
      h("div", { className: "muted caption" }, `${scope === "sdk" ? "SDK" : "user"} ${key}`),
      tiles([
        ["Ad requests", number(counts.ad_requests)],
        ["Impressions", number(counts.impressions)],
        ["Fill rate", `${(100 * counts.fill_rate).toFixed(1)} %`],
      ]));
  }

  function tiles(items) {
    return h("div", { className: "tiles" }, items.map(([label, value]) =>
      h("div", {}, h("span", { className: "label" }, label), h("span", { className: "value" }, value))));
  }

  // The readiness gate's 409 carries counts; say how far from enough the data is.
  function notEnough(answer) {
    const d = answer.data || {};
    if (answer.status !== 409 || typeof d.total !== "number") return null;
    const below = d.servers_below_min ? `; ${d.servers_below_min} server(s) below ${d.min_per_server} each` : "";
    return `${d.error || "Not enough reports received"}: ${d.total} of ${d.min_total} in all${below}.`;
  }

  async function loadReports() {
    const box = $("feature-reports");
    const answer = await call("GET", `/process_statistics${query({ server_name: view.reportsServer })}`);
    if (!answer.ok || !answer.data) {
      const waiting = notEnough(answer);
      box.replaceChildren(message(waiting || answer.message || "unexpected answer", waiting || answer.status === 404 ? "note" : "error"));
      return;
    }
    box.replaceChildren(
      h("div", { className: "muted caption" },
        view.reportsServer ? `server ${view.reportsServer}` : "all servers", " · durations in seconds"),
      tiles([
        ["Mean", number(answer.data.mean)],
        ["Std dev", number(answer.data.stddev)],
        ["Reports", number(answer.data.count)],
      ]));
  }

  async function loadOutliers() {
    const box = $("feature-outliers");
    const answer = await call("GET", "/process_outliers");
    if (!answer.ok || !Array.isArray(answer.data)) {
      const waiting = notEnough(answer);
      box.replaceChildren(message(waiting || answer.message || "unexpected answer", waiting ? "note" : "error"));
      return;
    }
    box.replaceChildren(answer.data.length
      ? h("div", { className: "chips" }, answer.data.map((name) => h("span", { className: "chip" }, name)))
      : message("No server is outside its band."));
  }

  // ---------------------------------------------------------------- polling

  // A failure in one region (a render bug, an odd answer) never stops the others.
  async function guard(promise) {
    try {
      await promise;
    } catch (err) {
      console.error(err);
    }
  }

  let timer = null;
  let inflight = false;
  let again = false;

  async function poll() {
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    clearTimeout(timer);
    const tasks = [loadAccess(), loadOverview(), loadHistory(), loadJobs(), loadDetail(), loadSchedules()];
    if (view.polls % FEATURES_EVERY === 0) tasks.push(loadFeatures());
    view.polls += 1;
    await Promise.all(tasks.map(guard));
    inflight = false;
    if (again) {
      again = false;
      poll();
    } else {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  // Polls at once (after the poll in flight, if any) instead of waiting for the timer.
  function refresh() {
    writeUrl();
    poll();
  }

  // ---------------------------------------------------------------- the URL

  // The jobs view lives in the URL (`#jobs?status=dead&queue=default&kind=noop&id=01J…&job=…`),
  // so that a reload keeps it and a link opens it. Pages are not kept: they are
  // cursors into a list that moves.
  function urlState() {
    const { status, queue, kind, id } = view.filter;
    return query({ status, queue, kind, id, job: view.selected });
  }

  function writeUrl() {
    const state = urlState();
    const hash = state ? `#jobs${state}` : "";
    const current = location.hash.startsWith("#jobs?") ? location.hash : "";
    if (hash !== current) {
      history.replaceState(null, "", hash || `${location.pathname}${location.search}`);
    }
  }

  // Takes the jobs view from the URL; whether it held one.
  function readUrl() {
    if (!location.hash.startsWith("#jobs?")) return false;
    const params = new URLSearchParams(location.hash.slice("#jobs?".length));
    const status = params.get("status") || "";
    view.filter.status = [...$("filter-status").options].some((o) => o.value === status) ? status : "";
    view.filter.queue = params.get("queue") || "";
    view.filter.kind = params.get("kind") || "";
    view.filter.id = (params.get("id") || "").trim();
    view.selected = params.get("job") || null;
    $("filter-status").value = view.filter.status;
    if (view.filter.queue) queueOptions([view.filter.queue]);
    $("filter-queue").value = view.filter.queue;
    $("filter-kind").value = view.filter.kind;
    $("filter-id").value = view.filter.id;
    renderBulk();
    resetPages();
    return true;
  }

  function refreshFeatures() {
    guard(loadFeatures());
  }

  // ---------------------------------------------------------------- wiring

  function start() {
    const tokenInput = $("admin-token");
    tokenInput.value = token();
    tokenInput.addEventListener("input", () => {
      try {
        sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
      } catch {
        flash("This browser does not keep the admin token (storage disabled).", "error");
      }
      guard(loadAccess());
    });

    $("action-dismiss").addEventListener("click", () => ($("action-message").hidden = true));

    $("filter-status").addEventListener("change", (e) => {
      view.filter.status = e.target.value;
      renderBulk();
      resetPages();
      refresh();
    });
    for (const id of Object.keys(BULK_BUTTONS)) $(id).addEventListener("click", () => bulkAction(id));
    $("filter-queue").addEventListener("change", (e) => {
      view.filter.queue = e.target.value;
      resetPages();
      refresh();
    });
    // A typed filter applies once typing pauses for 300 ms.
    const typedFilter = (input, field) => {
      let typing = null;
      $(input).addEventListener("input", (e) => {
        clearTimeout(typing);
        typing = setTimeout(() => {
          view.filter[field] = e.target.value.trim();
          renderBulk();
          resetPages();
          refresh();
        }, 300);
      });
    };
    typedFilter("filter-kind", "kind");
    typedFilter("filter-id", "id");
    $("filter-limit").addEventListener("change", (e) => {
      view.filter.limit = Number(e.target.value) || 20;
      resetPages();
      refresh();
    });
    $("job-filters").addEventListener("submit", (e) => e.preventDefault());
    $("page-older").addEventListener("click", () => {
      if (!view.nextBefore) return;
      view.cursors.push(view.nextBefore);
      refresh();
    });
    $("page-newer").addEventListener("click", () => {
      if (view.cursors.length > 1) view.cursors.pop();
      refresh();
    });

    $("ads-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("ads-key").value.trim();
      view.ads = key ? { scope: $("ads-scope").value, key } : null;
      if (!view.ads) $("feature-ads").replaceChildren(message("Look up a user or an SDK version."));
      refreshFeatures();
    });
    $("reports-form").addEventListener("submit", (e) => {
      e.preventDefault();
      view.reportsServer = $("reports-server").value.trim();
      refreshFeatures();
    });

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    window.addEventListener("resize", () => renderThroughput());
    // A link pasted into this tab, or the back button: show what it names.
    window.addEventListener("hashchange", () => {
      if (location.hash.startsWith("#jobs?") && location.hash !== `#jobs${urlState()}`) {
        readUrl();
        poll();
      }
    });
    if (readUrl()) {
      // The regions above grow as the first poll fills them, moving the jobs down:
      // scrolled to at once, and again once they are filled.
      $("jobs").scrollIntoView();
      poll().then(() => $("jobs").scrollIntoView());
    } else {
      poll();
    }
    setInterval(tickRelative, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
