// Connect a client: the key stays masked on screen until revealed; copying a snippet copies it
// with the real key in it.
import { $, $$, api, copyText, ready, t, tabs } from "./core.js";

let key = null;

async function realKey() {
  key ??= (await api("GET", "/admin/server-key")).api_key;
  return key;
}

function withKey(node, value) {
  const copy = node.cloneNode(true);
  for (const slot of $$(".key-slot", copy)) slot.textContent = value;
  return copy.textContent;
}

tabs($("#setup"));

$("#key-reveal")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const shown = button.getAttribute("aria-pressed") === "true";
  const value = shown ? $("#api-key").dataset.masked : await realKey();
  $("#api-key").textContent = value;
  for (const slot of $$(".key-slot")) slot.textContent = value;
  button.setAttribute("aria-pressed", String(!shown));
  $("span", button).textContent = shown ? t("ui.show") : t("ui.hide");
});

$("#key-copy")?.addEventListener("click", async () => copyText(await realKey()));

for (const button of $$("[data-copy]")) {
  button.addEventListener("click", async () => {
    const pre = $("pre", document.getElementById(button.dataset.copy));
    copyText($(".key-slot", pre) && $("#api-key") ? withKey(pre, await realKey()) : pre.textContent);
  });
}

for (const button of $$("[data-copy-text]")) {
  button.addEventListener("click", () => copyText(button.dataset.copyText));
}
ready();
