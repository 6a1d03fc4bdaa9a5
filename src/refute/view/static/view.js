// refute view: keyboard shortcuts for labelling, and picking two runs to compare. No framework.
"use strict";
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
  if (document.body.dataset.page !== "label") return;
  const button = document.querySelector(`button[data-key="${CSS.escape(event.key)}"]`);
  if (button) {
    event.preventDefault();
    button.disabled = false;
    button.click();
  }
});

// runs page: the ticked runs in the order they were ticked; A is the first
(() => {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const order = [];
  form.querySelectorAll("input.pick").forEach((box) => {
    box.addEventListener("change", () => {
      const i = order.indexOf(box.value);
      if (i >= 0) order.splice(i, 1);
      if (box.checked) order.push(box.value);
    });
  });
  form.addEventListener("submit", (event) => {
    if (order.length !== 2) {
      event.preventDefault();
      alert("Tick exactly two runs to compare (A is the first ticked).");
      return;
    }
    document.getElementById("compare-a").value = order[0];
    document.getElementById("compare-b").value = order[1];
  });
})();
