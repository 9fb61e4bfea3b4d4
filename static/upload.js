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

// The duplicates page: delete a copy through DELETE /images/<id> with the typed admin token.
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
      button.textContent = body.message || `failed (${reply.status})`;
    }
  });
});
