// Package testnet runs local zopeer networks: several real `zopeer start`
// daemons on loopback, each with its own home and ports, which it can kill,
// restart and add to, and whose statuses it checks for convergence. The
// testnet command and the multi-process tests use it.
package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zopeer/zopeer/node"
)

// Build compiles cmd/zopeer of the module at root into dir and returns the
// binary's path; with race, under the race detector.
func Build(ctx context.Context, root, dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "zopeer")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/zopeer")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testnet: go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Net is a set of daemons of one run.
type Net struct {
	Bin  string   // the zopeer binary
	Dir  string   // homes and logs go here
	Args []string // extra flags for every daemon (e.g. --steps, --batch-size)

	mu    sync.Mutex
	nodes []*Node
}

// Node is one daemon.
type Node struct {
	Name   string
	Home   string
	Log    string   // its stderr
	Args   []string // its own extra flags
	API    string
	PeerID string
	Addrs  []string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // exit status, once exited
}

// Init creates the run in the first node's home with `zopeer init` args.
func (n *Net) Init(ctx context.Context, args ...string) error {
	home := filepath.Join(n.Dir, "node0")
	cmd := exec.CommandContext(ctx, n.Bin, append([]string{"init", "--home", home}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: zopeer init: %w\n%s", err, out)
	}
	return nil
}

// Nodes returns the nodes started so far.
func (n *Net) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Node(nil), n.nodes...)
}

// Add starts a new daemon named node<i>, bootstrapped to every live node.
func (n *Net) Add(ctx context.Context, args ...string) (*Node, error) {
	n.mu.Lock()
	name := fmt.Sprintf("node%d", len(n.nodes))
	nd := &Node{Name: name, Home: filepath.Join(n.Dir, name), Log: filepath.Join(n.Dir, name+".log"), Args: args}
	n.nodes = append(n.nodes, nd)
	n.mu.Unlock()
	return nd, n.start(ctx, nd)
}

func (n *Net) bootstrap(except *Node) []string {
	var out []string
	for _, o := range n.Nodes() {
		if o == except || !o.Alive() {
			continue
		}
		for _, a := range o.Addrs {
			if strings.Contains(a, "/tcp/") {
				out = append(out, a+"/p2p/"+o.PeerID)
			}
		}
	}
	return out
}

func (n *Net) start(ctx context.Context, nd *Node) error {
	os.Remove(filepath.Join(nd.Home, node.APIAddrFile))
	args := []string{"start", "--home", nd.Home, "--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--api", "127.0.0.1:0", "--mdns=false", "--dht=false", "--relay=false", "--hole-punching=false"}
	if boot := n.bootstrap(nd); len(boot) > 0 {
		args = append(args, "--bootstrap", strings.Join(boot, ","))
	}
	args = append(append(args, n.Args...), nd.Args...)
	logf, err := os.OpenFile(nd.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	fmt.Fprintf(logf, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	nd.cmd = exec.Command(n.Bin, args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("testnet: start %s: %w", nd.Name, err)
	}
	nd.exited = make(chan struct{})
	go func() {
		nd.err = nd.cmd.Wait()
		logf.Close()
		close(nd.exited)
	}()
	// The daemon writes its API address once it serves; then it has a peer ID.
	for {
		if b, err := os.ReadFile(filepath.Join(nd.Home, node.APIAddrFile)); err == nil {
			nd.API = strings.TrimSpace(string(b))
			st, err := nd.Status(ctx)
			if err != nil {
				return err
			}
			nd.PeerID, nd.Addrs = st.PeerID, st.Addrs
			return nil
		}
		select {
		case <-nd.exited:
			return fmt.Errorf("testnet: %s exited during start-up (%v): see %s\n%s", nd.Name, nd.err, nd.Log, tail(nd.Log))
		case <-ctx.Done():
			return fmt.Errorf("testnet: %s did not start: %w", nd.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Alive reports whether the daemon's process is running.
func (nd *Node) Alive() bool {
	if nd.exited == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

// Status queries the daemon's HTTP API.
func (nd *Node) Status(ctx context.Context) (node.Status, error) {
	var st node.Status
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.API+"/api/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("testnet: %s: %w", nd.Name, err)
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// Kill sends SIGKILL and waits for the process to go.
func (nd *Node) Kill() error {
	if !nd.Alive() {
		return nil
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	return nil
}

// Stop sends SIGTERM and waits for a clean exit.
func (nd *Node) Stop(timeout time.Duration) error {
	if !nd.Alive() {
		return nil
	}
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
		var ee *exec.ExitError
		if nd.err != nil && !errors.As(nd.err, &ee) {
			return nd.err
		}
		if nd.err != nil {
			return fmt.Errorf("testnet: %s exited with %v after SIGTERM:\n%s", nd.Name, nd.err, tail(nd.Log))
		}
		return nil
	case <-time.After(timeout):
		nd.Kill()
		return fmt.Errorf("testnet: %s did not stop within %v of SIGTERM", nd.Name, timeout)
	}
}

// Restart starts a stopped or killed node again with the same home.
func (n *Net) Restart(ctx context.Context, nd *Node) error {
	if nd.Alive() {
		return fmt.Errorf("testnet: %s is running", nd.Name)
	}
	return n.start(ctx, nd)
}

// Close kills every daemon.
func (n *Net) Close() {
	for _, nd := range n.Nodes() {
		nd.Kill()
	}
}

// Converged waits until every live node has finished contributing and all
// report the same set digest and weights hash over the same updates, and
// returns their statuses.
func (n *Net) Converged(ctx context.Context) ([]node.Status, error) {
	var last []node.Status
	var why string
	for {
		last, why = n.check(ctx)
		if why == "" {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("testnet: not converged: %s", why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Net) check(ctx context.Context) ([]node.Status, string) {
	var sts []node.Status
	for _, nd := range n.Nodes() {
		if !nd.Alive() {
			continue
		}
		st, err := nd.Status(ctx)
		if err != nil {
			return nil, err.Error()
		}
		sts = append(sts, st)
	}
	if len(sts) == 0 {
		return nil, "no live node"
	}
	for _, st := range sts {
		switch {
		case st.Contributing || st.CatchingUp:
			return sts, fmt.Sprintf("%s still contributing or catching up", st.PeerID)
		case st.HashUpdates != st.Updates:
			return sts, fmt.Sprintf("%s hash covers %d of %d updates", st.PeerID, st.HashUpdates, st.Updates)
		case st.SetDigest != sts[0].SetDigest || st.WeightsHash != sts[0].WeightsHash:
			return sts, fmt.Sprintf("%s has %d updates, digest %.12s, hash %.12s; %s has %d, %.12s, %.12s",
				st.PeerID, st.Updates, st.SetDigest, st.WeightsHash, sts[0].PeerID, sts[0].Updates, sts[0].SetDigest, sts[0].WeightsHash)
		}
	}
	return sts, ""
}

// Problems returns the lines of the daemons' logs that report a panic, a data
// race or a weights-hash mismatch.
func (n *Net) Problems() []string {
	var out []string
	for _, nd := range n.Nodes() {
		b, _ := os.ReadFile(nd.Log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "panic:") || strings.Contains(line, "DATA RACE") || strings.Contains(line, "MISMATCH") {
				out = append(out, nd.Name+": "+line)
			}
		}
	}
	return out
}

// tail returns the last lines of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-15):], []byte("\n")))
}
