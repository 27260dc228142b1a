// Easel's mask painter: paint over the part of a picture to repaint (white in the mask the
// server receives), with a brush, an eraser, a brush size, invert, clear and undo. Pointer
// events, so a mouse, a pen and a finger all paint (the canvas takes touches instead of
// scrolling). Plain JavaScript; adds ``Easel.MaskPainter`` to the global ``Easel``.
"use strict";

(() => {
  const { el } = window.Easel;
  const UNDO_DEPTH = 20;

  class MaskPainter {
    // ``imageUrl``: the picture; ``width`` x ``height``: its pixels (the mask's size).
    constructor(imageUrl, width, height) {
      this.width = width;
      this.height = height;
      this.erasing = false;
      this.size = Math.max(4, Math.round(Math.min(width, height) / 10));
      this.undoStack = [];
      this.mask = el("canvas", { width, height }); // black = keep, white = repaint
      this.maskContext = this.mask.getContext("2d", { willReadFrequently: true });
      this.clearMask();
      this.overlay = el("canvas", { width, height, class: "mask-overlay", "aria-hidden": "true" });
      this.overlayContext = this.overlay.getContext("2d");
      this.picture = el("img", { src: imageUrl, alt: "The picture to repaint", class: "mask-picture" });
      this.stage = el("div", { class: "mask-stage" }, this.picture, this.overlay);
      this.sizeInput = el("input", {
        type: "range", min: 2, max: Math.max(8, Math.round(Math.max(width, height) / 2)),
        value: this.size, "aria-label": "Brush size",
        oninput: () => { this.size = Number(this.sizeInput.value); },
      });
      this.brushButton = el("button", { type: "button", "aria-pressed": "true", text: "Brush",
        onclick: () => this.setErasing(false) });
      this.eraserButton = el("button", { type: "button", "aria-pressed": "false", text: "Eraser",
        onclick: () => this.setErasing(true) });
      this.undoButton = el("button", { type: "button", text: "Undo", disabled: true,
        onclick: () => this.undo() });
      this.tools = el("div", { class: "mask-tools", role: "toolbar", "aria-label": "Mask tools" },
        this.brushButton, this.eraserButton,
        el("label", { class: "mask-size" }, "Size ", this.sizeInput),
        el("button", { type: "button", text: "Invert", onclick: () => this.invert() }),
        el("button", { type: "button", text: "Clear", onclick: () => this.clear() }),
        this.undoButton);
      this.node = el("div", { class: "mask-painter" }, this.tools, this.stage);
      this.node.maskPainter = this; // the painter of a node on the page (tests read its mask)
      this.wirePointer();
    }

    setErasing(erasing) {
      this.erasing = erasing;
      this.brushButton.setAttribute("aria-pressed", String(!erasing));
      this.eraserButton.setAttribute("aria-pressed", String(erasing));
    }

    clearMask() {
      this.maskContext.fillStyle = "#000";
      this.maskContext.fillRect(0, 0, this.width, this.height);
    }

    // Where a pointer event falls, in the picture's pixels (the canvas is shown scaled).
    point(event) {
      const box = this.overlay.getBoundingClientRect();
      return {
        x: ((event.clientX - box.left) / box.width) * this.width,
        y: ((event.clientY - box.top) / box.height) * this.height,
      };
    }

    wirePointer() {
      let last = null;
      const stroke = (from, to) => {
        const context = this.maskContext;
        context.strokeStyle = context.fillStyle = this.erasing ? "#000" : "#fff";
        context.lineWidth = this.size;
        context.lineCap = context.lineJoin = "round";
        context.beginPath();
        context.moveTo(from.x, from.y);
        context.lineTo(to.x, to.y);
        context.stroke();
        context.beginPath();
        context.arc(to.x, to.y, this.size / 2, 0, 2 * Math.PI);
        context.fill();
        this.redraw();
      };
      this.overlay.addEventListener("pointerdown", (event) => {
        event.preventDefault();
        this.remember();
        this.overlay.setPointerCapture(event.pointerId);
        last = this.point(event);
        stroke(last, last);
      });
      this.overlay.addEventListener("pointermove", (event) => {
        if (last === null) return;
        const next = this.point(event);
        stroke(last, next);
        last = next;
      });
      const end = () => { last = null; };
      this.overlay.addEventListener("pointerup", end);
      this.overlay.addEventListener("pointercancel", end);
    }

    // The overlay shows the mask's white parts in translucent red over the picture.
    redraw() {
      const source = this.maskContext.getImageData(0, 0, this.width, this.height);
      const shown = this.overlayContext.createImageData(this.width, this.height);
      for (let i = 0; i < source.data.length; i += 4) {
        if (source.data[i] < 128) continue;
        shown.data[i] = 255;
        shown.data[i + 1] = 64;
        shown.data[i + 2] = 64;
        shown.data[i + 3] = 140;
      }
      this.overlayContext.putImageData(shown, 0, 0);
    }

    remember() {
      this.undoStack.push(this.maskContext.getImageData(0, 0, this.width, this.height));
      if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
      this.undoButton.disabled = false;
    }

    undo() {
      const previous = this.undoStack.pop();
      if (previous) this.maskContext.putImageData(previous, 0, 0);
      this.undoButton.disabled = this.undoStack.length === 0;
      this.redraw();
    }

    invert() {
      this.remember();
      const data = this.maskContext.getImageData(0, 0, this.width, this.height);
      for (let i = 0; i < data.data.length; i += 4) {
        const value = data.data[i] < 128 ? 255 : 0;
        data.data[i] = data.data[i + 1] = data.data[i + 2] = value;
        data.data[i + 3] = 255;
      }
      this.maskContext.putImageData(data, 0, 0);
      this.redraw();
    }

    clear() {
      this.remember();
      this.clearMask();
      this.redraw();
    }

    // The share of the picture painted (0..1): 0 means nothing to repaint.
    coverage() {
      const data = this.maskContext.getImageData(0, 0, this.width, this.height).data;
      let painted = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] >= 128) painted += 1;
      return painted / (this.width * this.height);
    }

    // The mask as the server takes it: a black-and-white PNG the picture's size.
    toDataUrl() {
      return this.mask.toDataURL("image/png");
    }
  }

  window.Easel.MaskPainter = MaskPainter;
})();
