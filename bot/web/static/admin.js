// Easel's admin page: the model registry, limits, the blocklist and prompt styles. Plain JavaScript.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "easel.adminToken";
  const LIMITS = [
    ["rate_per_minute", "Draws per minute", "number", "0.1"],
    ["burst", "Burst", "number", "1"],
    ["max_queued_per_user", "Queued per user", "number", "1"],
    ["daily_quota", "Daily quota (0 = none)", "number", "1"],
    ["max_steps", "Max steps", "number", "1"],
    ["max_count", "Max images per job", "number", "1"],
    ["max_pixels", "Max pixels", "number", "64"],
  ];
  let settings = {};
  let scopes = [];
  let scope = new URLSearchParams(location.hash.slice(1)).get("scope") || "web";
  let server = {};
  let models = [];
  let addons = [];  // registered LoRA and embeddings (GET /api/models)
  let workersTimer = null;

  const { ApiError, el, showError } = window.Easel;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  async function api(method, path, body) {
    const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
    try {
      return await window.Easel.api(method, path, body, headers);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        needLogin(error.message);
      }
      throw error;
    }
  }

  function needLogin(message) {
    $("panels").hidden = true;
    $("login").hidden = false;
    $("status").textContent = "";
    if (token()) showError($("login-error"), message || "That token was not accepted.");
    $("token").focus();
  }

  // ------------------------------------------------------------------ models

  function addonRow(a) {  // a LoRA or embedding: how a prompt uses it, and Remove
    const use = a.kind === "lora" ? `<lora:${a.name}:1>` : a.name;
    return el("tr", { "data-addon": a.name },
      el("td", { "data-label": "Name", text: a.name }),
      el("td", { "data-label": "Kind", text: a.kind === "lora" ? "LoRA" : "embedding" }),
      el("td", { "data-label": "Source", text: a.family ? `for ${a.family} models` : "" }),
      el("td", { "data-label": "Defaults", text: `prompt: ${use}` }),
      el("td", { class: "actions" }, el("button", {
        type: "button", text: "Remove",
        onclick: () => {
          if (confirm(`Remove “${a.name}” from the registry? Its file stays on disk.`)) {
            change(() => api("DELETE", `/api/admin/addons/${encodeURIComponent(a.name)}`), $("models-error"));
          }
        },
      })));
  }

  function renderModels() {
    const current = settings.default_model;
    $("models").replaceChildren(...models.map((m) => {
      const isDefault = current ? current === m.name : m.is_default;
      const defaults = [m.default_width && m.default_height ? `${m.default_width}×${m.default_height}` : null,
        m.default_steps ? `${m.default_steps} steps` : null, m.default_sampler].filter(Boolean).join(", ");
      return el("tr", { "data-model": m.name },
        el("td", { "data-label": "Name" }, m.name, isDefault ? el("strong", { text: " (default)" }) : null),
        el("td", { "data-label": "Kind", text: m.kind || "" }),
        el("td", { "data-label": "Source", text: m.source || "" }),
        el("td", { "data-label": "Defaults", text: defaults }),
        el("td", { class: "actions" },
          isDefault || m.kind === "upscaler" ? null : el("button", {
            type: "button", text: "Make default",
            onclick: () => change(() => api("POST", `/api/admin/models/${encodeURIComponent(m.name)}/default`), $("models-error")),
          }),
          el("button", {
            type: "button", text: "Remove",
            onclick: () => {
              if (confirm(`Remove the model “${m.name}” from the registry? Its files stay on disk.`)) {
                change(() => api("DELETE", `/api/admin/models/${encodeURIComponent(m.name)}`), $("models-error"));
              }
            },
          })));
    }), ...addons.map(addonRow));
    const select = $("limit-default_model");
    if (select) {
      select.replaceChildren(el("option", { value: "", text: "Registry default" }),
        ...models.filter((m) => m.kind !== "upscaler").map((m) => el("option", { value: m.name, text: m.name })));
      select.value = settings.default_model || "";
    }
  }

  // ------------------------------------------------------------------ limits

  function buildLimitFields() {
    const fields = [
      el("label", { class: "field" }, el("span", { text: "Default model" }),
        el("select", { id: "limit-default_model" })),
      el("label", { class: "field" }, el("span", { text: "Allowed models (empty = all)" }),
        el("input", { id: "limit-allowed_models", type: "text", placeholder: "all, comma separated" })),
      ...LIMITS.map(([key, label, type, step]) => el("label", { class: "field" },
        el("span", { text: label }),
        el("input", { id: `limit-${key}`, type, step, min: 0, inputmode: "decimal" }))),
    ];
    $("limit-fields").replaceChildren(...fields);
  }

  function renderLimits() {
    for (const [key] of LIMITS) {
      const input = $(`limit-${key}`);
      input.value = settings[key] ?? "";
      const fallback = [server.limits, server.generation, server]
        .map((group) => (group || {})[key]).find((value) => value !== undefined && value !== null);
      input.placeholder = fallback === undefined || fallback === null ? "server default" : `server: ${fallback}`;
    }
    $("limit-allowed_models").value = (settings.allowed_models || []).join(", ");
    $("limit-default_model").value = settings.default_model || "";
  }

  function words(text) {
    return text.split(",").map((w) => w.trim()).filter(Boolean);
  }

  function limitChanges() {
    const changes = {};
    for (const [key] of LIMITS) {
      const raw = $(`limit-${key}`).value.trim();
      const value = raw === "" ? null : Number(raw);
      if (value !== (settings[key] ?? null)) changes[key] = value;
    }
    const allowed = words($("limit-allowed_models").value);
    const allowedValue = allowed.length ? allowed : null;
    if (JSON.stringify(allowedValue) !== JSON.stringify(settings.allowed_models ?? null)) {
      changes.allowed_models = allowedValue;
    }
    const chosen = $("limit-default_model").value || null;
    if (chosen !== (settings.default_model ?? null)) changes.default_model = chosen;
    return changes;
  }

  // ------------------------------------------------------------------ blocklist

  function renderBlocklist() {
    const list = settings.blocklist || [];
    $("blocklist").replaceChildren(...(list.length ? list.map((word) => el("li", {},
      word,
      el("button", {
        type: "button", text: "✕", "aria-label": `Unblock ${word}`, title: "Unblock",
        onclick: () => change(() => api("POST", scoped("/api/admin/blocklist"), { remove: [word] }), $("block-error")),
      }))) : [el("li", { class: "hint", text: "Nothing blocked." })]));
  }

  // ------------------------------------------------------------------ styles

  function renderStyles() {
    const styles = Object.entries(settings.styles || {});
    $("styles").replaceChildren(...(styles.length ? styles.map(([name, style]) => el("li", {},
      el("strong", { text: name }),
      `: ${style.prompt || "{prompt}"}${style.negative_prompt ? ` (no: ${style.negative_prompt})` : ""}`,
      el("button", {
        type: "button", text: "✕", "aria-label": `Remove style ${name}`, title: "Remove",
        onclick: () => change(() => api("POST", scoped("/api/admin/styles"), { remove: name }), $("style-error")),
      }))) : [el("li", { class: "hint", text: "No styles here yet." })]));
  }

  // ------------------------------------------------------------------ workers

  const STATE_TEXT = { idle: "idle", rendering: "rendering", down: "down (silent; its jobs run elsewhere)" };

  function renderWorkers(workers) {
    if (!workers.length) {
      $("workers").replaceChildren(el("tr", {}, el("td", { colspan: "6", text: "No worker yet: start one with easel worker." })));
      return;
    }
    $("workers").replaceChildren(...workers.map((w) => {
      const memory = w.memory_gb ? ` · ${w.memory_gb.toFixed(0)} GB` : "";
      return el("tr", { "data-worker": w.name, "data-state": w.state },
        el("td", { "data-label": "Name", text: w.host ? `${w.name} (${w.host})` : w.name }),
        el("td", { "data-label": "State", text: STATE_TEXT[w.state] || w.state }),
        el("td", { "data-label": "Device", text: (w.device || "") + memory }),
        el("td", { "data-label": "Loaded", text: (w.loaded || []).join(", ") || "–" }),
        el("td", { "data-label": "Rendering", text: (w.current || []).join(", ") || "–" }),
        el("td", { "data-label": "Jobs/min", text: (w.jobs_per_minute || 0).toFixed(1) }));
    }));
  }

  async function refreshWorkers() {
    try {
      renderWorkers((await api("GET", "/api/admin/workers")).workers || []);
    } catch (error) { /* the next refresh tries again; login errors show elsewhere */ }
  }

  // ------------------------------------------------------------------ loading

  // ------------------------------------------------------------------ scopes

  function scoped(path) {
    return `${path}?scope=${encodeURIComponent(scope)}`;
  }

  function renderScopes() {
    const select = $("scope");
    select.replaceChildren(...scopes.map((s) => el("option", { value: s.key, text: s.label })));
    if (!scopes.some((s) => s.key === scope)) scope = "web";
    select.value = scope;
  }

  // The panels name their scope once its settings are shown (not while they load: what they
  // show must be that scope's when a person starts typing).
  function nameScope() {
    const label = (scopes.find((s) => s.key === scope) || {}).label || scope;
    for (const node of document.querySelectorAll(".scope-name")) node.textContent = label;
  }

  async function load() {
    scopes = (await api("GET", "/api/admin/scopes")).scopes || [];
    renderScopes();
    const data = await api("GET", scoped("/api/admin/settings"));
    settings = data.settings || {};
    server = data.server || {};
    const listed = await api("GET", "/api/models");
    models = listed.models || [];
    addons = listed.addons || [];
    $("login").hidden = true;
    $("panels").hidden = false;
    $("status").textContent = token() ? "Unlocked with the admin token." : "";
    renderModels();
    renderLimits();
    renderBlocklist();
    renderStyles();
    nameScope();
    await refreshWorkers();
    if (!workersTimer) workersTimer = setInterval(refreshWorkers, 5000);
  }

  async function change(action, errorNode) {
    showError(errorNode, null);
    try {
      await action();
      await load();
      return true;
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) showError(errorNode, error);
      return false;
    }
  }

  function wire() {
    buildLimitFields();
    $("scope").addEventListener("change", async () => {
      scope = $("scope").value;
      history.replaceState(null, "", scope === "web" ? location.pathname : `#scope=${encodeURIComponent(scope)}`);
      for (const id of ["limits-error", "block-error"]) showError($(id), null);
      $("limits-ok").hidden = true;
      $("panels").setAttribute("aria-busy", "true"); // its fields are the old scope's until loaded
      try { await load(); } catch (error) { showError($("limits-error"), error); }
      $("panels").removeAttribute("aria-busy");
    });
    $("login").addEventListener("submit", async (event) => {
      event.preventDefault();
      showError($("login-error"), null);
      try { sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()); } catch (e) { /* private mode */ }
      try { await load(); } catch (error) {
        if (error.status !== 401 && error.status !== 403) showError($("login-error"), error);
      }
    });
    $("add-model").addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { name: $("model-name").value.trim(), source: $("model-source").value.trim() };
      if ($("model-upscaler").checked) body.upscaler = true;
      if ($("model-config").value.trim()) body.config = $("model-config").value.trim();
      const addonKind = $("model-addon").value;  // a LoRA or embedding file instead of a model
      const button = event.submitter || $("add-model").querySelector("button");
      button.disabled = true;
      button.textContent = "Registering…";
      const ok = await change(() => (addonKind
        ? api("POST", "/api/admin/addons", { name: body.name, path: body.source, kind: addonKind })
        : api("POST", "/api/admin/models", body)), $("models-error"));
      button.disabled = false;
      button.textContent = "Register";
      if (ok) $("add-model").reset();
    });
    $("limits").addEventListener("submit", async (event) => {
      event.preventDefault();
      $("limits-ok").hidden = true;
      const changes = limitChanges();
      if (!Object.keys(changes).length) { $("limits-ok").hidden = false; return; }
      const ok = await change(() => api("POST", scoped("/api/admin/settings"), changes), $("limits-error"));
      $("limits-ok").hidden = !ok;
    });
    $("block-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const add = words($("block-word").value);
      if (!add.length) return;
      const ok = await change(() => api("POST", scoped("/api/admin/blocklist"), { add }), $("block-error"));
      if (ok) $("block-word").value = "";
    });
    $("style-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const add = { name: $("style-name").value, prompt: $("style-prompt").value, negative_prompt: $("style-negative").value };
      const ok = await change(() => api("POST", scoped("/api/admin/styles"), { add }), $("style-error"));
      if (ok) for (const id of ["style-name", "style-prompt", "style-negative"]) $(id).value = "";
    });
  }

  wire();
  load().catch((error) => {
    if (error.status !== 401 && error.status !== 403) $("status").textContent = error.message;
  });
})();
