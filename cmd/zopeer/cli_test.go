package main

import (
	"time"

	"github.com/zopeer/zopeer/node"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zopeer help CMD prints that command's usage, description, --flags with
// their environment twins, and examples; every command has them.
func TestHelpCommand(t *testing.T) {
	for _, c := range commands {
		code, out, _ := zopeer(t, "help", c.name)
		if code != 0 {
			t.Fatalf("help %s: exit %d", c.name, code)
		}
		h, ok := helps[c.name]
		if !ok || h.desc == "" || len(h.examples) == 0 {
			t.Errorf("%s has no description or examples", c.name)
		}
		for _, want := range []string{"usage: zopeer " + c.name, "examples:", "--log-level", "$ZOPEER_LOG_LEVEL"} {
			if !strings.Contains(out, want) {
				t.Errorf("help %s lacks %q:\n%s", c.name, want, out)
			}
		}
		if strings.Contains(out, "\n  -"+"h") || strings.Contains(out, "  -home") {
			t.Errorf("help %s spells a flag with one dash", c.name)
		}
		// --help prints the same.
		if code, out2, _ := zopeer(t, c.name, "--help"); code != 0 || out2 != out {
			t.Errorf("%s --help: exit %d, differs from help %s", c.name, code, c.name)
		}
	}
}

// help of an unknown command fails (status 2) and says so on stderr.
func TestHelpUnknownCommand(t *testing.T) {
	code, out, errs := zopeer(t, "help", "nosuch")
	if code != 2 || out != "" || !strings.Contains(errs, `unknown command "nosuch"`) {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
}

// An unknown flag is one line with a hint, exit status 2.
func TestUnknownFlagOneLine(t *testing.T) {
	code, out, errs := zopeer(t, "start", "--hme", "x")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, out %q", code, out)
	}
	if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "unknown flag --hme") ||
		!strings.Contains(errs, "did you mean --home?") || !strings.Contains(errs, "zopeer help start") {
		t.Fatalf("stderr %q; want one line naming the flag, a guess and the help command", errs)
	}
	// A bad value is one line too.
	if code, _, errs := zopeer(t, "train", "--steps", "many"); code != 2 || strings.Count(errs, "\n") != 1 {
		t.Fatalf("bad value: exit %d, %q", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := zopeer(t, "version")
	if code != 0 || !strings.HasPrefix(out, "zopeer ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// zopeer id prints dialable multiaddrs with the peer ID, no 0.0.0.0.
func TestIDPrintsShareableAddrs(t *testing.T) {
	home := t.TempDir()
	code, out, errs := zopeer(t, "id", "--home", home, "--listen", "/ip4/0.0.0.0/tcp/4123")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	id := strings.Fields(lines[1])[1]
	if !strings.Contains(out, "/tcp/4123/p2p/"+id) || strings.Contains(out, "0.0.0.0") || !strings.Contains(out, "/ip4/127.0.0.1/tcp/4123") {
		t.Fatalf("addresses:\n%s", out)
	}
}

// status and peers find the API through --home's api.addr, and say so when
// no peer runs there.
func TestStatusHome(t *testing.T) {
	home := t.TempDir()
	code, _, errs := zopeer(t, "status", "--home", home)
	if code != 1 || !strings.Contains(errs, "no peer has run in "+home) {
		t.Fatalf("exit %d: %s", code, errs)
	}
	os.WriteFile(filepath.Join(home, "api.addr"), []byte("127.0.0.1:1\n"), 0o644)
	for _, cmd := range []string{"status", "peers"} {
		code, _, errs = zopeer(t, cmd, "--home", home)
		if code != 1 || !strings.Contains(errs, "no zopeer node answers at 127.0.0.1:1") {
			t.Fatalf("%s: exit %d: %s", cmd, code, errs)
		}
	}
}

// The progress reporter draws a bar with rate and ETA on a terminal and
// writes periodic lines elsewhere.
func TestProgress(t *testing.T) {
	var now = time.Unix(0, 0)
	clock := func() time.Time { return now }
	var tty, pipe strings.Builder
	for _, c := range []struct {
		w   *strings.Builder
		tty bool
	}{{&tty, true}, {&pipe, false}} {
		p := newProgress(c.w, c.tty, clock)
		now = time.Unix(0, 0)
		for i := uint64(0); i <= 100; i++ {
			p.report(node.Progress{Task: "replay", Done: i * 1000, Total: 100000, Unit: "updates", Finished: i == 100})
			now = now.Add(300 * time.Millisecond)
		}
	}
	if !strings.Contains(tty.String(), "\r") || !strings.Contains(tty.String(), "█") || !strings.Contains(tty.String(), "ETA") {
		t.Fatalf("tty: %q", tty.String()[:200])
	}
	lines := strings.Split(strings.TrimSpace(pipe.String()), "\n")
	if strings.Contains(pipe.String(), "\r") || len(lines) < 3 || len(lines) > 6 || !strings.Contains(lines[1], "/s, ETA") ||
		!strings.HasPrefix(lines[len(lines)-1], "replay: done, 100000 updates in 30s") {
		t.Fatalf("pipe:\n%s", pipe.String())
	}
}

// zopeer export writes a train home's model (the one train --export wrote)
// and the exported model evaluates; the home's log is unchanged.
func TestExportCommand(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	train(t, "--home", home, "--steps", "2", "--samples", "8", "--export", filepath.Join(dir, "a"))
	code, out, errs := zopeer(t, "export", "--home", home, "--out", filepath.Join(dir, "b"), "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "exported 16 updates") {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a", "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(dir, "b", "model.safetensors"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("zopeer export differs from train --export")
	}
	if code, out, _ := zopeer(t, "export", "--home", home, "--out", filepath.Join(dir, "c")); code != 0 || !strings.Contains(out, "exported 16 updates") {
		t.Fatalf("second export: %d %s (did the first change the log?)", code, out)
	}
	if code, _, errs := zopeer(t, "export", "--home", home); code != 2 || !strings.Contains(errs, "--out") {
		t.Fatalf("no --out: exit %d %s", code, errs)
	}
}
