package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A web page cannot make a peer write files: the export endpoint refuses
// simple cross-origin requests, rebound host names and foreign origins
// before it reads the body.
func TestExportRefusesWebPages(t *testing.T) {
	d := &Daemon{exportC: make(chan exportReq)}
	cases := []struct {
		name, host, ctype, origin string
		want                      int
	}{
		{"simple cross-origin POST", "127.0.0.1:7070", "text/plain", "", http.StatusUnsupportedMediaType},
		{"form POST", "127.0.0.1:7070", "application/x-www-form-urlencoded", "http://evil.example", http.StatusUnsupportedMediaType},
		{"DNS rebinding", "evil.example:7070", "application/json", "", http.StatusForbidden},
		{"foreign origin", "127.0.0.1:7070", "application/json", "http://evil.example", http.StatusForbidden},
		{"a local client, bad body", "127.0.0.1:7070", "application/json", "", http.StatusBadRequest},
		{"localhost, own origin, bad body", "localhost:7070", "application/json; charset=utf-8", "http://localhost:7070", http.StatusBadRequest},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/api/export", strings.NewReader(`{"out": "relative"}`))
		r.Host = c.host
		r.Header.Set("Content-Type", c.ctype)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		w := httptest.NewRecorder()
		d.handleExport(w, r)
		if w.Code != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, w.Code, c.want, strings.TrimSpace(w.Body.String()))
		}
	}
}
