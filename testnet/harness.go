// Package testnet runs local zopeer networks: several peers on loopback, each
// with its own home, ports and data shard, which it can kill, restart and add
// to, and whose statuses and logs it checks. Peers are real `zopeer start`
// processes (Net.Bin set: the testnet command and the multi-process tests) or
// node.Start goroutines in this process (Net.Bin empty: fast tests). Both
// modes take the same flags and pass the same checks (check.go).
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
	"slices"
	"strconv"
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

// Net is a set of peers of one run.
type Net struct {
	Bin  string   // the zopeer binary; empty runs the peers in this process
	Dir  string   // homes, logs and data shards go here
	Args []string // extra `zopeer start` flags for every peer (e.g. --steps, --batch-size)

	Data *Data // model and shards handed out by Add; nil: each peer uses the embedded default whole

	start time.Time // when the first peer started; history times count from it

	mu      sync.Mutex
	nodes   []*Node
	history []Point
}

// Node is one peer.
type Node struct {
	Name   string
	Index  int
	Home   string
	Log    string   // its log (stderr for a process)
	Args   []string // its own extra flags, after the net's
	Env    []string // its own environment variables (KEY=VALUE), on top of the test's (processes only)
	PeerID string
	Addrs  []string

	// The current process: set by launch, read by pollers on other
	// goroutines, hence behind pmu.
	pmu    sync.Mutex
	proc   process
	exited chan struct{}
	api    string
	err    error // exit status: written before exited is closed, read after

	// What Poll and the harness observed, guarded by Net.mu.
	machine   uint64
	steps     int    // --steps of the current process; 0: none given
	ackOwn    uint64 // most own updates any status reported: they must never be lost
	bytesIn   int64  // bytes on the wire of the earlier processes
	bytesOut  int64
	curIn     int64 // the current process's, at its last status
	curOut    int64
	lastEvalN uint64 // updates of the last eval loss recorded in the history
	evalSeen  bool
	restarts  int
}

// process is a running peer: a child process or a goroutine of this one.
type process interface {
	// end stops the peer: with kill, as abruptly as the mode allows.
	end(kill bool)
}

// Point is one eval-loss measurement of a peer, for charts.
type Point struct {
	Node     string
	Elapsed  time.Duration // since the net started
	Updates  uint64        // updates the measured weights include
	EvalLoss float64
}

// Init creates the run in the first peer's home. For processes, args are
// `zopeer init` flags; in this process, only the model shared by the data
// (or the embedded one) is used.
func (n *Net) Init(ctx context.Context, args ...string) error {
	home := filepath.Join(n.Dir, "node0")
	// `zopeer init --model` does not create the home itself.
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if n.Data != nil {
		args = append([]string{"--model", n.Data.Model, "--data", n.Data.Shards[0]}, args...)
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--pow-bits") }) {
		// Every peer mints its identity: 8 bits keeps that instant on loopback
		// (the run default, 20, costs ~13 CPU-seconds per peer).
		args = append([]string{"--pow-bits=8"}, args...)
	}
	if n.Bin == "" {
		return initInProcess(home, args)
	}
	cmd := exec.CommandContext(ctx, n.Bin, append([]string{"init", "--home", home}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: zopeer init: %w\n%s", err, out)
	}
	return nil
}

// Nodes returns the peers started so far.
func (n *Net) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Node(nil), n.nodes...)
}

// Add starts a new peer named node<i>, bootstrapped to every live peer, with
// shard i of the data when the net has data.
func (n *Net) Add(ctx context.Context, args ...string) (*Node, error) {
	return n.AddEnv(ctx, nil, args...)
}

