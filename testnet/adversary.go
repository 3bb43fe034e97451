package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/node"
	"github.com/zopeer/zopeer/p2p"
)

// This file drives the adversarial tests (adversarial_test.go): the attacker
// process (testnet/cmd/adversary), identities with proof of work for the
// honest peers, the status fields of issue 9, and peak memory.

// BuildAdversary compiles testnet/cmd/adversary of the module at root into dir.
func BuildAdversary(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "adversary")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./testnet/cmd/adversary")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testnet: go build adversary: %w\n%s", err, out)
	}
	return bin, nil
}

// AdversarySummary is the adversary's "SUMMARY" line.
type AdversarySummary struct {
	Mode        string   `json:"mode"`
	Run         string   `json:"run"`
	Identities  int      `json:"identities"`
	Machines    []string `json:"machines"`
	PowBits     int      `json:"pow_bits"`
	Minted      int      `json:"minted"`
	MintSeconds float64  `json:"mint_seconds"`
	MintPerID   float64  `json:"mint_seconds_per_identity"`
	MintTries   uint64   `json:"mint_tries"`
	GradBound   float64  `json:"grad_bound"`
	BoundFrom   string   `json:"grad_bound_source"`
	Batches     uint64   `json:"batches"`
	Updates     uint64   `json:"updates"`
	PublishErrs uint64   `json:"publish_errors"`
	Applied     uint64   `json:"applied"`
	MeanAbsG    float64  `json:"mean_abs_g"`
	Equivocated []string `json:"equivocated"`
	Announced   int      `json:"announced"`
	Seconds     float64  `json:"seconds"`
	Rate        float64  `json:"batches_per_second"`
}

// Adversary is a running attacker process.
type Adversary struct {
	Log    string // its stderr
	cmd    *exec.Cmd
	stdout bytes.Buffer
	exited chan struct{}
	err    error
}

// StartAdversary starts the adversary binary with args; its log goes to
// n.Dir/<name>.log.
func (n *Net) StartAdversary(bin, name string, args ...string) (*Adversary, error) {
	a := &Adversary{Log: filepath.Join(n.Dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(a.Log)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	fmt.Fprintf(logf, "=== %s adversary %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = &a.stdout, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testnet: start adversary: %w", err)
	}
	go func() {
		a.err = a.cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	return a, nil
}

// Wait waits for the adversary to exit and returns its summary.
func (a *Adversary) Wait(ctx context.Context) (AdversarySummary, error) {
	select {
	case <-a.exited:
	case <-ctx.Done():
		a.cmd.Process.Kill()
		<-a.exited
		return AdversarySummary{}, fmt.Errorf("testnet: adversary still running: %w", ctx.Err())
	}
	var s AdversarySummary
	sc := bufio.NewScanner(bytes.NewReader(a.stdout.Bytes()))
	found := false
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "SUMMARY "); ok {
			if err := json.Unmarshal([]byte(rest), &s); err != nil {
				return s, fmt.Errorf("testnet: adversary summary: %w", err)
			}
			found = true
		}
	}
	if a.err != nil {
		return s, fmt.Errorf("testnet: adversary: %v\n%s", a.err, tail(a.Log))
	}
	if !found {
		return s, fmt.Errorf("testnet: adversary printed no summary\n%s", tail(a.Log))
	}
	return s, nil
}

// Stop asks the adversary to stop (SIGTERM) and returns its summary.
func (a *Adversary) Stop(ctx context.Context) (AdversarySummary, error) {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-ctx.Done():
	case <-time.After(time.Minute):
		// Still running a minute after SIGTERM: SIGQUIT makes the Go
		// runtime write every goroutine's stack to its log, then exit.
		a.cmd.Process.Signal(syscall.SIGQUIT)
	}
	return a.Wait(ctx)
}

// Kill ends the adversary at once (cleanup).
func (a *Adversary) Kill() {
	select {
	case <-a.exited:
	default:
		a.cmd.Process.Kill()
		<-a.exited
	}
}

