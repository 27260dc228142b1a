// Helpers shared by Easel's pages (index.html and admin.html): DOM building, the JSON API
// client and readable errors. Plain JavaScript; exposes one global, ``Easel``.
"use strict";

window.Easel = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(message, status, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  // Calls the JSON API; a non-2xx answer throws ApiError with the server's readable message.
  async function api(method, path, body, extraHeaders) {
    const init = { method, headers: { Accept: "application/json", ...(extraHeaders || {}) } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError("The Easel server cannot be reached. Is it still running?", 0, null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const message = (data && data.error) || `The server answered ${response.status} ${response.statusText}.`;
      const retry = Number(response.headers.get("Retry-After"));
      throw new ApiError(message, response.status, Number.isFinite(retry) && retry > 0 ? retry : null);
    }
    return data;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    if (seconds < 1) return "under a second";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function errorText(error) {
    let text = error && error.message ? error.message : String(error);
    if (error && error.retryAfter && !/again|retry|wait/i.test(text)) {
      text += ` Try again in ${duration(error.retryAfter)}.`;
    }
    return text;
  }

  // Shows ``error`` (a string or an Error) in ``node``; a falsy error hides the node.
  function showError(node, error) {
    if (!error) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.textContent = typeof error === "string" ? error : errorText(error);
    node.hidden = false;
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (error) {
      const area = el("textarea", { class: "offscreen" });
      area.value = text;
      document.body.append(area);
      area.select();
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
    }
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = label; }, 1200);
  }

  return { ApiError, api, copyText, duration, el, errorText, showError };
})();