// AddEnv is Add with environment variables (KEY=VALUE) for the peer's
// process, e.g. another BLAS thread count.
func (n *Net) AddEnv(ctx context.Context, env []string, args ...string) (*Node, error) {
	n.mu.Lock()
	i := len(n.nodes)
	name := fmt.Sprintf("node%d", i)
	nd := &Node{Name: name, Index: i, Home: filepath.Join(n.Dir, name), Log: filepath.Join(n.Dir, name+".log"), Args: args, Env: env}
	if n.start.IsZero() {
		n.start = time.Now()
	}
	n.nodes = append(n.nodes, nd)
	n.mu.Unlock()
	return nd, n.launch(ctx, nd)
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

func (n *Net) launch(ctx context.Context, nd *Node) error {
	os.Remove(filepath.Join(nd.Home, node.APIAddrFile))
	args := []string{"--home", nd.Home, "--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--api", "127.0.0.1:0", "--mdns=false", "--dht=false", "--relay=false", "--hole-punching=false"}
	if boot := n.bootstrap(nd); len(boot) > 0 {
		args = append(args, "--bootstrap", strings.Join(boot, ","))
	}
	if n.Data != nil {
		args = append(args, n.Data.args(nd.Index)...)
	}
	args = append(append(args, n.Args...), nd.Args...)
	steps, err := lastInt(args, "--steps")
	if err != nil {
		return err
	}
	n.mu.Lock()
	nd.steps = steps
	nd.bytesIn, nd.bytesOut, nd.curIn, nd.curOut = nd.bytesIn+nd.curIn, nd.bytesOut+nd.curOut, 0, 0
	n.mu.Unlock()

	logf, err := os.OpenFile(nd.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	fmt.Fprintf(logf, "=== %s start %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(nd.Env, " "), strings.Join(args, " "))
	exited := make(chan struct{})
	done := func(err error) {
		nd.err = err
		logf.Close()
		close(exited)
	}
	var proc process
	if n.Bin == "" {
		proc, err = startInProcess(args, logf, done)
	} else {
		proc, err = startProcess(n.Bin, args, nd.Env, logf, done)
	}
	if err != nil {
		logf.Close()
		return fmt.Errorf("testnet: start %s: %w", nd.Name, err)
	}
	nd.pmu.Lock()
	nd.proc, nd.exited, nd.api = proc, exited, ""
	nd.pmu.Unlock()
	// The peer writes its API address once it serves; then it has a peer ID.
	for {
		// The file may be seen created but not yet written.
		if b, err := os.ReadFile(filepath.Join(nd.Home, node.APIAddrFile)); err == nil && strings.TrimSpace(string(b)) != "" {
			nd.pmu.Lock()
			nd.api = strings.TrimSpace(string(b))
			nd.pmu.Unlock()
			st, err := nd.Status(ctx)
			if err != nil {
				return err
			}
			nd.PeerID, nd.Addrs = st.PeerID, st.Addrs
			m, err := strconv.ParseUint(st.Machine, 16, 64)
			if err != nil {
				return fmt.Errorf("testnet: %s: machine %q: %w", nd.Name, st.Machine, err)
			}
			n.mu.Lock()
			nd.machine = m
			n.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("testnet: %s exited during start-up (%v): see %s\n%s", nd.Name, nd.err, nd.Log, tail(nd.Log))
		case <-ctx.Done():
			return fmt.Errorf("testnet: %s did not start: %w", nd.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastInt is the value of the last flag named name in args, 0 if none.
func lastInt(args []string, name string) (int, error) {
	v := 0
	for i, a := range args {
		s, ok := "", false
		if a == name && i+1 < len(args) {
			s, ok = args[i+1], true
		} else if strings.HasPrefix(a, name+"=") {
			s, ok = strings.TrimPrefix(a, name+"="), true
		}
		if ok {
			x, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("testnet: %s %q: %w", name, s, err)
			}
			v = x
		}
	}
	return v, nil
}

// childProcess is a `zopeer start` process.
type childProcess struct{ cmd *exec.Cmd }

func startProcess(bin string, args, env []string, logf *os.File, done func(error)) (process, error) {
	cmd := exec.Command(bin, append([]string{"start"}, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Exits when the process does.
	go func() { done(cmd.Wait()) }()
	return childProcess{cmd}, nil
}

func (p childProcess) end(kill bool) {
	if kill {
		p.cmd.Process.Signal(syscall.SIGKILL)
	} else {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

func (nd *Node) current() (process, chan struct{}, string) {
	nd.pmu.Lock()
	defer nd.pmu.Unlock()
	return nd.proc, nd.exited, nd.api
}

// API is the address of the peer's HTTP API; empty until it serves.
func (nd *Node) API() string {
	_, _, api := nd.current()
	return api
}

// Alive reports whether the peer is running.
func (nd *Node) Alive() bool {
	_, exited, _ := nd.current()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Status queries the peer's HTTP API.
func (nd *Node) Status(ctx context.Context) (node.Status, error) {
	var st node.Status
	api := nd.API()
	if api == "" {
		return st, fmt.Errorf("testnet: %s does not serve its API yet", nd.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/api/status", nil)
	if err != nil {
		return st, fmt.Errorf("testnet: %s: %w", nd.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("testnet: %s: %w", nd.Name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("testnet: %s: status: %w", nd.Name, err)
	}
	return st, nil
}

// Kill ends the peer as abruptly as the mode allows (SIGKILL for a process,
// cancellation in this process) and waits for it to go.
func (nd *Node) Kill() error {
	if !nd.Alive() {
		return nil
	}
	proc, exited, _ := nd.current()
	proc.end(true)
	<-exited
	return nil
}

// Stop asks the peer to stop cleanly and waits for it.
func (nd *Node) Stop(timeout time.Duration) error {
	if !nd.Alive() {
		return nil
	}
	proc, exited, _ := nd.current()
	proc.end(false)
	select {
	case <-exited:
		var ee *exec.ExitError
		if nd.err != nil && !errors.As(nd.err, &ee) {
			return fmt.Errorf("testnet: %s: %w", nd.Name, nd.err)
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

// Restart starts a stopped or killed peer again with the same home; args
// replace its own extra flags when given.
func (n *Net) Restart(ctx context.Context, nd *Node, args ...string) error {
	if nd.Alive() {
		return fmt.Errorf("testnet: %s is running", nd.Name)
	}
	if args != nil {
		nd.Args = args
	}
	n.mu.Lock()
	nd.restarts++
	n.mu.Unlock()
	return n.launch(ctx, nd)
}

// StopAll stops every peer cleanly and returns the first error.
func (n *Net) StopAll(timeout time.Duration) error {
	var first error
	for _, nd := range n.Nodes() {
		if err := nd.Stop(timeout); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close kills every peer.
func (n *Net) Close() {
	for _, nd := range n.Nodes() {
		nd.Kill()
	}
}

// Poll reads the status of every live peer and records what the checks and
// charts need: acknowledged own updates, bytes on the wire, new eval losses.
// A peer that does not answer (being killed, say) is left out.
func (n *Net) Poll(ctx context.Context) map[*Node]node.Status {
	out := map[*Node]node.Status{}
	for _, nd := range n.Nodes() {
		if !nd.Alive() {
			continue
		}
		st, err := nd.Status(ctx)
		if err != nil {
			continue
		}
		out[nd] = st
		n.observe(nd, st)
	}
	return out
}

func (n *Net) observe(nd *Node, st node.Status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd.ackOwn = max(nd.ackOwn, st.OwnUpdates)
	nd.curIn, nd.curOut = st.P2P.BytesIn, st.P2P.BytesOut
	if st.EvalLoss != nil && (!nd.evalSeen || st.EvalUpdates != nd.lastEvalN) {
		nd.evalSeen, nd.lastEvalN = true, st.EvalUpdates
		n.history = append(n.history, Point{Node: nd.Name, Elapsed: time.Since(n.start), Updates: st.EvalUpdates, EvalLoss: *st.EvalLoss})
	}
}

// History returns every eval loss Poll has seen, in order.
func (n *Net) History() []Point {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Point(nil), n.history...)
}

// Settled waits until the net is Quiet and every live peer holds the same
// set of updates, and returns their statuses. It does not compare the weights
// hashes: Verify does.
func (n *Net) Settled(ctx context.Context) (map[*Node]node.Status, error) {
	return n.wait(ctx, true)
}

// Quiet waits until every live peer has run its --steps, is not catching up,
// and has a weights hash and an eval loss covering its whole log, and returns
// their statuses.
func (n *Net) Quiet(ctx context.Context) (map[*Node]node.Status, error) {
	return n.wait(ctx, false)
}

func (n *Net) wait(ctx context.Context, agree bool) (map[*Node]node.Status, error) {
	for {
		sts, why := n.settled(ctx, agree)
		if why == "" {
			return sts, nil
		}
		select {
		case <-ctx.Done():
			return sts, fmt.Errorf("testnet: not settled: %s", why)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Net) settled(ctx context.Context, agree bool) (map[*Node]node.Status, string) {
	sts := map[*Node]node.Status{}
	var first *node.Status
	for _, nd := range n.Nodes() {
		if !nd.Alive() {
			continue
		}
		st, err := nd.Status(ctx)
		if err != nil {
			return nil, err.Error()
		}
		n.observe(nd, st)
		sts[nd] = st
		n.mu.Lock()
		steps := nd.steps
		n.mu.Unlock()
		switch {
		case st.Contributing || st.CatchingUp || st.Steps < steps:
			return sts, fmt.Sprintf("%s has run %d of %d steps (contributing %v, catching up %v)", nd.Name, st.Steps, steps, st.Contributing, st.CatchingUp)
		case st.HashUpdates != st.Updates || st.EvalLoss == nil || st.EvalUpdates != st.Updates:
			return sts, fmt.Sprintf("%s: hash covers %d and eval loss %d of %d updates", nd.Name, st.HashUpdates, st.EvalUpdates, st.Updates)
		case agree && first != nil && st.SetDigest != first.SetDigest:
			return sts, fmt.Sprintf("%s has %d updates, digest %.12s; another has %d, %.12s",
				nd.Name, st.Updates, st.SetDigest, first.Updates, first.SetDigest)
		}
		if first == nil {
			first = &st
		}
	}
	if first == nil {
		return nil, "no live peer"
	}
	return sts, ""
}

// Converged waits until the net has settled and checks that every live peer
// reports the same weights hash; it returns the statuses in peer order.
func (n *Net) Converged(ctx context.Context) ([]node.Status, error) {
	sts, err := n.Settled(ctx)
	var out []node.Status
	for _, nd := range n.Nodes() {
		if st, ok := sts[nd]; ok {
			out = append(out, st)
		}
	}
	if err != nil {
		return out, err
	}
	for _, st := range out[1:] {
		if st.WeightsHash != out[0].WeightsHash {
			return out, fmt.Errorf("testnet: same set of %d updates, different weights: %s has hash %.16s, %s has %.16s",
				st.Updates, st.PeerID, st.WeightsHash, out[0].PeerID, out[0].WeightsHash)
		}
	}
	return out, nil
}

// Problems returns the lines of the peers' logs that report a panic, a data
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

// Acked is the most own updates any status of nd reported.
func (n *Net) Acked(nd *Node) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return nd.ackOwn
}

// Elapsed is the time since the first peer started.
func (n *Net) Elapsed() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Since(n.start)
}
