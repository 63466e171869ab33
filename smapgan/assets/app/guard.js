// smapgan app: an image editor's upload guard (one hidden gr.HTML per editor; `props.config` is the
// editor's elem_id). A file the browser cannot draw would leave the editor a blank canvas that takes
// strokes and runs "successfully" on white. So a file picked or dropped into the editor is decoded
// here first: a readable one goes on to the editor unchanged; any other is kept from it and sent to
// the server, whose decoder says why in the tab's status line, as it does for plain uploads.
const editorId = props.config;
const passed = new WeakSet();  // the events this guard sends on to the editor

async function drawable(file) {
  try {
    (await createImageBitmap(file)).close();
    return true;
  } catch (error) {
    return false;
  }
}

// The editor is emptied (its own "Clear canvas", hidden from people by ui.css: it drops the picture).
async function refuse(file) {
  const root = document.getElementById(editorId);
  const clear = root && root.querySelector('button[aria-label="Clear canvas"]');
  if (clear) clear.click();
  const { path } = await upload(file);
  trigger("submit", { path, name: file.name });
}

function guard(kind, event, file, pass) {
  const root = document.getElementById(editorId);
  if (!root || !root.contains(event.target) || passed.has(event) || !file) return;
  event.stopImmediatePropagation();
  event.preventDefault();
  drawable(file).then((ok) => {
    if (ok) {
      const again = pass();
      passed.add(again);
      event.target.dispatchEvent(again);
    } else {
      if (kind === "change") event.target.value = "";
      refuse(file);
    }
  });
}

document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
  guard("change", event, input.files && input.files[0], () => new Event("change", { bubbles: true }));
}, true);

document.addEventListener("drop", (event) => {
  const file = event.dataTransfer && event.dataTransfer.files[0];
  guard("drop", event, file, () => {
    const carried = new DataTransfer();  // the original is emptied once its event has been handled
    carried.items.add(file);
    return new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: carried });
  });
}, true);
