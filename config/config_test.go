package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newSet() (*flag.FlagSet, *float64, *string, *int) {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.String(FileFlag, "", "config file")
	lr := fs.Float64("lr", 1e-6, "")
	name := fs.String("run-name", "default", "")
	steps := fs.Int("steps", 10, "")
	return fs, lr, name, steps
}

var known = map[string]bool{"lr": true, "run-name": true, "steps": true, "listen": true, "[train]": true, "[start]": true}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zopeer.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	p := writeFile(t, "lr = 0.5\nsteps = 7\nrun-name = \"file\"\nlisten = \"x\"\n[train]\nsteps = 8\n[start]\nsteps = 99\n")
	t.Setenv("ZOPEER_RUN_NAME", "env")
	t.Setenv("ZOPEER_STEPS", "")
	os.Unsetenv("ZOPEER_STEPS")
	fs, lr, name, steps := newSet()
	if err := Parse(fs, "train", []string{"--config", p, "--lr", "0.25"}, known); err != nil {
		t.Fatal(err)
	}
	if *lr != 0.25 || *name != "env" || *steps != 8 {
		t.Fatalf("lr %v (flag), name %q (env), steps %d ([train] table): wrong precedence", *lr, *name, *steps)
	}
	fs, lr, _, _ = newSet()
	t.Setenv("ZOPEER_CONFIG", p)
	if err := Parse(fs, "train", nil, known); err != nil || *lr != 0.5 {
		t.Fatalf("file via ZOPEER_CONFIG: lr %v err %v", *lr, err)
	}
	fs, _, _, steps = newSet()
	os.Unsetenv("ZOPEER_CONFIG")
	if err := Parse(fs, "train", nil, known); err != nil || *steps != 10 {
		t.Fatalf("defaults: steps %d err %v", *steps, err)
	}
}

func TestErrors(t *testing.T) {
	for name, c := range map[string]struct {
		body, env, want string
	}{
		"unknown key":    {"lrr = 1\n", "", "unknown keys: lrr"},
		"unknown table":  {"[nope]\nlr = 1\n", "", "unknown keys: [nope]"},
		"key not in cmd": {"[train]\nlisten = \"x\"\n", "", "train.listen"},
		"bad value":      {"steps = \"many\"\n", "", "key \"steps\""},
		"bad env":        {"", "x", "ZOPEER_LR"},
		"malformed toml": {"lr = = 1\n", "", "config:"},
		"missing file":   {"<missing>", "", "config:"},
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, c.body)
			if c.body == "<missing>" {
				p = filepath.Join(t.TempDir(), "absent.toml")
			}
			if c.env != "" {
				t.Setenv("ZOPEER_LR", c.env)
			}
			fs, _, _, _ := newSet()
			err := Parse(fs, "train", []string{"--config", p}, known)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
