// Package dashboard is the live dashboard a peer serves at / on its API
// address: one self-contained page (no CDN, no external fonts or scripts)
// that polls /api/status, /api/peers and /api/history.
package dashboard

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Page returns the dashboard's HTML.
func Page() []byte { return page }

// Handler serves the page.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
		w.Write(page)
	})
}
