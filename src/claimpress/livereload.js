// Added to pages only by `claimpress serve`: reload the page when the site is rebuilt.
// The server writes the version this page was built from into the script it serves.
(() => {
  const built = CLAIMPRESS_VERSION;
  async function poll() {
    try {
      const response = await fetch("/_claimpress/version", { cache: "no-store" });
      if ((await response.text()) !== built) {
        location.reload();
        return;
      }
    } catch {
      // The server is restarting or stopped: keep trying quietly.
    }
    setTimeout(poll, 250);
  }
  setTimeout(poll, 250);
})();
