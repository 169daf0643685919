// Added to pages only by `claimpress serve`: reload the page when it changes.
// The server sends the version of the page's file with the page (a Server-Timing
// header, read before the file was), and answers with that file's version as it
// changes: the page reloads when that file changed since, not when any other file did.
// Where the header cannot be read, the site's version when this script was served
// stands in (a page rewritten between the two requests then stays as it was).
(() => {
  const navigation = performance.getEntriesByType("navigation")[0];
  const mark = (navigation?.serverTiming || []).find((entry) => entry.name === "claimpress");
  const built = mark ? mark.description : CLAIMPRESS_VERSION;
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
