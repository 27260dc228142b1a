"""Checks run inside the page (JavaScript for ``page.evaluate``) and the axe-core audit.

Each returns a list of what is wrong, so a failing test says which control and by how much.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import Page

#: WCAG 2.5.5: a control is at least 44 x 44 CSS pixels. A radio or checkbox counts by its label.
TOO_SMALL_TO_TOUCH = """() => {
  const small = [];
  const controls = 'button, a[href], select, input, textarea';
  for (const node of document.querySelectorAll(controls)) {
    if (node.closest('.offscreen') || !node.checkVisibility()) continue;
    const target = node.matches('input[type=radio], input[type=checkbox]')
      ? node.closest('label') || node : node;
    const box = target.getBoundingClientRect();
    if (box.width < 44 || box.height < 44) {
      const name = node.id || node.getAttribute('aria-label') || node.textContent.trim();
      const size = `${Math.round(box.width)}x${Math.round(box.height)}`;
      small.push(`${node.tagName.toLowerCase()} "${name}" ${size}`);
    }
  }
  return small;
}"""

#: A menu whose longest choice does not fit its closed box (the arrow takes ~24 px).
CUT_MENUS = """() => {
  const cut = [];
  const context = document.createElement('canvas').getContext('2d');
  for (const select of document.querySelectorAll('select')) {
    if (!select.checkVisibility()) continue;
    const style = getComputedStyle(select);
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const room = select.clientWidth - padding - 24;
    for (const option of select.options) {
      const needs = context.measureText(option.text).width;
      const text = `#${select.id} "${option.text}"`;
      if (needs > room) cut.push(`${text}: ${Math.ceil(needs)} px in ${Math.floor(room)}`);
    }
  }
  return cut;
}"""

#: Words split across two lines inside the elements matching ``selector`` ("Kin / d").
BROKEN_WORDS = """(selector) => {
  const broken = [];
  for (const cell of document.querySelectorAll(selector)) {
    if (!cell.checkVisibility() || cell.getBoundingClientRect().width <= 1) continue;
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""


async def serious_accessibility_violations(page: Page) -> list[tuple[str, str, Any]]:
    """axe-core's serious and critical findings on the page as it is now (rule, impact, where)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        (violation["id"], violation["impact"], [node["target"] for node in violation["nodes"]][:5])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
