// The provider board: the live feed (WS /api/v1/ws) drawn as a table. No build step, no library.
// The token is asked for once and kept in this browser's localStorage; it goes in the socket's first message,
// never in a URL.
"use strict";

const TOKEN_KEY = "switchboard.token";
const state = { providers: new Map(), runs: [], failovers: [] };
let socket = null;
let retryMs = 1000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function bar(fraction) {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  const cls = fraction >= 1 ? "bar full" : fraction >= 0.8 ? "bar hot" : "bar";
  return el("span", { class: cls }, el("span", { style: `width:${pct.toFixed(1)}%` }));
}

function quotaCell(p) {
  const cell = el("td");
  for (const scope of p.quota) {
    const name = scope.subscription || "provider";
    const line = el("div", { class: "scope", "data-scope": name });
    line.append(el("span", { class: "muted" }, `${name}: `));
    if (scope.limits.length === 0 && !scope.blocked_until && Object.keys(scope.reported).length === 0) {
      line.append(el("span", { class: "muted" }, "no limits"));
    }
    for (const limit of scope.limits) {
      line.append(bar(limit.utilization));
      line.append(
        el("span", { class: "use", "data-limit": limit.name }, `${limit.name} ${limit.used}/${limit.limit}`),
        " ",
      );
    }
    for (const [kind, used] of Object.entries(scope.reported)) {
      line.append(bar(used), el("span", {}, `${kind} ${(used * 100).toFixed(0)}% (reported)`), " ");
    }
    if (scope.blocked_until) {
      line.append(el("span", { class: "blocked" }, ` blocked until ${scope.blocked_until} (${scope.blocked_reason})`));
    }
    if (scope.cooling_off_s) line.append(el("span", { class: "blocked" }, ` cooling off ${scope.cooling_off_s} s`));
    cell.append(line);
  }
  return cell;
}

function providerRow(p) {
  const circuit = p.circuit.state + (p.circuit.open_for_s ? ` (${duration(p.circuit.open_for_s)})` : "");
  const errors = p.circuit.error_rate === null ? "" : ` · ${(p.circuit.error_rate * 100).toFixed(0)}% errors`;
  const forecast = p.forecast
    ? `${p.forecast.name} runs out in ${duration(p.forecast.exhausted_in_s)}`
    : "—";
  return el(
    "tr",
    { "data-provider": p.id },
    el("td", {}, el("strong", {}, p.id), el("div", { class: "muted" }, `${p.type} · priority ${p.priority}`)),
    el("td", { class: p.health.status }, p.health.status, p.health.detail ? el("div", { class: "muted" }, p.health.detail) : null),
    el("td", { class: p.circuit.state }, circuit, el("span", { class: "muted" }, errors)),
    el("td", {}, `${p.in_flight}/${p.max_concurrency}`, p.waiting ? el("span", { class: "muted" }, ` +${p.waiting} waiting`) : null),
    el("td", {}, p.latency_ms === null ? "—" : `${p.latency_ms.toFixed(0)} ms`),
    quotaCell(p),
    el("td", { class: "forecast" }, forecast),
  );
}

function renderProviders() {
  const body = $("providers").querySelector("tbody");
  body.replaceChildren(...[...state.providers.values()].map(providerRow));
}

function renderRuns() {
  const list = $("runs");
  if (state.runs.length === 0) return list.replaceChildren(el("li", { class: "muted" }, "none yet"));
  list.replaceChildren(
    ...state.runs.map((r) => {
      const counts = Object.entries(r.tasks).map(([s, n]) => `${n} ${s}`).join(", ");
      const name = r.ui_url ? el("a", { href: r.ui_url, target: "_blank", rel: "noopener" }, r.name) : r.name;
      return el("li", { "data-run": r.id }, name, ` · ${r.status}`, counts ? ` · ${counts}` : "", el("div", { class: "muted" }, r.id));
    }),
  );
}

function renderFailovers() {
  const list = $("failovers");
  if (state.failovers.length === 0) {
    return list.replaceChildren(el("li", { class: "muted" }, "none in the last 15 minutes"));
  }
  list.replaceChildren(
    ...state.failovers.map((f) =>
      el("li", {}, `${f.from} → ${f.to}: ${f.reason}`, el("div", { class: "muted" }, `${f.run_id}:${f.task_id} · ${f.at}`)),
    ),
  );
}

function setConnection(text, on) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = on ? "pill on" : "pill off";
}

function onMessage(message) {
  switch (message.type) {
    case "hello":
      setConnection(`live · ${message.name} (${message.scope})`, true);
      retryMs = 1000;
      break;
    case "snapshot":
      state.providers = new Map(message.providers.map((p) => [p.id, p]));
      state.runs = message.runs;
      state.failovers = message.failovers || [];
      renderProviders();
      renderRuns();
      renderFailovers();
      $("board").hidden = false;
      break;
    case "provider":
      state.providers.set(message.provider.id, message.provider);
      renderProviders();
      break;
    case "runs":
      state.runs = message.runs;
      renderRuns();
      break;
    case "failovers":
      state.failovers = message.failovers;
      renderFailovers();
      break;
    case "providers_changed":
      connect(); // the set of providers changed: start from a fresh snapshot
      break;
    case "heartbeat":
      $("heartbeat").textContent = `last heartbeat ${new Date(message.at).toLocaleTimeString()}`;
      break;
  }
}

function connect() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return showLogin();
  if (socket) {
    socket.onclose = null;
    socket.close();
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
  socket.onopen = () => socket.send(JSON.stringify({ token }));
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (event.code === 1008) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin("That token was refused.");
      return;
    }
    setConnection("reconnecting…", false);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  };
}

function showLogin(error) {
  $("board").hidden = true;
  $("login").hidden = false;
  setConnection("not connected", false);
  const message = $("login-error");
  message.hidden = !error;
  message.textContent = error || "";
  $("token").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  $("login").hidden = true;
  connect();
});

$("logout").addEventListener("click", (event) => {
  event.preventDefault();
  localStorage.removeItem(TOKEN_KEY);
  if (socket) {
    socket.onclose = null;
    socket.close();
  }
  showLogin();
});

connect();
