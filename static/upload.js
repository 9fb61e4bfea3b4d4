// Drag-and-drop anywhere on the page, or paste an image, to search with it.
(function () {
  const form = document.getElementById("search-form");
  const input = document.getElementById("image-input");
  if (!form || !input) return;

  function searchWith(file) {
    if (!file || !file.type.startsWith("image/")) return;
    const files = new DataTransfer();
    files.items.add(file);
    input.files = files.files;
    form.submit();
  }

  input.addEventListener("change", () => { if (input.files.length) form.submit(); });
  window.addEventListener("dragover", (event) => { event.preventDefault(); document.body.classList.add("dragging"); });
  window.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    searchWith(event.dataTransfer.files[0]);
  });
  window.addEventListener("paste", (event) => {
    for (const item of event.clipboardData.items) {
      if (item.kind === "file" && item.type.startsWith("image/")) { searchWith(item.getAsFile()); return; }
    }
  });
})();

// The duplicates page: decide about a group (POST /duplicates/decisions) or undo a decision
// (DELETE /duplicates/decisions/<id>) with the typed admin token; the group leaves the list.
(function () {
  const send = async (button, method, url, body) => {
    const group = button.closest(".copy-group");
    const status = group.querySelector(".decide-status");
    const token = document.getElementById("admin-token").value;
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    const reply = await fetch(url, { method, headers, body: body && JSON.stringify(body) });
    const answer = await reply.json().catch(() => ({}));
    if (reply.ok) {
      group.classList.add("decided");
      group.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      status.textContent = method === "POST" ? `decided (${answer.decision}, #${answer.id})` : "undone";
    } else {
      status.textContent = answer.error || `failed (${reply.status})`;  // errors answer {error, code}
    }
  };
  document.querySelectorAll(".decide-group").forEach((button) => {
    button.addEventListener("click", () => {
      const ids = button.closest(".copy-group").dataset.ids.split(",").map(Number);
      send(button, "POST", "/duplicates/decisions", { ids, decision: button.dataset.decision });
    });
  });
  document.querySelectorAll(".undo-decision").forEach((button) => {
    button.addEventListener("click", () => {
      send(button, "DELETE", `/duplicates/decisions/${button.dataset.decisionId}`);
    });
  });
})();

// The duplicates page: delete one copy through DELETE /images/<id> with the typed admin token.
document.querySelectorAll(".delete-copy").forEach((button) => {
  button.addEventListener("click", async () => {
    const token = document.getElementById("admin-token").value;
    const reply = await fetch(`/images/${button.dataset.id}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    if (reply.ok) {
      document.getElementById(`copy-${button.dataset.id}`).remove();
    } else {
      const body = await reply.json().catch(() => ({}));
      button.textContent = body.error || `failed (${reply.status})`;  // errors answer {error, code}
    }
  });
});

// Region search: drag a box over the query image, then search with that part of it. An indexed
// image is searched by id and box (the server cuts its full file); an upload, by its preview.
(function () {
  const wrap = document.getElementById("query-wrap");
  const image = document.getElementById("query-image");
  const frame = document.getElementById("region-box");
  const button = document.getElementById("region-search");
  if (!wrap || !image || !frame || !button) return;
  let start = null;
  let region = null;
  const at = (event) => {
    const r = image.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (event.clientX - r.left) / r.width)),
            Math.min(1, Math.max(0, (event.clientY - r.top) / r.height))];
  };
  const draw = (a, b) => {
    const [x, y, w, h] = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])];
    Object.assign(frame.style, { left: `${x * 100}%`, top: `${y * image.height / wrap.clientHeight * 100}%`,
                                 width: `${w * 100}%`, height: `${h * image.height / wrap.clientHeight * 100}%` });
    frame.hidden = false;
    return [x, y, w, h];
  };
  wrap.addEventListener("pointerdown", (event) => { start = at(event); wrap.setPointerCapture(event.pointerId); });
  wrap.addEventListener("pointermove", (event) => { if (start) draw(start, at(event)); });
  wrap.addEventListener("pointerup", (event) => {
    if (!start) return;
    region = draw(start, at(event));
    start = null;
    button.hidden = !(region[2] > 0.03 && region[3] > 0.03);
  });
  // An upload is not stored: its preview (already on the page) is posted again, with a box or an offset.
  async function postPreview(box, offset) {
    const blob = await (await fetch(image.src)).blob();
    const files = new DataTransfer();
    files.items.add(new File([blob], "query.jpg", { type: blob.type }));
    document.getElementById("region-image").files = files.files;
    document.getElementById("region-field").value = box;
    document.getElementById("offset-field").value = offset;
    document.getElementById("region-form").submit();
  }
  button.addEventListener("click", () => {
    const box = region.map((v) => v.toFixed(4)).join(",");
    if (wrap.dataset.id) {
      window.location = `/search?id=${wrap.dataset.id}&k=${wrap.dataset.k}&box=${box}`;
    } else {
      postPreview(box, 0);
    }
  });
  const more = document.querySelector("button#more-results");
  if (more) more.addEventListener("click", () => postPreview("", more.dataset.offset));
})();