// Boot is the --bootstrap list (TCP addresses) of the given peers.
func Boot(nodes ...*Node) string {
	var out []string
	for _, nd := range nodes {
		for _, a := range nd.Addrs {
			if strings.Contains(a, "/tcp/") {
				if !strings.Contains(a, "/p2p/") {
					a += "/p2p/" + nd.PeerID
				}
				out = append(out, a)
			}
		}
	}
	return strings.Join(out, ",")
}

// Machine is the peer's machine id, 16 hex digits.
func (nd *Node) Machine(n *Net) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("%016x", nd.machine)
}

// PID is the peer's process id; 0 in this process or when not running.
func (nd *Node) PID() int {
	proc, _, _ := nd.current()
	if c, ok := proc.(childProcess); ok && nd.Alive() {
		return c.cmd.Process.Pid
	}
	return 0
}

// Memory reads a running peer's resident set size and its peak (VmRSS and
// VmHWM of /proc/PID/status), in bytes.
func (nd *Node) Memory() (rss, peak int64, err error) {
	pid := nd.PID()
	if pid == 0 {
		return 0, 0, fmt.Errorf("testnet: %s is not a running process", nd.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("testnet: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) < 1 {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("testnet: %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// Excluded is one entry of the status's excluded_machines.
type Excluded struct {
	Machine string `json:"machine"`
	Reason  string `json:"reason"`
	Sample  uint64 `json:"sample"`
}

// Refused is one entry of the status's refused_machines.
type Refused struct {
	Machine string `json:"machine"`
	Reason  string `json:"reason"`
	Count   uint64 `json:"count"`
}

// Defences are the status fields of issue 9 (excluded and refused machines,
// refusals by reason). Has says which fields the peer's status has at all:
// a field it lacks is a defence not yet built, which tests report as pending.
type Defences struct {
	Excluded        []Excluded        `json:"excluded_machines"`
	Refused         map[string]uint64 `json:"refused"`
	RefusedMachines []Refused         `json:"refused_machines"`
	Has             map[string]bool   `json:"-"`
}

// Defences reads the issue 9 fields of the peer's GET /api/status.
func (nd *Node) Defences(ctx context.Context) (Defences, error) {
	var d Defences
	api := nd.API()
	if api == "" {
		return d, fmt.Errorf("testnet: %s does not serve its API", nd.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/api/status", nil)
	if err != nil {
		return d, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return d, fmt.Errorf("testnet: %s: %w", nd.Name, err)
	}
	defer resp.Body.Close()
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return d, fmt.Errorf("testnet: %s: status: %w", nd.Name, err)
	}
	d.Has = map[string]bool{}
	for _, k := range []string{"excluded_machines", "refused", "refused_machines"} {
		if _, ok := raw[k]; ok {
			d.Has[k] = true
		}
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("testnet: %s: status: %w", nd.Name, err)
	}
	return d, nil
}

// MintIdentities gives peers node0..node<k-1> of the net identities whose
// proof of work for run is at least bits, before they first start (the
// machine ids of a closed run's admission list must be known at init). Keys
// are taken from, and minted into, cache (when not empty), so a test suite
// mints each only once. It returns the machine ids.
func (n *Net) MintIdentities(ctx context.Context, run string, bits, k int, cache string) ([]string, error) {
	var ids []string
	for i := range k {
		home := filepath.Join(n.Dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		var key crypto.PrivKey
		cpath := ""
		if cache != "" {
			if err := os.MkdirAll(cache, 0o755); err != nil {
				return nil, fmt.Errorf("testnet: %w", err)
			}
			cpath = filepath.Join(cache, fmt.Sprintf("%s-%d-%d.key", run, bits, i))
			if b, err := os.ReadFile(cpath); err == nil {
				if kk, err := crypto.UnmarshalPrivateKey(b); err == nil {
					if got, err := p2p.KeyPowBits(run, kk.GetPublic()); err == nil && got >= bits {
						key = kk
					}
				}
			}
		}
		if key == nil {
			var err error
			if key, _, err = p2p.MintIdentity(ctx, run, bits, 0); err != nil {
				return nil, err
			}
			if cpath != "" {
				if err := p2p.SaveIdentity(cpath, key); err != nil {
					return nil, err
				}
			}
		}
		if err := p2p.SaveIdentity(filepath.Join(home, "identity.key"), key); err != nil {
			return nil, err
		}
		raw, err := key.GetPublic().Raw()
		if err != nil {
			return nil, err
		}
		ids = append(ids, fmt.Sprintf("%016x", p2p.MachineOf(ed25519.PublicKey(raw))))
	}
	return ids, nil
}

// RunFlags are the `zopeer init` flags of issue 9. InitRun passes them; if
// this zopeer's init does not know them yet, it creates the run without them
// and writes the same fields into the manifest itself (Notes says so).
type RunFlags struct {
	GradBound  *float64 // --grad-bound (0: calibrate on the base model); nil: init's default
	MaxSamples uint64   // --max-samples; 0: default
	Admission  string   // --admission open|closed; empty: default
	PowBits    *int     // --pow-bits; nil: default
	Admit      []string // --admit
}

func (f RunFlags) args() []string {
	var a []string
	if f.GradBound != nil {
		a = append(a, "--grad-bound", strconv.FormatFloat(*f.GradBound, 'g', -1, 64))
	}
	if f.MaxSamples > 0 {
		a = append(a, "--max-samples", strconv.FormatUint(f.MaxSamples, 10))
	}
	if f.Admission != "" {
		a = append(a, "--admission", f.Admission)
	}
	if f.PowBits != nil {
		a = append(a, "--pow-bits", strconv.Itoa(*f.PowBits))
	}
	if len(f.Admit) > 0 {
		a = append(a, "--admit", strings.Join(f.Admit, ","))
	}
	return a
}

// InitRun creates the run in node0's home with f, and returns the manifest
// written and notes on what had to be emulated.
func (n *Net) InitRun(ctx context.Context, f RunFlags, extra ...string) (notes []string, err error) {
	err = n.Init(ctx, append(f.args(), extra...)...)
	if err != nil && strings.Contains(err.Error(), "flag provided but not defined") && len(f.args()) > 0 {
		notes = append(notes, fmt.Sprintf("zopeer init lacks the flags of issue 9 (%v): the manifest fields were written directly", firstLine(err.Error())))
		if err = n.Init(ctx, extra...); err != nil {
			return notes, err
		}
		path := filepath.Join(n.Dir, "node0", node.ManifestFile)
		m, err := node.ReadManifest(path)
		if err != nil {
			return notes, err
		}
		if f.GradBound != nil {
			m.GradBound = *f.GradBound // 0 here is no bound: nothing calibrates it
		}
		m.MaxSamples = f.MaxSamples
		m.Admission = f.Admission
		if f.PowBits != nil {
			m.PowBits = *f.PowBits
		}
		m.Admit = f.Admit
		if err := node.WriteManifest(path, m); err != nil {
			return notes, err
		}
	}
	return notes, err
}

// ManifestPath is the run's manifest in node0's home.
func (n *Net) ManifestPath() string { return filepath.Join(n.Dir, "node0", node.ManifestFile) }

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "flag provided but not defined") {
			return strings.TrimSpace(l)
		}
	}
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// LogMachines is, for a stopped peer, how many updates of each machine its log holds.
func (n *Net) LogMachines(ctx context.Context, nd *Node) (map[string]uint64, error) {
	if nd.Alive() {
		return nil, fmt.Errorf("testnet: %s is running", nd.Name)
	}
	sum, _, err := readLog(ctx, nd.Home)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for m, rs := range sum {
		out[fmt.Sprintf("%016x", m)] = rs.Count()
	}
	return out, nil
}
