package testnet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/model/defaults"
)

// SIGTERM stops a daemon cleanly (exit 0, log closed), and a restart resumes
// from its own log with nothing lost.
func TestCleanStopAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := newNet(t, "--steps", "6")
	addNodes(t, ctx, n, 1)
	before := converged(t, ctx, n)[0]
	nd := n.Nodes()[0]
	if err := nd.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(ctx, nd); err != nil {
		t.Fatal(err)
	}
	after := converged(t, ctx, n)[0]
	if after.Updates != before.Updates+96 || after.OwnUpdates != before.OwnUpdates+96 {
		t.Fatalf("after a restart with --steps 6: %d updates (%d own), before %d (%d own)",
			after.Updates, after.OwnUpdates, before.Updates, before.OwnUpdates)
	}
	log, _ := os.ReadFile(nd.Log)
	if !strings.Contains(string(log), "msg=stopping") {
		t.Fatal("no clean stop in the log")
	}
}

// A joiner whose base model differs from the run's refuses to train, with a
// clear error and a non-zero exit.
func TestJoinerRefusesAnotherBaseModel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := newNet(t, "--steps", "2")
	addNodes(t, ctx, n, 1)
	// Another base: the default model with one weight changed.
	other := filepath.Join(t.TempDir(), "other")
	if err := defaults.WriteTo(other); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(other, defaults.WeightsFile)
	b, err := os.ReadFile(st)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] ^= 0x40 // a high bit of the last float32's exponent
	if err := os.WriteFile(st, b, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := n.Nodes()[0].Addrs[0] + "/p2p/" + n.Nodes()[0].PeerID
	if strings.Contains(n.Nodes()[0].Addrs[0], "/p2p/") {
		boot = n.Nodes()[0].Addrs[0]
	}
	cmd := exec.CommandContext(ctx, bin, "start", "--home", filepath.Join(t.TempDir(), "joiner"), "--run", "zopeer-default",
		"--model", other, "--data", filepath.Join(other, defaults.TrainFile), "--bootstrap", boot,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--mdns=false", "--dht=false", "--relay=false", "--hole-punching=false")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the joiner accepted another base model:\n%s", out)
	}
	if !strings.Contains(string(out), "refusing to train on another model") {
		t.Fatalf("no clear error:\n%s", out)
	}
}

// --steps -1 serves without contributing: the peer takes every update and makes none.
func TestServeOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := newNet(t)
	addNodes(t, ctx, n, 1, "--steps", "4")
	addNodes(t, ctx, n, 1, "--steps", "-1")
	sts := converged(t, ctx, n)
	checkTotals(t, sts, 64, 0)
}
