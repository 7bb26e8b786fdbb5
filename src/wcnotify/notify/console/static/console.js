// The wcnotify web console: plain browser JavaScript, no framework, no build step, nothing fetched from
// elsewhere. It calls this server's JSON API with the credentials typed at login, which live in this tab's
// sessionStorage only and travel only as an Authorization header (never in a URL, never in the console log).
// Server data is always inserted as text (textContent / DOM nodes), never as HTML.
"use strict";

(() => {
  const STORE = "wcnotify.console";
  const REFRESH_DELIVERIES_MS = 2000;
  const REFRESH_SLOW_MS = 15000;
  const HISTORY = { day: 30, hour: 48 };

  const $ = (selector, root = document) => root.querySelector(selector);
  // a form's control by name (form.name, form.title… are the form's own properties, not its fields)
  const field = (form, name) => form.elements.namedItem(name);

  // ------------------------------------------------------------------------------------ session

  function loadSession() {
    try {
      const value = JSON.parse(sessionStorage.getItem(STORE) || "{}");
      return value && typeof value === "object" ? value : {};
    } catch {
      return {};
    }
  }

  let session = loadSession(); // {admin?: token, project?: {id, secret}, secrets?: {projectId: secret}}
  const saveSession = () => sessionStorage.setItem(STORE, JSON.stringify(session));

  // ------------------------------------------------------------------------------------ helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children) el.append(child instanceof Node ? child : String(child));
    return el;
  }

  const utc = (ms, withTime = true) => {
    if (ms === null || ms === undefined) return "";
    const text = new Date(ms).toISOString().replace("T", " ");
    return withTime ? text.slice(0, 16) + " UTC" : text.slice(0, 10);
  };

  function showError(message) {
    const el = $("#error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  function say(el, message, ok = true) {
    el.textContent = message;
    el.classList.toggle("bad", !ok);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, { token, body } = {}) {
    const headers = { accept: "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch {
      throw new ApiError(0, "the server cannot be reached; is it still running?");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
    }
    return data;
  }

  // A load started for a project can resume after logout or a project switch (its request was in flight):
  // with no project open its next call never settles, so the stale load stops quietly instead of throwing.
  const projectPath = (path) => (session.project ? `/v1/${encodeURIComponent(session.project.id)}${path}` : "#");
  const projectApi = (method, path, body) => (session.project
    ? api(method, projectPath(path), { token: session.project.secret, body })
    : new Promise(() => {}));

  // a 401 while a project is open means its secret changed or the project is gone: back to the login
  function failed(error, where) {
    if (error instanceof ApiError && error.status === 401 && session.project) {
      session.project = null;
      saveSession();
      route();
      showError("The project's credentials were refused; log in again.");
      return;
    }
    showError(`${where}: ${error.message}`);
  }

  // -------------------------------------------------------------------------------------- views

  let timers = [];
  function stopTimers() {
    timers.forEach(clearInterval);
    timers = [];
  }

  function show(view) {
    for (const id of ["login-view", "admin-view", "project-view"]) $("#" + id).hidden = id !== view;
    const who = [session.admin && "administrator", session.project && `project ${session.project.id}`]
      .filter(Boolean).join(", ");
    $("#who").textContent = who ? `logged in: ${who}` : "";
    $("#logout").hidden = !who;
  }

  function route() {
    stopTimers();
    if (session.project) {
      show("project-view");
      $("#to-projects").hidden = !session.admin;
      startProject();
    } else if (session.admin) {
      show("admin-view");
      loadProjects();
    } else {
      show("login-view");
    }
  }

  // -------------------------------------------------------------------------------------- login

  $("#login-project").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    await openProject(field(form, "projectId").value.trim(), field(form, "secret").value.trim());
    field(form, "secret").value = "";
  });

  $("#login-admin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const token = field(form, "token").value.trim();
    field(form, "token").value = "";
    try {
      await api("GET", "/v1/projects", { token });
    } catch (error) {
      showError(error.status === 401 ? "That is not the admin token." : `Log in: ${error.message}`);
      return;
    }
    showError("");
    session = { admin: token, secrets: session.secrets || {} };
    saveSession();
    route();
  });

  $("#logout").addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    session = {};
    showError("");
    route();
  });

  async function openProject(id, secret) {
    try {
      await api("GET", `/v1/${encodeURIComponent(id)}/project`, { token: secret });
    } catch (error) {
      showError(error.status === 401 ? "That project id and secret do not match." : `Open project: ${error.message}`);
      return false;
    }
    showError("");
    session.project = { id, secret };
    session.secrets = { ...(session.secrets || {}), [id]: secret };
    saveSession();
    route();
    return true;
  }

  // ------------------------------------------------------------------------------------- admin

  let openingProject = null;

  async function loadProjects() {
    let projects;
    try {
      projects = await api("GET", "/v1/projects", { token: session.admin });
    } catch (error) {
      if (error.status === 401) {
        session.admin = null;
        saveSession();
        route();
        showError("The admin token was refused; log in again.");
      } else {
        showError(`Projects: ${error.message}`);
      }
      return;
    }
    const rows = projects.map((p) => h("tr", { dataset: { projectId: p.projectId } },
      h("td", null, p.name), h("td", null, h("code", null, p.projectId)), h("td", null, p.appDomain || "—"),
      h("td", null, p.listed ? "yes" : "no"),
      h("td", null, h("button", { type: "button", onclick: () => chooseProject(p.projectId) }, "Open"))));
    $("#projects tbody").replaceChildren(...rows);
    if (!rows.length) {
      $("#projects tbody").replaceChildren(h("tr", null, h("td", { colspan: 5 }, "No projects yet.")));
    }
  }

  function chooseProject(id) {
    const known = (session.secrets || {})[id];
    if (known) {
      openProject(id, known).then((opened) => { if (!opened) askSecret(id); });
      return;
    }
    askSecret(id);
  }

  function askSecret(id) {
    openingProject = id;
    const form = $("#open-project");
    $(".project-id", form).textContent = id;
    form.hidden = false;
    field(form, "secret").focus();
  }

  $("#open-project").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const secret = field(form, "secret").value.trim();
    field(form, "secret").value = "";
    if (await openProject(openingProject, secret)) form.hidden = true;
  });

  $("#create-project").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    try {
      const created = await api("POST", "/v1/projects", {
        token: session.admin,
        body: { name: field(form, "name").value.trim(), description: field(form, "description").value.trim() },
      });
      session.secrets = { ...(session.secrets || {}), [created.projectId]: created.secret };
      saveSession();
      const notice = $("#created");
      $(".project-id", notice).textContent = created.projectId;
      $(".secret", notice).textContent = created.secret;
      notice.hidden = false;
      form.reset();
      showError("");
      loadProjects();
    } catch (error) {
      showError(`New project: ${error.message}`);
    }
  });

  $("#to-projects").addEventListener("click", () => {
    session.project = null;
    saveSession();
    route();
  });

  // ----------------------------------------------------------------------------------- project

  function startProject() {
    $("#send-result").textContent = "";
    loadProject();
    loadTypes();
    loadDeliveries();
    loadHistory();
    loadWebhooks();
    timers.push(setInterval(() => { if (!document.hidden) loadDeliveries(); }, REFRESH_DELIVERIES_MS));
    timers.push(setInterval(() => {
      if (!document.hidden) { loadHistory(); loadWebhooks(); }
    }, REFRESH_SLOW_MS));
  }

  async function loadProject() {
    let project;
    try {
      project = await projectApi("GET", "/project");
    } catch (error) {
      failed(error, "Project");
      return;
    }
    $("#project-name").textContent = project.name;
    $("#project-id").textContent = project.projectId;
    $("#app-domain").textContent = project.appDomain || "not set yet";
    $("#listed").textContent = project.listed ? "listed" : "not listed";
    $("#set-domain").hidden = Boolean(project.appDomain);
    const link = $("#did-document");
    link.hidden = !project.appDomain;
    link.href = projectPath("/did.json");
    checkDid();
  }

  const DID_LABELS = {
    ok: "published", no_domain: "no app domain", unreachable: "unreachable",
    http_error: "not served", invalid: "invalid", mismatch: "other keys",
  };

  async function checkDid() {
    const badge = $("#did-state");
    badge.textContent = "checking…";
    badge.className = "badge";
    $("#did-detail").textContent = "";
    try {
      const result = await projectApi("GET", "/console/did-status");
      badge.textContent = DID_LABELS[result.state] || result.state;
      badge.className = "badge " + (result.ok ? "good" : "bad");
      badge.dataset.state = result.state;
      $("#did-detail").textContent = result.detail;
    } catch (error) {
      badge.textContent = "error";
      failed(error, "did.json check");
    }
  }

  $("#did-check").addEventListener("click", checkDid);

  $("#set-domain").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    try {
      await projectApi("POST", "/subscribe-topic", { appDomain: field(form, "appDomain").value.trim() });
      showError("");
      form.reset();
      loadProject();
    } catch (error) {
      failed(error, "App domain");
    }
  });

  // ------------------------------------------------------------------------------------- types

  async function loadTypes() {
    let types;
    try {
      types = await projectApi("GET", "/notification-types");
    } catch (error) {
      failed(error, "Notification types");
      return;
    }
    $("#types tbody").replaceChildren(...types.map((t) => h("tr", null,
      h("td", null, t.name), h("td", null, t.description), h("td", null, h("code", null, t.id)))));
    const select = field($("#send"), "type");
    const chosen = select.value;
    select.replaceChildren(...types.map((t) => h("option", { value: t.id }, t.name)));
    if (types.some((t) => t.id === chosen)) select.value = chosen;
  }

  $("#add-type").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    try {
      await projectApi("POST", "/notification-types", {
        name: field(form, "name").value.trim(), description: field(form, "description").value.trim(),
      });
      showError("");
      form.reset();
      loadTypes();
    } catch (error) {
      failed(error, "New notification type");
    }
  });

  // -------------------------------------------------------------------------------------- send

  $("#send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const out = $("#send-result");
    const text = (name) => field(form, name).value.trim();
    const notification = { type: field(form, "type").value, title: text("title"), body: text("body") };
    if (text("url")) notification.url = text("url");
    // our own id, so the deliveries table can follow this notification whatever the endpoint answers
    const notificationId = crypto.randomUUID();
    out.dataset.notificationId = "";
    try {
      if (field(form, "broadcast").checked) {
        const result = await projectApi("POST", "/notify/broadcast", { notification_id: notificationId, notification });
        say(out, `Broadcast queued for ${result.queued} subscriber(s). Notification id ${result.notification_id}.`);
      } else {
        const accounts = field(form, "accounts").value.split(/[\s,]+/).filter(Boolean);
        if (!accounts.length) {
          say(out, "Name at least one account, or tick broadcast.", false);
          return;
        }
        const result = await api("POST", `/${encodeURIComponent(session.project.id)}/notify`, {
          token: session.project.secret, body: { notification_id: notificationId, notification, accounts },
        });
        const parts = [`Queued for ${result.sent.length} account(s)`];
        if (result.failed.length) {
          parts.push(`failed: ${result.failed.map((f) => `${f.account} (${f.reason})`).join(", ")}`);
        }
        if (result.not_found.length) parts.push(`not subscribed: ${result.not_found.join(", ")}`);
        say(out, parts.join("; ") + `. Notification id ${notificationId}.`, result.sent.length > 0);
      }
      out.dataset.notificationId = notificationId;
      showError("");
      loadDeliveries();
    } catch (error) {
      say(out, `Not sent: ${error.message}`, false);
      if (error.status === 401) failed(error, "Send");
    }
  });

  // -------------------------------------------------------------------------------- deliveries

  let loadingDeliveries = false;
  async function loadDeliveries() {
    if (loadingDeliveries) return;
    loadingDeliveries = true;
    try {
      const { notifications } = await projectApi("GET", "/console/notifications?limit=20");
      const rows = notifications.map((n) => {
        const done = n.published + n.failed + n.withdrawn;
        return h("tr", { dataset: { notificationId: n.notification_id } },
          h("td", null, utc(n.created_at)), h("td", null, n.title), h("td", null, h("code", null, n.notification_id)),
          h("td", { class: "total num" }, n.total), h("td", { class: "queued num" }, n.queued),
          h("td", { class: "published num" }, n.published), h("td", { class: "failed num" }, n.failed),
          h("td", { class: "withdrawn num" }, n.withdrawn),
          h("td", null, h("progress", { max: Math.max(n.total, 1), value: done, title: `${done} of ${n.total} done` })));
      });
      $("#deliveries tbody").replaceChildren(...rows);
      if (!rows.length) {
        $("#deliveries tbody").replaceChildren(h("tr", null, h("td", { colspan: 9 }, "Nothing sent yet.")));
      }
    } catch (error) {
      failed(error, "Deliveries");
    } finally {
      loadingDeliveries = false;
    }
  }

  // ------------------------------------------------------------------------------- subscribers

  async function loadHistory() {
    const bucket = $("#history-bucket").value;
    try {
      const history = await projectApi("GET", `/console/subscriber-history?bucket=${bucket}&buckets=${HISTORY[bucket]}`);
      drawChart(history);
    } catch (error) {
      failed(error, "Subscribers");
    }
  }

  $("#history-bucket").addEventListener("change", loadHistory);

  function drawChart(history) {
    const points = history.points;
    const width = 720, height = 220, left = 44, right = 12, top = 12, bottom = 30;
    const plotW = width - left - right, plotH = height - top - bottom;
    const max = Math.max(1, ...points.map((p) => p.total));
    const step = plotW / points.length;
    const y = (value) => top + plotH - (value / max) * plotH;
    const label = (p) => (history.bucket === "day" ? utc(p.start, false) : utc(p.start));
    const svg = s("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", id: "subscriber-chart",
      "aria-label": `Subscribers per ${history.bucket}: ${history.current} now`,
    });
    svg.append(s("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: "axis" }));
    svg.append(s("line", { x1: left, y1: top, x2: left, y2: top + plotH, class: "axis" }));
    for (const value of [0, max]) {
      svg.append(s("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, String(value)));
    }
    points.forEach((p, i) => {
      if (!p.new) return;
      const bar = s("rect", {
        x: left + i * step + step * 0.15, y: y(p.new), width: Math.max(step * 0.7, 1), height: top + plotH - y(p.new),
        class: "bar",
      });
      bar.append(s("title", null, `${label(p)}: ${p.new} new, ${p.total} in all`));
      svg.append(bar);
    });
    const line = points.map((p, i) => `${(left + i * step + step / 2).toFixed(1)},${y(p.total).toFixed(1)}`);
    svg.append(s("polyline", { points: line.join(" "), class: "total-line" }));
    if (points.length) {
      svg.append(s("text", { x: left, y: height - 8, class: "tick" }, label(points[0])));
      svg.append(s("text", { x: left + plotW, y: height - 8, "text-anchor": "end", class: "tick" },
        label(points[points.length - 1])));
    }
    $("#chart").replaceChildren(svg);
    $("#chart-caption").textContent =
      `${history.current} subscriber(s) now. Line: running total; bars: new per ${history.bucket} (UTC). ` +
      `What it counts: ${history.counts}.`;
  }

  // ---------------------------------------------------------------------------------- webhooks

  async function loadWebhooks() {
    let data;
    try {
      data = await projectApi("GET", "/console/webhook-outbox?limit=50");
    } catch (error) {
      failed(error, "Webhooks");
      return;
    }
    const hooks = data.webhooks.map((w) => h("tr", { class: w.consecutive_failures ? "bad" : null },
      h("td", null, h("code", null, w.url)), h("td", null, w.events.join(", ")),
      h("td", { class: "num" }, w.delivered), h("td", { class: "num" }, w.failed), h("td", { class: "num" }, w.pending),
      h("td", { class: "num" }, w.consecutive_failures), h("td", null, w.last_error || ""),
      h("td", null, utc(w.next_attempt_at))));
    $("#webhooks tbody").replaceChildren(...(hooks.length ? hooks
      : [h("tr", null, h("td", { colspan: 8 }, "No webhooks (POST /v1/{projectId}/webhooks adds one)."))]));
    const events = data.events.map((e) => h("tr", { class: e.state === "retrying" ? "bad" : null },
      h("td", { class: "num" }, e.id), h("td", null, e.event), h("td", null, h("code", null, e.account)),
      h("td", null, utc(e.created_at)), h("td", null, e.state), h("td", null, utc(e.delivered_at))));
    $("#outbox tbody").replaceChildren(...(events.length ? events
      : [h("tr", null, h("td", { colspan: 6 }, "The outbox is empty."))]));
  }

  route();
})();
