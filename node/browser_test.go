package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node/dashboard"
)

// chromium finds a Chromium binary: $ZOPEER_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH.
func chromium() string {
	if p := os.Getenv("ZOPEER_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns Chromium's path, or skips the test without one
// (fails it in CI, where .ci/browser installs it).
func needChromium(t *testing.T) string {
	t.Helper()
	bin := chromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium in CI: .ci/browser installs it (apt-get install chromium)")
		}
		t.Skip("no Chromium found (chromium, chromium-browser, google-chrome or $ZOPEER_CHROMIUM): dashboard browser test skipped")
	}
	return bin
}

// headless runs Chromium headless on url with args; virtual time lets the
// page's polling run before the DOM is dumped or the screenshot taken.
func headless(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=8000", "--window-size=1280,1600", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return out
}

// The dashboard of a live two-peer run, loaded in a real headless browser,
// draws the eval-loss curve and lists the other peer; a screenshot is kept
// in $ZOPEER_ARTIFACTS (default: a temporary directory). Run by
// .ci/browser; skipped without Chromium unless $CI is set.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("a live two-peer run in a browser")
	}
	bin := needChromium(t)
	_, a, b := twoPeers(t)
	url := "http://" + a.api + "/"
	dom := string(headless(t, bin, url, "--dump-dom"))

	m := regexp.MustCompile(`<svg id="chart"[^>]*data-points="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no chart with points in the rendered page:\n%.3000s", dom)
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Fatalf("the chart shows %d points; want the ≥2 evaluations of the run", n)
	}
	if !regexp.MustCompile(`<path id="curve" d="M[\d.]+,[\d.]+L`).MatchString(dom) {
		t.Fatal("the curve has no line")
	}
	bst := b.status(t)
	if !regexp.MustCompile(`<tr class="peer"><td class="mono">` + bst.Machine).MatchString(dom) {
		t.Fatalf("the peers table lacks b (%s):\n%.3000s", bst.Machine, dom)
	}
	if !regexp.MustCompile(`id="state" class="badge (training|serving)"`).MatchString(dom) {
		t.Fatal("the state badge is not rendered")
	}

	dir := os.Getenv("ZOPEER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, _ := filepath.Abs(filepath.Join(dir, "dashboard.png"))
	headless(t, bin, url, "--screenshot="+shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// A joiner's dashboard shows its snapshot join: the state, the votes, the
// updates, the donors, the replay check and the donors it refused. The page
// is served with a canned status (a join that refused a donor), so the test
// needs no live run. Run by .ci/browser.
func TestDashboardShowsSnapshotJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("a browser")
	}
	bin := needChromium(t)
	st := Status{State: "training", Run: "r", Snapshot: &SnapshotStatus{State: "installed", Votes: 3, Donors: []string{"12D3KooWHonest"},
		Refused: []string{"12D3KooWCorrupt"}, Updates: 640, Seconds: 2.4, Verify: "verified"}}
	mux := http.NewServeMux()
	mux.Handle("/", dashboard.Handler())
	mux.HandleFunc("/api/status", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(st) })
	mux.HandleFunc("/api/peers", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[]")) })
	mux.HandleFunc("/api/history", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"points":[]}`)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dom := string(headless(t, bin, srv.URL+"/", "--dump-dom"))
	want := `joining by snapshot: <span id="snaptext">installed, 3 votes, 640 updates, from 1 donors in 2s, replay check: verified; refused 1 donors: 12D3KooWCorrupt</span>`
	if !strings.Contains(dom, want) {
		i := strings.Index(dom, `id="snapshot"`)
		t.Fatalf("the dashboard does not show the snapshot join as\n%s\ngot:\n%.400s", want, dom[max(0, i):])
	}
}
