// Added to pages only by `claimpress serve`: reload the page when it changes.
// The server writes the site's version when this page was served into the script it
// serves, and answers with the version of this page's own file: the page reloads when
// that file changed since, not when any other file did.
(() => {
  const built = CLAIMPRESS_VERSION;
  const url = "/_claimpress/version?page=" + encodeURIComponent(location.pathname);
  async function poll() {
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (Number(await response.text()) > Number(built)) {
        location.reload();
        return;
      }
    } catch {
      // The server is restarting or stopped: keep trying quietly.
    }
    setTimeout(poll, 100);
  }
  setTimeout(poll, 100);
})();
