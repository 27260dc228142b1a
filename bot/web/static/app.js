// Easel's local page: the draw form, live progress over server-sent events, the gallery and the
// history. Plain JavaScript, no framework, nothing fetched from another host.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const HISTORY_LIMIT = 20;
  const KEEP_JOBS = 12; // jobs this tab remembers across a reload (sessionStorage)
  const ACTIVE = new Set(["queued", "running"]);
  const RANK = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
  const MODE_TAGS = { img2img: "img2img", inpaint: "vary region" }; // said on a card's head

  const state = {
    models: [],
    mine: new Map(), // job id -> card element, for the jobs shown in the gallery
    seen: new Map(), // job id -> the latest job record the event stream carried
    lastSeed: null,
    queued: new Set(), // every queued job the server told us about (footer)
    running: new Set(),
    ranks: new Map(), // job id -> the furthest status seen (RANK), so a stale answer cannot undo it
    history: { offset: 0, q: "" },
    formRestored: false,
  };

  const { api, copyText, duration, el, showError } = window.Easel;

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  // ------------------------------------------------------------------ models and the form

  // A model that draws: an SDXL refiner (draws: false) only finishes another model's pictures.
  function draws(model) {
    return model.draws !== false;
  }

  function defaultModel() {
    return state.models.find((m) => m.is_default) || state.models.find(draws) || null;
  }

  function chosenModel() {
    const name = $("model").value;
    return state.models.find((m) => m.name === name) || defaultModel();
  }

  function isDemo(model) {
    return !!model && (model.kind === "builtin" || String(model.source || "").startsWith("builtin:"));
  }

  function refreshModelHints() {
    const model = chosenModel();
    $("demo-banner").hidden = !isDemo(model);
    if (!model) return;
    // The model's defaults are said beside the label; an empty box means "use the default",
    // so a placeholder never shows a number that reads like a typed value.
    $("steps-default").textContent = model.default_steps ? `default ${model.default_steps}` : "";
    $("cfg-default").textContent = model.default_cfg ? `default ${model.default_cfg}` : "";
    $("size-default").textContent = model.default_width && model.default_height
      ? `default ${model.default_width}×${model.default_height}` : "";
    const samplerDefault = $("sampler").options[0];
    samplerDefault.textContent = model.default_sampler ? `Default (${model.default_sampler})` : "Model default";
    showFamilyFields(model);
  }

  // Only what the model's family uses (see generation/families.py): its own samplers (a Flux
  // model has one, so no menu), and no negative prompt for a model that ignores it.
  function showFamilyFields(model) {
    const samplers = Array.isArray(model.samplers) ? model.samplers : null;
    const sampler = $("sampler");
    for (const option of sampler.options) {
      option.hidden = option.disabled = !!option.value && !!samplers && !samplers.includes(option.value);
    }
    if (sampler.selectedOptions[0] && sampler.selectedOptions[0].disabled) sampler.value = "";
    const fixed = !!samplers && samplers.length <= 1;
    sampler.disabled = fixed;
    sampler.closest("label").hidden = fixed;
    const negative = $("negative");
    const noNegative = model.negative_prompt === false;
    negative.disabled = noNegative;
    negative.closest("label").hidden = noNegative;
    showRefinerFields(model);
  }

  // SDXL's refiner stage: only for a model that takes one, where a refiner is registered, and
  // only from text (an image-to-image job with a refiner is refused).
  function showRefinerFields(model) {
    const shown = !!model && model.takes_refiner === true && mode() === "txt2img"
      && state.models.some((m) => m.refines === true);
    for (const id of ["refiner", "switch-at"]) {
      $(id).disabled = !shown;
      $(`${id}-field`).hidden = !shown;
    }
  }

  // While the engine loads its model (at start-up), say so; look again until it is ready.
  async function watchLoading() {
    let loading;
    try {
      loading = !!(await api("GET", "/api/status")).loading;
    } catch (error) {  // unreachable for a moment (restarting): the connection line says so
      setTimeout(watchLoading, 3000);
      return;
    }
    $("loading-banner").hidden = !loading;
    if (loading) setTimeout(watchLoading, 1500);
  }

  async function loadModels() {
    try {
      const data = await api("GET", "/api/models");
      state.models = data.models || [];
      const select = $("model");
      const previous = select.value;
      const fallback = defaultModel();
      select.replaceChildren(
        el("option", { value: "", text: fallback ? `Default (${fallback.name})` : "Default" }),
        ...state.models.filter(draws).map((m) => el("option", { value: m.name, text: m.name })),
      );
      select.value = state.models.some((m) => m.name === previous && draws(m)) ? previous : "";
      const refiner = $("refiner");
      const keepRefiner = refiner.value;
      refiner.replaceChildren(
        el("option", { value: "", text: "No refiner" }),
        ...state.models.filter((m) => m.refines === true)
          .map((m) => el("option", { value: m.name, text: m.name })),
      );
      refiner.value = keepRefiner;
      if (refiner.value !== keepRefiner) refiner.value = ""; // unregistered since
      const sampler = $("sampler");
      const keep = sampler.value;
      sampler.replaceChildren(
        el("option", { value: "", text: "Model default" }),
        ...(data.samplers || []).map((s) => el("option", { value: s, text: s })),
      );
      sampler.value = keep;
      refreshModelHints();
      if (!state.formRestored) {
        state.formRestored = true;
        restoreForm();
      }
    } catch (error) {
      showError($("form-error"), error);
    }
  }

  // Prompt styles (the admins' and the config's): shown only where there are some.
  async function loadStyles() {
    try {
      const data = await api("GET", "/api/styles");
      const styles = data.styles || [];
      $("style").replaceChildren(
        el("option", { value: "", text: "No style" }),
        ...styles.map((s) => el("option", { value: s.name, text: s.name, title: s.prompt })),
      );
      $("style-field").hidden = !styles.length;
    } catch (error) { /* the form works without styles */ }
  }

  // ------------------------------------------------------------------ the form survives reloads

  const FORM_KEY = "easel.form";
  const KEPT_FIELDS = ["prompt", "negative", "model", "sampler", "refiner", "switch-at", "size",
    "width", "height", "steps", "cfg", "seed", "count", "strength"];

  function saveForm() {
    const saved = { mode: mode() };
    for (const id of KEPT_FIELDS) saved[id] = $(id).value;
    try { localStorage.setItem(FORM_KEY, JSON.stringify(saved)); } catch (e) { /* private mode */ }
  }

  // After the model, sampler and refiner menus are filled, so their saved choice exists.
  function restoreForm() {
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(FORM_KEY) || "null"); } catch (e) { saved = null; }
    if (!saved || typeof saved !== "object") return;
    for (const id of KEPT_FIELDS) {
      if (typeof saved[id] !== "string") continue;
      const field = $(id);
      field.value = saved[id];
      if (field.tagName === "SELECT" && field.value !== saved[id]) field.value = ""; // gone since
    }
    setMode(saved.mode === "img2img" ? "img2img" : "txt2img");
    $("custom-size").hidden = $("size").value !== "custom";
    $("strength-out").value = Number($("strength").value).toFixed(2);
    refreshModelHints();
  }

  function resetForm() {
    $("draw-form").reset();
    setMode("txt2img");
    $("custom-size").hidden = true;
    $("strength-out").value = Number($("strength").value).toFixed(2);
    initImage = null;
    $("init-preview").hidden = true;
    setUploadMask(null);
    try { localStorage.removeItem(FORM_KEY); } catch (e) { /* private mode */ }
    refreshModelHints();
    $("prompt").focus();
  }

  function mode() {
    return document.querySelector('input[name="mode"]:checked').value;
  }

  function setMode(value) {
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.checked = radio.value === value;
    $("img2img-fields").hidden = value !== "img2img";
    showRefinerFields(chosenModel());
  }

  function numberOrNull(id) {
    const raw = $(id).value.trim();
    if (raw === "") return null;
    const value = Number(raw);
    return Number.isFinite(value) ? value : null;
  }

  let initImage = null; // data: URL of the chosen starting image
  let uploadMask = null; // data: URL of a region painted over it (white = repaint), or null

  // With a painted region only that part of the starting image changes (an inpaint).
  function setUploadMask(mask) {
    uploadMask = mask;
    $("paint-region").hidden = !initImage;
    $("paint-region").textContent = mask ? "Repaint the region" : "Paint a region to change";
    $("region-state").hidden = !mask;
  }

  async function readImage(file) {
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error("That file could not be read."));
      reader.readAsDataURL(file);
    });
    // Phone photos are large: shrink anything over 2048 px (or 4 MB) before uploading.
    const image = new Image();
    await new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = () => reject(new Error("That file is not an image this browser can read."));
      image.src = dataUrl;
    });
    const side = Math.max(image.naturalWidth, image.naturalHeight);
    if (side <= 2048 && file.size <= 4 * 1024 * 1024) return dataUrl;
    const scale = Math.min(1, 2048 / side);
    const canvas = el("canvas", {
      width: Math.round(image.naturalWidth * scale),
      height: Math.round(image.naturalHeight * scale),
    });
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.92);
  }

  function buildRequest() {
    const body = { prompt: $("prompt").value };
    const negative = $("negative").disabled ? "" : $("negative").value.trim();
    if (negative) body.negative_prompt = negative;
    const seed = numberOrNull("seed");
    if (seed !== null && seed >= 0) body.seed = Math.trunc(seed);
    for (const [id, key] of [["steps", "steps"], ["cfg", "cfg"], ["count", "count"]]) {
      const value = numberOrNull(id);
      if (value !== null) body[key] = value;
    }
    if ($("model").value) body.model = $("model").value;
    if ($("style").value) body.styles = [$("style").value];
    if ($("sampler").value && !$("sampler").disabled) body.sampler = $("sampler").value;
    if ($("refiner").value && !$("refiner").disabled) {
      body.refiner = $("refiner").value;
      const switchAt = numberOrNull("switch-at"); // empty: the server's default (0.8)
      if (switchAt !== null) body.refiner_switch_at = switchAt;
    }
    const size = $("size").value;
    if (size === "custom") {
      const width = numberOrNull("width");
      const height = numberOrNull("height");
      if (width !== null) body.width = width;
      if (height !== null) body.height = height;
    } else if (size) {
      body.aspect = size;
    }
    if (mode() === "img2img") {
      body.strength = Number($("strength").value);
      if (initImage) body.init_image = initImage;
      if (initImage && uploadMask) body.mask = uploadMask;
    }
    return body;
  }

  async function submitDraw(event) {
    event.preventDefault();
    const error = $("form-error");
    showError(error, null);
    if (!$("prompt").value.trim()) {
      showError(error, "Write what to draw in the prompt box first.");
      $("prompt").focus();
      return;
    }
    if (mode() === "img2img" && !initImage) {
      showError(error, "Image to image needs a starting image: choose one above.");
      return;
    }
    const button = $("generate");
    button.disabled = true;
    try {
      const accepted = await api("POST", "/api/jobs", buildRequest());
      addJob(accepted.job, accepted);
    } catch (failure) {
      showError(error, failure);
    } finally {
      button.disabled = false;
    }
  }

  function useSettings(job) {
    setMode(job.mode === "img2img" ? "img2img" : "txt2img");
    $("prompt").value = job.prompt || "";
    $("negative").value = job.negative_prompt || "";
    $("seed").value = job.seed ?? -1;
    $("steps").value = job.steps ?? "";
    $("cfg").value = job.cfg ?? "";
    $("count").value = job.count ?? 1;
    $("model").value = state.models.some((m) => m.name === job.model) ? job.model : "";
    $("sampler").value = job.sampler || "";
    // The job JSON may not carry the refiner: then the form keeps the one chosen now.
    if (job.refiner !== undefined) {
      const refiner = typeof job.refiner === "string" ? { model: job.refiner } : job.refiner || {};
      $("refiner").value = refiner.model || "";
      if ($("refiner").value !== (refiner.model || "")) $("refiner").value = ""; // gone since
      $("switch-at").value = refiner.switch_at ?? "";
    }
    if (job.width && job.height) {
      $("size").value = "custom";
      $("width").value = job.width;
      $("height").value = job.height;
    }
    $("custom-size").hidden = $("size").value !== "custom";
    if (job.strength) {
      $("strength").value = job.strength;
      $("strength-out").value = Number(job.strength).toFixed(2);
    }
    refreshModelHints();
    saveForm();
    closeDialog();
    showView("create");
    $("prompt").focus();
  }

  // ------------------------------------------------------------------ job cards

  function statusLine(job, extra) {
    switch (job.status) {
      case "queued": {
        const position = extra && Number.isInteger(extra.position) ? extra.position : job.position;
        const eta = extra && extra.eta_seconds !== undefined ? extra.eta_seconds : job.eta_seconds;
        let text = "Queued";
        if (Number.isInteger(position)) text += position === 0 ? " · next in line" : ` · position ${position + 1} in line`;
        if (eta !== undefined && eta !== null) text += ` · starts in about ${duration(eta)}`;
        return text;
      }
      case "running": {
        const left = extra && extra.seconds_left !== undefined ? extra.seconds_left : job.seconds_left;
        return left !== undefined && left !== null ? `Running · about ${duration(left)} left` : "Running";
      }
      case "succeeded": return job.finished_at && job.started_at
        ? `Done in ${duration((new Date(job.finished_at) - new Date(job.started_at)) / 1000)}` : "Done";
      case "failed": return "Failed";
      case "cancelled": return "Cancelled";
      default: return job.status;
    }
  }

  function describe(job) {
    const parts = [job.action && job.action !== "draw" ? job.action : null,
      job.mode === "img2img" ? `image to image (strength ${Number(job.strength).toFixed(2)})` : null,
      job.model,
      job.width && job.height ? `${job.width}×${job.height}` : null,
      job.steps ? `${job.steps} steps` : null, job.sampler];
    return parts.filter(Boolean).join(" · ");
  }

  // "vary region", "zoom out 2x", "pan left", "img2img": what a card's job did, on its head.
  function modeTag(job) {
    const outpaint = job.inpaint && job.inpaint.outpaint;
    if (outpaint) {
      const [kind, value] = outpaint.split(" ");
      return kind === "zoom" ? `zoom out ${value}x` : `pan ${value}`;
    }
    return MODE_TAGS[job.mode] || null;
  }

  function infoText(job, index) {
    if (job.infotexts && job.infotexts[index]) return job.infotexts[index];
    const seed = job.image_seeds && job.image_seeds[index] !== undefined ? job.image_seeds[index] : job.seed;
    const lines = [job.prompt || ""];
    if (job.negative_prompt) lines.push(`Negative prompt: ${job.negative_prompt}`);
    lines.push([`Steps: ${job.steps}`, `Sampler: ${job.sampler}`, `CFG scale: ${job.cfg}`, `Seed: ${seed}`,
      `Size: ${job.width}x${job.height}`, `Model: ${job.model}`].join(", "));
    return lines.join("\n");
  }

  // ``extra``: an action's own fields ({strength}, {factor}, {direction}).
  async function runAction(job, action, index, extra, errorNode) {
    showError(errorNode, null);
    try {
      const body = { action, ...(extra || {}) };
      if (index !== undefined && index !== null) body.index = index;
      const result = await api("POST", `/api/jobs/${encodeURIComponent(job.id)}/actions`, body);
      if (action === "cancel") {
        updateJob(result.job);
        return;
      }
      closeDialog();
      showView("create");
      addJob(result.job, result);
    } catch (error) {
      showError(errorNode, error);
    }
  }

  function figure(job, url, index) {
    const seed = job.image_seeds && job.image_seeds[index] !== undefined ? job.image_seeds[index] : null;
    // A refused action (too fast, quota, ...) is said right under the buttons that asked for it.
    const errorNode = el("p", { class: "error action-error", role: "alert", hidden: true });
    const info = el("pre", { class: "info", hidden: true });
    const copy = el("button", { type: "button", text: "Copy", hidden: true });
    info.textContent = infoText(job, index);
    const infoButton = el("button", {
      type: "button", text: "Info", "aria-expanded": "false",
      onclick: () => {
        info.hidden = !info.hidden;
        copy.hidden = info.hidden;
        infoButton.setAttribute("aria-expanded", String(!info.hidden));
      },
    });
    copy.addEventListener("click", () => copyText(info.textContent, copy));
    const act = (action, extra) => () => runAction(job, action, index, extra, errorNode);
    const pan = (direction, arrow) => el("button", {
      type: "button", text: `${arrow} Pan ${direction}`, title: `Extend the picture ${direction === "up" || direction === "down" ? "by half its height" : "by half its width"}, ${direction}`,
      onclick: act("pan", { direction }),
    });
    return el("figure", { "data-index": index },
      el("a", { href: url, target: "_blank", rel: "noopener" },
        el("img", {
          src: url, alt: `Result ${index + 1}: ${job.prompt || ""}`, loading: "lazy",
          width: job.width || null, height: job.height || null,
        })),
      el("div", { class: "actions" },
        el("button", { type: "button", text: "Reroll", title: "Same settings, new seed", onclick: act("reroll") }),
        el("button", { type: "button", text: "Upscale", onclick: act("upscale") }),
        el("button", { type: "button", text: "Vary (subtle)", onclick: act("vary", { strength: "subtle" }) }),
        el("button", { type: "button", text: "Vary (strong)", onclick: act("vary", { strength: "strong" }) }),
        el("button", { type: "button", text: "Vary region", title: "Paint over a part to change it",
          onclick: () => openMaskPainter(job, url, index) }),
        infoButton,
        el("a", {
          href: url, download: `easel-${job.id}-${index + 1}${seed !== null ? `-${seed}` : ""}.png`,
          text: "Download", class: "download",
        }),
        copy),
      errorNode, // between the two rows: next to whichever button asked
      // Outpainting: more room around the picture, the new part painted.
      el("div", { class: "actions extend", role: "group", "aria-label": "Extend the picture" },
        el("button", { type: "button", text: "Zoom out 1.5x", title: "The picture centred on a canvas 1.5 times its size", onclick: act("zoom_out", { factor: 1.5 }) }),
        el("button", { type: "button", text: "Zoom out 2x", title: "The picture centred on a canvas twice its size", onclick: act("zoom_out", { factor: 2 }) }),
        pan("left", "←"), pan("right", "→"), pan("up", "↑"), pan("down", "↓")),
      info);
  }

  // "Vary region": paint a mask over image ``index`` of ``job``, then repaint that part.
  let painting = null; // { job, index, painter } or { upload: true, painter } while open

  function openMaskPainter(job, url, index) {
    showPainter({ job, index, painter: new window.Easel.MaskPainter(url, job.width, job.height) });
    $("mask-prompt").value = job.prompt || "";
  }

  // The same painter over the starting image of the form: the region is kept for Generate.
  async function openUploadPainter() {
    if (!initImage) return;
    const image = new Image();
    await new Promise((resolve) => { image.onload = resolve; image.src = initImage; });
    showPainter({ upload: true, painter: new window.Easel.MaskPainter(initImage, image.naturalWidth, image.naturalHeight) });
  }

  function showPainter(session) {
    const { painter } = session;
    painting = session;
    $("mask-slot").replaceChildren(painter.node);
    $("mask-prompt-field").hidden = Boolean(session.upload); // the form's prompt is used
    $("mask-submit").textContent = session.upload ? "Use this region" : "Repaint";
    // After a stroke, not during it: the dialog re-centres when the message goes.
    painter.node.addEventListener("pointerup", () => showError($("mask-error"), null));
    showError($("mask-error"), null);
    closeDialog();
    const dialog = $("mask-dialog");
    if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
  }

  async function submitMask() {
    if (!painting) return;
    const { job, index, painter } = painting;
    const error = $("mask-error");
    showError(error, null);
    if (painter.coverage() === 0) {
      showError(error, "Paint over the part to change first (nothing is painted yet).");
      return;
    }
    if (painting.upload) {
      setUploadMask(painter.toDataUrl());
      $("mask-dialog").close();
      painting = null;
      return;
    }
    const button = $("mask-submit");
    button.disabled = true;
    try {
      const body = { index, mask: painter.toDataUrl() };
      const prompt = $("mask-prompt").value.trim();
      if (prompt) body.prompt = prompt;
      const result = await api("POST", `/api/jobs/${encodeURIComponent(job.id)}/inpaint`, body);
      $("mask-dialog").close();
      painting = null;
      showView("create");
      addJob(result.job, result);
    } catch (failure) {
      showError(error, failure);
    } finally {
      button.disabled = false;
    }
  }

  function jobBody(job, extra) {
    const nodes = [];
    const errorNode = el("p", { class: "error", role: "alert", hidden: true });
    if (job.status === "failed" && job.error) showError(errorNode, job.error);
    if (ACTIVE.has(job.status)) {
      nodes.push(el("div", { class: "progress" },
        el("progress", { max: job.steps || 1, value: 0 }),
        el("span", { class: "step", text: job.status === "running" ? "Starting…" : "" }),
        el("button", { type: "button", text: "Cancel", onclick: () => runAction(job, "cancel", null, null, errorNode) })));
      nodes.push(el("img", { class: "preview", alt: "Preview", hidden: true }));
    }
    if (job.images && job.images.length) {
      const figures = job.images.map((url, i) => figure(job, url, i));
      nodes.push(el("div", { class: "images" }, figures));
      if (figures.length > 1) nodes.push(thumbStrip(job, figures));
    }
    nodes.push(errorNode);
    return nodes;
  }

  // The current result shows one image of a batch large; the others are thumbnails to pick.
  function thumbStrip(job, figures) {
    const buttons = job.images.map((url, i) => el("button", {
      type: "button", "aria-pressed": String(i === 0), "aria-label": `Show image ${i + 1}`,
      onclick: () => {
        figures.forEach((figureNode, j) => figureNode.classList.toggle("unselected", j !== i));
        buttons.forEach((button, j) => button.setAttribute("aria-pressed", String(j === i)));
      },
    }, el("img", { src: url, alt: "", loading: "lazy" })));
    figures.forEach((figureNode, j) => figureNode.classList.toggle("unselected", j !== 0));
    return el("div", { class: "thumbs", role: "group", "aria-label": "Images of this job" }, buttons);
  }

  function renderCard(card, job, extra) {
    card.dataset.status = job.status;
    card._job = job;
    const status = el("span", { class: `job-status ${job.status}`, text: statusLine(job, extra) });
    card.replaceChildren(
      el("div", { class: "job-head" },
        el("span", { class: "job-prompt", text: job.prompt || "(no prompt)" }),
        modeTag(job) ? el("span", { class: "mode-tag", text: modeTag(job) }) : null,
        status),
      el("div", { class: "job-status", text: describe(job) }),
      ...jobBody(job, extra));
  }

  function remember() {
    const ids = [...state.mine.keys()].slice(-KEEP_JOBS);
    try { sessionStorage.setItem("easel.jobs", JSON.stringify(ids)); } catch (e) { /* private mode */ }
  }

  // The newest job is the current result (beside the form); the one it replaces moves to the
  // top of "earlier in this tab".
  function showAsCurrent(card) {
    const current = $("current");
    for (const old of current.querySelectorAll("article.job")) {
      if (old !== card) $("gallery").prepend(old);
    }
    current.append(card);
    $("current-empty").hidden = true;
    $("earlier-title").hidden = !$("gallery").children.length;
  }

  function addJob(job, extra, { reveal = true } = {}) {
    let card = state.mine.get(job.id);
    if (!card) {
      card = el("article", { class: "job", "data-job": job.id });
      state.mine.set(job.id, card);
      remember();
    }
    showAsCurrent(card);
    renderCard(card, job, extra);
    noteStatus(job);
    // The server may have reported this job over the event stream before the POST answered.
    const seen = state.seen.get(job.id);
    if (seen && RANK[seen.status] > RANK[job.status]) {
      renderCard(card, seen);
      noteStatus(seen);
    }
    // One column (a phone): the result is below the form, so bring it into view.
    if (reveal && window.matchMedia("(max-width: 900px)").matches) {
      card.scrollIntoView({ block: "start", behavior: "smooth" });
    }
    return card;
  }

  function updateJob(job, extra) {
    state.seen.set(job.id, job);
    if (state.seen.size > 200) state.seen.delete(state.seen.keys().next().value);
    const card = state.mine.get(job.id);
    noteStatus(job);
    if (!card) return;
    const previous = card._job;
    if (previous && RANK[previous.status] > RANK[job.status]) return; // a stale answer
    if (previous && previous.status === "running" && job.status === "running") return;
    renderCard(card, job, extra);
    if (job.status === "succeeded" && job.image_seeds && job.image_seeds.length) {
      state.lastSeed = job.image_seeds[0];
    } else if (job.status === "succeeded" && job.seed !== null && job.seed !== undefined) {
      state.lastSeed = job.seed;
    }
  }

  function showProgress(data) {
    const card = state.mine.get(data.job_id);
    if (!card || RANK[card.dataset.status] === 2) return;
    if (card.dataset.status === "queued") {
      const job = Object.assign({}, card._job, { status: "running" });
      renderCard(card, job);
    }
    const bar = card.querySelector("progress");
    const step = card.querySelector(".step");
    const status = card.querySelector(".job-head .job-status");
    if (bar) { bar.max = data.total || 1; bar.value = data.step || 0; }
    if (step) step.textContent = `Step ${data.step} / ${data.total}`;
    if (status) status.textContent = statusLine({ status: "running" }, data);
    const preview = card.querySelector(".preview");
    if (preview && data.preview) {
      preview.src = data.preview;
      preview.hidden = false;
    }
  }

  async function refreshMine(onlyActive) {
    const ids = [...state.mine.entries()]
      .filter(([, card]) => !onlyActive || ACTIVE.has(card.dataset.status))
      .map(([id]) => id);
    await Promise.all(ids.map(async (id) => {
      try {
        const job = await api("GET", `/api/jobs/${encodeURIComponent(id)}`);
        updateJob(job, job.status === "queued" ? job : undefined);
      } catch (error) {
        if (error.status === 404) {
          state.mine.get(id)?.remove();
          state.mine.delete(id);
          remember();
          const current = $("current").querySelector("article.job");
          if (!current && $("gallery").firstElementChild) showAsCurrent($("gallery").firstElementChild);
          $("current-empty").hidden = !!$("current").querySelector("article.job");
          $("earlier-title").hidden = !$("gallery").children.length;
        }
      }
    }));
  }

  async function restoreMine() {
    let ids = [];
    try { ids = JSON.parse(sessionStorage.getItem("easel.jobs") || "[]"); } catch (e) { ids = []; }
    const jobs = await Promise.all(ids.map((id) => api("GET", `/api/jobs/${encodeURIComponent(id)}`).catch(() => null)));
    for (const job of jobs) if (job && !state.mine.has(job.id)) addJob(job, job, { reveal: false });
  }

  // ------------------------------------------------------------------ live events

  function noteStatus(job) {
    // A list fetched before a job finished can arrive after its "finished" event: keep the end.
    const known = state.ranks.get(job.id);
    if (known !== undefined && RANK[job.status] < known) return;
    state.ranks.set(job.id, RANK[job.status]);
    if (state.ranks.size > 1000) state.ranks.delete(state.ranks.keys().next().value);
    state.queued.delete(job.id);
    state.running.delete(job.id);
    if (job.status === "queued") state.queued.add(job.id);
    if (job.status === "running") state.running.add(job.id);
    renderFooter();
  }

  function renderFooter() {
    const waiting = state.queued.size;
    const running = state.running.size;
    $("queue-length").textContent = waiting + running === 0
      ? "empty"
      : `${waiting} waiting, ${running} running`;
  }

  let refreshTimer = null;
  function refreshPositionsSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refreshMine(true), 150);
  }

  async function loadQueue() {
    try {
      const data = await api("GET", "/api/jobs?limit=100&offset=0");
      for (const job of data.jobs || []) if (ACTIVE.has(job.status)) noteStatus(job);
      renderFooter();
    } catch (error) {
      /* the footer is informative only */
    }
  }

  function connectEvents() {
    if (!window.EventSource) {
      $("conn-state").textContent = "· this browser cannot show live progress";
      return;
    }
    const source = new EventSource("/api/events");
    const parse = (event) => { try { return JSON.parse(event.data); } catch (e) { return null; } };
    let everOpen = false;
    source.addEventListener("open", () => {
      $("conn-state").textContent = "";
      $("conn-state").className = "";
      if (everOpen) { refreshMine(true); loadQueue(); }
      everOpen = true;
    });
    source.addEventListener("error", () => {
      $("conn-state").textContent = "· reconnecting…";
      $("conn-state").className = "bad";
    });
    source.addEventListener("queued", (event) => {
      const data = parse(event);
      if (data && data.job) updateJob(data.job, data);
    });
    source.addEventListener("started", (event) => {
      const data = parse(event);
      if (!data || !data.job) return;
      updateJob(data.job, data);
      refreshPositionsSoon();
    });
    source.addEventListener("progress", (event) => {
      const data = parse(event);
      if (data) showProgress(data);
    });
    source.addEventListener("finished", (event) => {
      const data = parse(event);
      if (!data || !data.job) return;
      updateJob(data.job, data);
      refreshPositionsSoon();
    });
  }

  // ------------------------------------------------------------------ history

  function params(job) {
    const rows = [
      ["Status", job.status], ["Action", job.action], ["Mode", job.mode], ["Prompt", job.prompt],
      ["Negative prompt", job.negative_prompt], ["Model", job.model], ["Sampler", job.sampler],
      ["Size", job.width && job.height ? `${job.width}×${job.height}` : null], ["Steps", job.steps],
      ["CFG", job.cfg], ["Seed", job.seed],
      ["Image seeds", job.image_seeds && job.image_seeds.length ? job.image_seeds.join(", ") : null],
      ["Count", job.count], ["Strength", job.strength],
      ["Parent", job.parent_id ? `${job.parent_id} #${(job.parent_index ?? 0) + 1}` : null],
      ["Created", when(job.created_at)], ["Finished", when(job.finished_at)], ["Error", job.error],
      ["Job id", job.id],
    ];
    return el("dl", { class: "params" },
      rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
        .map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  }

  function closeDialog() {
    const dialog = $("job-dialog");
    if (dialog.open) dialog.close();
  }

  function openJob(job) {
    const dialog = $("job-dialog");
    const errorNode = el("p", { class: "error", role: "alert", hidden: true });
    const buttons = el("div", { class: "actions" },
      el("button", { type: "button", class: "primary", text: "Use these settings", onclick: () => useSettings(job) }),
      el("button", { type: "button", text: "Run again", title: "The same job, same seeds", onclick: () => runAction(job, "rerun", null, null, errorNode) }),
      el("button", { type: "button", text: "Copy parameters", onclick: (e) => copyText(infoText(job, 0), e.currentTarget) }),
      ACTIVE.has(job.status)
        ? el("button", { type: "button", text: "Cancel", onclick: async () => { await runAction(job, "cancel", null, null, errorNode); closeDialog(); loadHistory(); } })
        : null);
    $("job-dialog-title").textContent = job.prompt || "Job";
    $("job-dialog-body").replaceChildren(
      buttons,
      errorNode,
      job.images && job.images.length
        ? el("div", { class: "images" }, job.images.map((url, i) => figure(job, url, i)))
        : null,
      params(job));
    if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
  }

  async function loadHistory() {
    const list = $("history-list");
    const error = $("history-error");
    showError(error, null);
    const { offset, q } = state.history;
    const query = new URLSearchParams({ limit: String(HISTORY_LIMIT), offset: String(offset) });
    if (q) query.set("q", q);
    try {
      const data = await api("GET", `/api/jobs?${query}`);
      const jobs = data.jobs || [];
      list.replaceChildren(...jobs.map((job) => el("li", { "data-job": job.id },
        el("button", { type: "button", class: "history-item", onclick: () => openJob(job) },
          job.images && job.images.length
            ? el("img", { src: job.images[0], alt: "", loading: "lazy" })
            : el("span", { class: "thumb" }),
          el("span", { class: "meta" },
            el("span", { class: "line", text: job.prompt || "(no prompt)" }),
            el("span", { class: "line sub", text: [job.status, when(job.created_at), describe(job), job.seed !== null && job.seed !== undefined ? `seed ${job.seed}` : null].filter(Boolean).join(" · ") }))))));
      if (!jobs.length) list.replaceChildren(el("li", { class: "empty", text: q ? `Nothing matches “${q}”.` : "No jobs yet." }));
      $("history-prev").disabled = offset === 0;
      $("history-next").disabled = jobs.length < HISTORY_LIMIT;
      $("history-page").textContent = `Page ${Math.floor(offset / HISTORY_LIMIT) + 1}`;
    } catch (failure) {
      showError(error, failure);
    }
  }

  // ------------------------------------------------------------------ views and wiring

  function showView(name) {
    for (const view of ["create", "history"]) {
      $(`view-${view}`).hidden = view !== name;
      $(`tab-${view}`).setAttribute("aria-selected", String(view === name));
    }
    const hash = name === "history" ? "#history" : "";
    if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
    if (name === "history") loadHistory();
  }

  function wire() {
    $("draw-form").addEventListener("submit", submitDraw);
    $("draw-form").addEventListener("input", saveForm);
    $("draw-form").addEventListener("change", saveForm);
    $("form-reset").addEventListener("click", resetForm);
    $("mask-submit").addEventListener("click", submitMask);
    $("paint-region").addEventListener("click", openUploadPainter);
    $("clear-region").addEventListener("click", () => setUploadMask(null));
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("draw-form").requestSubmit();
    });
    for (const radio of document.querySelectorAll('input[name="mode"]')) {
      radio.addEventListener("change", () => setMode(mode()));
    }
    $("model").addEventListener("change", refreshModelHints);
    $("size").addEventListener("change", () => { $("custom-size").hidden = $("size").value !== "custom"; });
    $("seed-random").addEventListener("click", () => { $("seed").value = -1; saveForm(); });
    $("seed-reuse").addEventListener("click", () => {
      if (state.lastSeed !== null) $("seed").value = state.lastSeed;
      saveForm();
    });
    $("strength").addEventListener("input", () => { $("strength-out").value = Number($("strength").value).toFixed(2); });
    $("init-file").addEventListener("change", async () => {
      const file = $("init-file").files[0];
      const preview = $("init-preview");
      initImage = null;
      preview.hidden = true;
      setUploadMask(null);
      showError($("form-error"), null);
      if (!file) return;
      try {
        initImage = await readImage(file);
        preview.src = initImage;
        preview.hidden = false;
        setUploadMask(null);
      } catch (error) {
        showError($("form-error"), error);
      }
    });
    for (const tab of document.querySelectorAll(".tabs button")) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
    }
    let searchTimer = null;
    const search = () => {
      state.history.q = $("history-q").value.trim();
      state.history.offset = 0;
      loadHistory();
    };
    $("history-search").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(searchTimer); search(); });
    $("history-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 300); });
    $("history-prev").addEventListener("click", () => {
      state.history.offset = Math.max(0, state.history.offset - HISTORY_LIMIT);
      loadHistory();
    });
    $("history-next").addEventListener("click", () => {
      state.history.offset += HISTORY_LIMIT;
      loadHistory();
    });
    window.addEventListener("hashchange", () => showView(location.hash === "#history" ? "history" : "create"));
  }

  wire();
  showView(location.hash === "#history" ? "history" : "create");
  connectEvents();
  loadModels();
  loadStyles();
  loadQueue();
  restoreMine();
  watchLoading();
})();
