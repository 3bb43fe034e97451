package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// PeerSettings are the network knobs of `zopeer start`. PeerDefaults holds
// every default.
type PeerSettings struct {
	Listen       []string      // multiaddrs to listen on
	Bootstrap    []string      // multiaddrs (with /p2p/ID) to dial and keep dialled
	MDNS         bool          // LAN discovery, one service name per run
	DHT          bool          // Kademlia DHT with a per-run rendezvous
	DHTServer    bool          // force DHT server mode (bootstrap nodes)
	RelayClient  bool          // reach NATed peers through relays
	HolePunching bool          // DCUtR hole punching
	NATService   bool          // answer AutoNAT dial-backs for others
	NATPortMap   bool          // UPnP / NAT-PMP
	API          string        // HTTP API address; keep it on loopback
	MaxLag       uint64        // stop contributing while this many updates behind the best announced peer
	StateEvery   time.Duration // between state announcements
	SyncEvery    time.Duration // between anti-entropy rounds
	DropGossip   float64       // fraction of inbound gossip dropped on purpose: a test hook
	// VerifyFraction is the share of this peer's compute spent re-computing
	// other machines' samples in public-data runs (docs/PROTOCOL.md §11.3):
	// after each own step of n samples it re-computes about
	// VerifyFraction·n of theirs. 0 verifies nothing (it still re-checks
	// accusations: every peer must).
	VerifyFraction float64
	// TestLie makes this peer flip the sign of every own code: a liar for
	// the verification tests. Test only.
	TestLie bool
	// TestAccuse makes this peer accuse every sample it re-computes, true
	// or not: a false accuser for the verification tests. Test only.
	TestAccuse bool
	// Snapshot sync (snapshot.go): a peer with an empty log joins from a
	// snapshot once SnapshotQuorum machines announce its pair (0: replay
	// everything); SnapshotVerify then replays the snapshot's set in the
	// background. SnapshotLie (a test hook) serves a snapshot that lies.
	SnapshotQuorum int
	SnapshotVerify bool
	SnapshotLie    bool
	// SnapshotCorrupt (a test hook) serves the agreed snapshot's true
	// pair with wrong bytes.
	SnapshotCorrupt bool

	// NAT traversal (docs in README, "Running a peer at home").
	RelayService         bool     // offer a bounded relay service once AutoNAT finds this peer public
	RelayMaxReservations int      // relay service: reservations held for others
	RelayMaxCircuits     int      // relay service: relayed connections per peer
	StaticRelays         []string // relays to reserve on instead of the peers this one knows
	AutoNAT              bool     // AutoNAT v2 reachability checks of our own addresses
	PeerExchange         bool     // gossipsub peer exchange (PX) when pruning the mesh
	// MeshDegree is gossipsub's D: copies of each message a peer receives,
	// bytes against resilience (p2p.Options.MeshDegree).
	MeshDegree int
	// JoinTimeout is how long a peer looks for a peer of its run before it
	// says so: a joiner without a manifest stops with what it tried; a peer
	// with one warns and keeps looking while it runs alone.
	JoinTimeout time.Duration
}

// PeerDefaults are the defaults of `zopeer start`.
var PeerDefaults = PeerSettings{
	Listen:       []string{"/ip4/0.0.0.0/tcp/4747", "/ip4/0.0.0.0/udp/4747/quic-v1"},
	MDNS:         true,
	DHT:          true,
	RelayClient:  true,
	HolePunching: true,
	NATService:   true,
	// The relay service starts only once AutoNAT finds the peer public.
	RelayService:         true,
	RelayMaxReservations: 64,
	RelayMaxCircuits:     8,
	AutoNAT:              true,
	PeerExchange:         true,
	MeshDegree:           p2p.DefaultOptions().MeshDegree,
	JoinTimeout:          10 * time.Second,
	API:                  "127.0.0.1:7070",
	MaxLag:               4096,
	StateEvery:           30 * time.Second,
	SyncEvery:            5 * time.Second,
	VerifyFraction:       0.1,
}

// Validate checks the network settings before anything slow starts: every
// address parses, bootstrap and relay addresses name their peer, the bounds
// are sane, and the listen ports are free.
func (ps PeerSettings) Validate() error {
	for _, a := range ps.Listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("node: --listen %q: %w", a, err)
		}
	}
	for _, list := range []struct {
		flag  string
		addrs []string
	}{{"--bootstrap", ps.Bootstrap}, {"--static-relays", ps.StaticRelays}} {
		for _, a := range list.addrs {
			if _, err := peer.AddrInfoFromString(a); err != nil {
				return fmt.Errorf("node: %s %q: want a multiaddr ending in /p2p/<peer ID>: %w", list.flag, a, err)
			}
		}
	}
	switch {
	case ps.RelayService && (ps.RelayMaxReservations <= 0 || ps.RelayMaxCircuits <= 0):
		return errors.New("node: --relay-max-reservations and --relay-max-circuits must be positive (or --relay-service=false)")
	case ps.MeshDegree < 2:
		return fmt.Errorf("node: --mesh-degree %d: want at least 2", ps.MeshDegree)
	case len(ps.StaticRelays) > 0 && !ps.RelayClient:
		return errors.New("node: --static-relays needs --relay")
	case ps.JoinTimeout <= 0:
		return errors.New("node: --join-timeout must be positive")
	case ps.StateEvery <= 0 || ps.SyncEvery <= 0:
		return errors.New("node: --state-every and --sync-every must be positive")
	case !(ps.VerifyFraction >= 0 && ps.VerifyFraction <= 1):
		return fmt.Errorf("node: --verify-fraction %g: want 0..1", ps.VerifyFraction)
	case ps.SnapshotQuorum < 0:
		return errors.New("node: --snapshot-quorum must be ≥ 0")
	case ps.DropGossip < 0 || ps.DropGossip >= 1:
		return errors.New("node: --test-drop-gossip must be in [0, 1)")
	}
	return p2p.CheckListen(ps.Listen)
}

// PeersFile in a node's home lists peers of the run met before, one
// multiaddr a line: redialled at start, so a restart does not depend on the
// bootstrap hosts.
const PeersFile = "peers.txt"

// ManifestFile is the run manifest in a node's home: `zopeer init` writes it,
// joiners fetch it from peers.
const ManifestFile = "manifest.json"

// APIAddrFile in a node's home holds the address its HTTP API listens on.
const APIAddrFile = "api.addr"

// ReadManifest reads a manifest file: the canonical serialisation
// (docs/PROTOCOL.md §9), or any JSON layout of the same members that older
// homes hold (indented, base_digest as an array of numbers).
func ReadManifest(path string) (store.Manifest, error) {
	m, _, err := readManifest(path)
	return m, err
}

// readManifest also reports whether the file holds the canonical bytes.
func readManifest(path string) (store.Manifest, bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return store.Manifest{}, false, fmt.Errorf("node: %w", err)
	}
	m, err := store.ParseManifest(b)
	if err != nil {
		return m, false, fmt.Errorf("node: manifest %s: %w", path, err)
	}
	c, err := m.Canonical()
	if err != nil {
		return m, false, fmt.Errorf("node: manifest %s: %w", path, err)
	}
	return m, bytes.Equal(b, c), nil
}

// WriteManifest writes m's canonical serialisation to path atomically: the
// file holds exactly the bytes the daemon serves to joiners (no newline).
func WriteManifest(path string, m store.Manifest) error {
	b, err := m.Canonical()
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return os.Rename(tmp, path)
}

// NewManifest creates the manifest of a new run from s: its base model (the
// embedded default and its task when s.Model is empty), the settings that
// decide the weights, and its admission rules. A zero s.GradBound is
// calibrated on the base model and s.Data (CalibrateBound).
func NewManifest(ctx context.Context, s Settings) (store.Manifest, error) {
	if s.Model == "" {
		d, err := s.WithEmbeddedDefault()
		if err != nil {
			return store.Manifest{}, err
		}
		s.Model, s.Data, s.EvalData, s.embedded = d.Model, d.Data, d.EvalData, true
	}
	if s.GradBound < 0 || math.IsNaN(s.GradBound) || math.IsInf(s.GradBound, 0) {
		return store.Manifest{}, fmt.Errorf("node: grad bound %g: want a positive number, or 0 to calibrate it", s.GradBound)
	}
	lm, _, err := OpenModel(s.Model)
	if err != nil {
		return store.Manifest{}, err
	}
	specs, err := TrainableSpecs(lm, s.Trainable)
	if err != nil {
		return store.Manifest{}, err
	}
	w, err := zo.NewWeights(specs)
	if err != nil {
		return store.Manifest{}, err
	}
	base := w.Hash()
	if s, err = s.withEstimator(w, lm); err != nil {
		return store.Manifest{}, err
	}
	m := s.Manifest(base)
	m.Model = s.modelSource(true)
	if _, err := m.Rules(); err != nil {
		return m, err
	}
	cfg, err := m.Config()
	if err != nil {
		return m, err
	}
	if _, err := zo.NewEngine(cfg, w); err != nil {
		return m, err
	}
	if s.GradBound == 0 {
		if s.Data == "" {
			return m, errors.New("node: give --grad-bound, or --data to calibrate it on the base model")
		}
		if s.GradBound, err = CalibrateBound(ctx, s); err != nil {
			return m, err
		}
		m.GradBound = s.GradBound
	}
	if s.PublicData {
		if m.Data, err = publicData(ctx, s); err != nil {
			return m, err
		}
		if _, err := m.Config(); err != nil { // rules that need the data member (onesided)
			return m, err
		}
	}
	return m, nil
}

// calibrationSamples is how many projected gradients CalibrateBound measures.
const calibrationSamples = 64

// CalibrateBound measures the projected gradients of calibrationSamples
// samples (machine 0's seeds) on the base model and s.Data, and returns the
// largest power of two at or below a quarter of their median |g|.
//
// The bound trades robustness for speed (docs/DESIGN.md, "Open runs"): an
// attacker pushes every one of its updates at |ĝ| = G, honest updates pull
// at their |g|, which shrinks as training converges (on the embedded task,
// from a median of about 4 at the base to about 0.1). A G that honest peers
// rarely reach (the base's maximum, 32 there) lets one ascending peer in
// nine wreck the run; a quarter of the base's median (1 there) clips most
// honest gradients early in training, which then moves like ZO-signSGD with
// step η·G, and few late, and keeps the same attacker's cost within a few
// hundredths of a nat (docs/BENCHMARKS.md, "adversarial").
func CalibrateBound(ctx context.Context, s Settings) (float64, error) {
	s.Machine, s.GradBound = 0, 0
	s.Home = "" // nothing is written
	run, err := openRun(ctx, s, nil, slog.New(slog.DiscardHandler), true)
	if err != nil {
		return 0, err
	}
	defer run.Close()
	g, _, err := run.Trainer.Gradients(ctx, 0, calibrationSamples)
	if err != nil {
		return 0, fmt.Errorf("node: calibrating the gradient bound: %w", err)
	}
	for i, v := range g {
		g[i] = math.Abs(v)
	}
	slices.Sort(g)
	median := (g[len(g)/2-1] + g[len(g)/2]) / 2
	if !(median > 0) {
		return 0, errors.New("node: calibrating the gradient bound: the median projected gradient is 0 (is eps too small for the model?)")
	}
	_, e := math.Frexp(median / 4) // 2^(e−1) ≤ median/4 < 2^e
	return math.Ldexp(1, e-1), nil
}

// toleranceOfBound is τ / G for a new public-data run: a claim is wrong
// when it misses the recomputed clipped gradient by more than one
// quantisation step + G/8 (docs/PROTOCOL.md §11.3 has the margins).
const toleranceOfBound = 1.0 / 8

// publicData declares s's training records public: their digest, the batch
// size that maps a sample to its records, and the verification tolerance.
func publicData(ctx context.Context, s Settings) (*store.PublicData, error) {
	if s.Data == "" {
		return nil, errors.New("node: --public-data needs --data (or the embedded default)")
	}
	if !(s.GradBound > 0) {
		return nil, errors.New("node: --public-data needs a gradient bound (the tolerance is a fraction of it)")
	}
	s.Home, s.public = "", nil
	run, err := openRun(ctx, s, nil, slog.New(slog.DiscardHandler), true)
	if err != nil {
		return nil, err
	}
	defer run.Close()
	return &store.PublicData{Digest: run.Trainer.train.Digest(), BatchSize: s.BatchSize, Tolerance: s.GradBound * toleranceOfBound}, nil
}

// ApplyManifest makes s follow the run manifest m: everything that decides
// the weights comes from the manifest, not from local flags.
func (s Settings) ApplyManifest(m store.Manifest) Settings {
	s.Run, s.Dist, s.Eps, s.LR, s.Trainable = m.Run, m.Dist, m.Eps, m.LR, m.Params["trainable"]
	s.LRWarmup, s.LRDecay, s.Pool, s.PoolChoices = m.LRWarmup, m.LRDecay, m.Pool, m.PoolChoices
	s.GradBound, s.MaxSamples, s.Admission, s.PowBits, s.Admit = m.GradBound, m.MaxSamples, m.Admission, m.PowBits, m.Admit
	s.public = m.Data
	if m.Data != nil {
		s.BatchSize = m.Data.BatchSize // the minibatch rule reads it
	}
	s.Estimator, s.estimator = "", m.Estimator
	return s
}

// lockHome takes an exclusive lock on home for the life of the process.
func lockHome(home string) (*os.File, error) {
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(home, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("node: home %s is in use by another zopeer process: %w", home, err)
	}
	return f, nil
}

// Daemon is a running peer: it trains, gossips, syncs and serves its API.
type Daemon struct {
	s    Settings
	ps   PeerSettings
	run  *Run
	peer *p2p.Peer // set once, under mu, before the loop starts
	log  *slog.Logger

	// Owned by the loop goroutine.
	steps      int
	lastEval   time.Time
	evalAt     uint64   // updates when eval_loss was measured
	trainLoss  lossMean // this machine's step losses since the last history point
	forwards   uint64   // this machine's training forward passes since start
	hashAt     zo.SetDigest
	lastHash   time.Time
	catchingUp atomic.Bool
	wakeC      chan struct{}  // asks the catch-up goroutine for a verified round
	exportC    chan exportReq // POST /api/export, answered by the loop between steps
	watch      watch          // history, rates and per-peer activity for the dashboard (watch.go)
	ver        *verifier      // re-verification and accusations (verify.go)
	met        *metrics       // latency histograms (metrics.go)

	// Snapshots (snapshot.go): what this peer serves, when it last wrote an
	// agreed checkpoint (loop-owned), and the joiner's requests to the loop
	// and to the background verifier.
	served     atomic.Pointer[servedSnapshot]
	agreedAt   zo.SetDigest
	lastAgreed time.Time
	installC   chan installReq
	verifyC    chan verifyReq

	mu          sync.Mutex // guards snap, states and discredited
	snap        Status
	states      map[uint64]heard     // latest announcement per machine, while fresh
	discredited map[uint64]time.Time // machines whose claims a round did not bear out, until when
	start       time.Time
}

// heard is an announcement and when it arrived.
type heard struct {
	st p2p.State
	at time.Time
}

// Daemon states, in the order a peer goes through them (status "state").
const (
	StateStarting   = "starting"    // home, identity, manifest
	StateReplaying  = "replaying"   // rebuilding the weights from the log
	StateCatchingUp = "catching_up" // verifying with donors that nothing is missing before contributing
	StateTraining   = "training"    // contributing steps
	StateServing    = "serving"     // caught up, --steps done or -1: takes and serves updates only
	StateFailed     = "failed"      // a fatal error: the process is exiting with it
	StateStopping   = "stopping"    // asked to stop
)

// Status is what GET /api/status returns.
type Status struct {
	// State says what the peer is doing (Starting, Replaying, …). Until it
	// reaches catching_up, the counts and hashes below are not yet known and
	// read as zero.
	State        string   `json:"state"`
	Error        string   `json:"error,omitempty"` // the fatal error, in state failed
	PeerID       string   `json:"peer_id"`
	API          string   `json:"api"`
	Machine      string   `json:"machine"`
	Run          string   `json:"run"`
	Pool         uint32   `json:"pool,omitempty"`         // the run's seed pool K (docs/PROTOCOL.md §12); absent: full mode
	PoolChoices  uint32   `json:"pool_choices,omitempty"` // FedKSeed-Pro's m (docs/PROTOCOL.md §12.1); absent: the uniform rule
	Addrs        []string `json:"addrs"`
	Updates      uint64   `json:"updates"`
	OwnUpdates   uint64   `json:"own_updates"`
	NextSample   uint64   `json:"next_sample"`
	Steps        int      `json:"steps"`
	SetDigest    string   `json:"set_digest"`
	WeightsHash  string   `json:"weights_hash"`
	HashUpdates  uint64   `json:"hash_updates"` // updates the (set_digest, weights_hash) pair covers
	Peers        int      `json:"peers"`
	EvalLoss     *float64 `json:"eval_loss"`
	EvalUpdates  uint64   `json:"eval_updates"`
	Contributing bool     `json:"contributing"`
	CatchingUp   bool     `json:"catching_up"`
	BestPeer     uint64   `json:"best_peer_updates"` // largest update count a peer announced
	Flagged      []string `json:"flagged_machines"`
	// Excluded are the machines excluded from the run (their updates are
	// out of the weights, later ones refused), with the evidence's sample.
	Excluded      []Excluded `json:"excluded_machines"` // the first 256
	ExcludedTotal int        `json:"excluded_total"`
	// Refused counts refused batches by reason (p2p.Reason*); RefusedMachines
	// lists the machines refused most (at most 256), with their latest reason.
	Refused         map[string]uint64 `json:"refused"`
	RefusedMachines []p2p.Refused     `json:"refused_machines"`
	// Overflow, when set, says the run's updates moved a weight past int32:
	// the peer refuses to train, checkpoint or export (docs/DESIGN.md).
	Overflow    string     `json:"overflow,omitempty"`
	Discredited []string   `json:"discredited_machines"` // announced counts anti-entropy did not bear out; ignored for a while
	Mismatches  []Mismatch `json:"hash_mismatches"`
	// Verification is re-verification and accusations (public-data runs;
	// zero in private ones).
	Verification VerifyStatus `json:"verification"`
	P2P          p2p.Stats    `json:"p2p"`
	Uptime       float64      `json:"uptime_seconds"`
	// Rates, StartedAt and CatchUp are for watching the run (watch.go).
	Rates     Rates    `json:"rates"`
	StartedAt string   `json:"started_at"`         // RFC 3339, UTC
	CatchUp   *CatchUp `json:"catch_up,omitempty"` // while catching up with a target
	// Network is the peer's reachability (AutoNAT), its public addresses,
	// its relay reservations and, per connection, direct or relayed.
	Network p2p.NetInfo `json:"network"`
	// NetworkWarning says why the peer runs alone, if it does (no
	// reachable peer of the run: what was tried).
	NetworkWarning string `json:"network_warning,omitempty"`
	// Traffic is where the bytes go: stream payload per libp2p protocol,
	// gossipsub's share by part (not link level).
	Traffic p2p.Traffic `json:"traffic"`
	// Snapshot is the join by snapshot, when --snapshot-quorum asked for one.
	Snapshot *SnapshotStatus `json:"snapshot,omitempty"`
}

// Excluded is a machine excluded from the run.
type Excluded struct {
	Machine string `json:"machine"` // 16 hex digits
	Reason  string `json:"reason"`  // "equivocation"
	Sample  uint64 `json:"sample"`  // the sample it signed two values for
}

// maxExcludedShown bounds the excluded machines the status lists.
const maxExcludedShown = 256

// Mismatch records a peer that announced our set digest with another weights hash.
type Mismatch struct {
	Machine    string `json:"machine"`
	SetDigest  string `json:"set_digest"`
	TheirHash  string `json:"their_hash"`
	OurHash    string `json:"our_hash"`
	ObservedAt string `json:"observed_at"`
}

// Start runs a peer until ctx ends: lock home, API, identity, manifest, model
// and data, log and replay, network, then the training loop. A fatal error
// of the loop ends it promptly: it is logged at ERROR, the status says
// "failed", every goroutine stops and Start returns the error.
func Start(ctx context.Context, s Settings, ps PeerSettings, log *slog.Logger) error {
	lock, err := lockHome(s.Home)
	if err != nil {
		return err
	}
	defer lock.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	d := &Daemon{s: s, ps: ps, log: log, states: map[uint64]heard{}, discredited: map[uint64]time.Time{},
		wakeC: make(chan struct{}, 1), exportC: make(chan exportReq), met: newMetrics(), start: time.Now(),
		installC: make(chan installReq), verifyC: make(chan verifyReq, 1)}
	// A peer starts by catching up, and says so before its loop first runs:
	// a status read then must not look finished.
	d.catchingUp.Store(true)
	d.snap.CatchingUp, d.snap.State = true, StateStarting
	// The API serves from the start, so "starting" and "replaying" are seen
	// as such; api.addr is written once the peer has an ID.
	stopAPI, err := d.serveAPI(ps.API)
	if err != nil {
		return err
	}
	defer stopAPI()
	d.watch.open(s.Home)
	// Flags are checked, the API bound and the ports probed before the
	// manifest is fetched and the model loads.
	if err := ps.Validate(); err != nil {
		return err
	}

	key, err := p2p.LoadIdentity(filepath.Join(s.Home, "identity.key"))
	if err != nil {
		return err
	}
	raw, err := key.GetPublic().Raw()
	if err != nil {
		return fmt.Errorf("node: identity: %w", err)
	}
	s.Machine = p2p.MachineOf(ed25519.PublicKey(raw))
	d.snapshot(func(st *Status) { st.Machine = fmt.Sprintf("%016x", s.Machine) })

	mpath := filepath.Join(s.Home, ManifestFile)
	m, canonical, err := readManifest(mpath)
	if errors.Is(err, os.ErrNotExist) {
		if m, err = fetchManifest(ctx, s, ps, key, log); err != nil {
			return err
		}
		if err := WriteManifest(mpath, m); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else if !canonical {
		// A home written before the canonical form: same manifest, other
		// bytes. Rewrite it so that file, store and network agree.
		if err := WriteManifest(mpath, m); err != nil {
			return err
		}
		log.Info("manifest rewritten in its canonical form (docs/PROTOCOL.md §9)", "path", mpath)
	}
	if _, err := m.Rules(); err != nil {
		return err
	}
	s = s.ApplyManifest(m)
	if s, err = s.withRunModel(m, log); err != nil {
		return err
	}
	if key, err = admitIdentity(ctx, s, key, log); err != nil {
		return err
	}
	if raw, err = key.GetPublic().Raw(); err != nil {
		return fmt.Errorf("node: identity: %w", err)
	}
	s.Machine = p2p.MachineOf(ed25519.PublicKey(raw))
	if m.Closed() && !slices.Contains(m.Admit, fmt.Sprintf("%016x", s.Machine)) {
		log.Warn("this machine is not admitted to the closed run: following it read-only", "machine", fmt.Sprintf("%016x", s.Machine))
		s.Steps = -1
	}
	d.s = s
	d.snapshot(func(st *Status) { st.Machine = fmt.Sprintf("%016x", s.Machine) })
	d.snapshot(func(st *Status) {
		st.Run, st.Pool, st.PoolChoices, st.State = s.Run, s.Pool, s.PoolChoices, StateReplaying
	})
	run, err := OpenRun(ctx, s, &m, log)
	if err != nil {
		return err
	}
	defer run.Close()
	d.run = run
	run.Trainer.observeForward = d.met.observeForward
	d.ver = newVerifier()
	if m.Data != nil {
		d.snapshot(func(st *Status) {
			st.Verification.Fraction, st.Verification.Tolerance = ps.VerifyFraction, m.Data.Tolerance
		})
	}

	popts := p2p.DefaultOptions()
	popts.Run, popts.Key, popts.Log, popts.Logger = s.Run, key, logAdapter{run.Log}, log.With("component", "p2p")
	popts.ListenAddrs, popts.Bootstrap = ps.Listen, ps.Bootstrap
	popts.MDNS, popts.DHT, popts.DHTServer = ps.MDNS, ps.DHT, ps.DHTServer
	popts.RelayClient, popts.HolePunching, popts.NATService, popts.NATPortMap = ps.RelayClient, ps.HolePunching, ps.NATService, ps.NATPortMap
	popts.StateInterval, popts.SyncInterval = ps.StateEvery, ps.SyncEvery
	popts.DropInbound = ps.DropGossip
	ps.apply(&popts)
	popts.KnownPeers = readKnownPeers(s.Home, log)
	if popts.Rules, err = m.Rules(); err != nil {
		return err
	}
	if !m.Closed() {
		popts.PowBits = m.PowBits // a closed run's list is its admission; pow_bits is ignored (PROTOCOL.md §8)
	}
	if popts.Manifest, err = m.Canonical(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	popts.State = d.announce
	popts.Snapshots = snapshotSource{d}
	if ps.SnapshotQuorum > 0 && run.Log.Stats().Updates == 0 {
		run.Trainer.Hold() // until a snapshot is installed, or given up on
	}
	peer, err := p2p.New(ctx, popts)
	if err != nil {
		return err
	}
	defer peer.Close()
	// The counts and the weights hash, before the status leaves "replaying".
	d.hashNow()
	for _, e := range run.Log.Exclusions() {
		d.noteExcluded(e.Machine, e.Evidence, peer.RunTag())
	}
	d.snapshot(func(st *Status) {
		d.peer = peer
		st.PeerID, st.Addrs, st.State = peer.ID().String(), peer.Addrs(), StateCatchingUp
	})
	log.Info("peer started", "peer_id", peer.ID(), "machine", fmt.Sprintf("%016x", s.Machine), "addrs", peer.Addrs())
	// Tools (zopeer status, the testnet) find the API here, even on a port
	// the kernel chose.
	if err := os.WriteFile(filepath.Join(s.Home, APIAddrFile), []byte(d.Status().API+"\n"), 0o644); err != nil {
		return fmt.Errorf("node: %w", err)
	}

	var wg sync.WaitGroup
	// A bootstrap peer of another run ends the peer with that error.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	wg.Go(func() { d.watchJoin(ctx, peer, fail) })
	wg.Go(func() { d.keepKnownPeers(ctx, peer) })
	wg.Go(func() { d.catchUp(ctx) })
	wg.Go(func() { d.verifySnapshots(ctx) })
	err = d.loop(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && (err == nil || errors.Is(err, context.Canceled)) {
		err = cause
	} else if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		d.snapshot(func(st *Status) { st.State, st.Contributing = StateStopping, false })
		cancel()
		wg.Wait()
		log.Info("stopping", "updates", run.Log.Stats().Updates)
		return nil
	}
	// A fatal error: nothing may keep serving a healthy-looking API.
	d.snapshot(func(st *Status) { st.State, st.Error, st.Contributing = StateFailed, err.Error(), false })
	log.Error("fatal: the peer stops", "err", err, "updates", run.Log.Stats().Updates)
	cancel()
	wg.Wait()
	return err
}

// Identity returns the machine id and peer ID of home's identity, creating
// the home and a new identity if there is none.
func Identity(home string) (uint64, string, error) {
	if err := os.MkdirAll(home, 0o755); err != nil {
		return 0, "", fmt.Errorf("node: %w", err)
	}
	key, err := p2p.LoadIdentity(filepath.Join(home, "identity.key"))
	if err != nil {
		return 0, "", err
	}
	raw, err := key.GetPublic().Raw()
	if err != nil {
		return 0, "", fmt.Errorf("node: identity: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return 0, "", fmt.Errorf("node: identity: %w", err)
	}
	return p2p.MachineOf(ed25519.PublicKey(raw)), id.String(), nil
}

// admitIdentity makes sure the identity may contribute to an open run with a
// proof of work: a key without it is replaced by a newly minted one when the
// home has no log yet (nothing was signed with it), and refused otherwise.
func admitIdentity(ctx context.Context, s Settings, key crypto.PrivKey, log *slog.Logger) (crypto.PrivKey, error) {
	if s.PowBits == 0 || s.Admission == store.AdmissionClosed {
		return key, nil
	}
	bits, err := p2p.KeyPowBits(s.Run, key.GetPublic())
	if err != nil || bits >= s.PowBits {
		return key, err
	}
	if _, err := os.Stat(filepath.Join(s.Home, "store")); err == nil {
		return nil, fmt.Errorf("node: run %q wants a proof of work of %d bits on every key and this home's identity has %d; "+
			"its log may hold updates signed with it, so it is not replaced: start from a new --home", s.Run, s.PowBits, bits)
	}
	log.Info("minting an identity with the run's proof of work (once per home)", "bits", s.PowBits)
	k, st, err := p2p.MintIdentity(ctx, s.Run, s.PowBits, 0)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := p2p.SaveIdentity(filepath.Join(s.Home, "identity.key"), k); err != nil {
		return nil, err
	}
	log.Info("identity minted", "tries", st.Tries, "seconds", fmt.Sprintf("%.1f", st.Elapsed.Seconds()))
	return k, nil
}

// hashNow records the log's counts and the weights hash in the status (the
// loop keeps them current from then on). Only before the loop starts, or from it.
func (d *Daemon) hashNow() {
	if d.run.Trainer.Held() {
		return // the weights lag the log: no consistent pair to record
	}
	dig := d.run.Log.Digest()
	n := d.run.Log.Stats().Updates
	d.run.Trainer.Flush()
	h := d.run.Engine.Weights().Hash()
	d.hashAt, d.lastHash = dig, time.Now()
	own := d.run.Log.Held(d.s.Machine).Count()
	d.snapshot(func(st *Status) {
		st.Updates, st.OwnUpdates, st.NextSample, st.Steps = n, own, d.run.Trainer.NextSample(), d.steps
		st.SetDigest, st.WeightsHash, st.HashUpdates = dig.String(), fmt.Sprintf("%x", h), n
	})
}

// fetchManifest joins the run's network with an empty log just long enough to
// learn the manifest from a peer.
func fetchManifest(ctx context.Context, s Settings, ps PeerSettings, key crypto.PrivKey, log *slog.Logger) (store.Manifest, error) {
	if len(ps.Bootstrap) == 0 && !ps.MDNS && !ps.DHT {
		return store.Manifest{}, fmt.Errorf("node: no %s in %s and no way to reach peers: run `zopeer init` or give --bootstrap", ManifestFile, s.Home)
	}
	popts := p2p.DefaultOptions()
	popts.Run, popts.Key, popts.Log, popts.Logger = s.Run, key, emptyLog{}, log.With("component", "p2p")
	popts.ListenAddrs, popts.Bootstrap, popts.MDNS, popts.DHT = ps.Listen, ps.Bootstrap, ps.MDNS, ps.DHT
	ps.apply(&popts)
	popts.KnownPeers = readKnownPeers(s.Home, log)
	peer, err := p2p.New(ctx, popts)
	if err != nil {
		return store.Manifest{}, err
	}
	defer peer.Close()
	log.Info("looking for a peer of the run to fetch its manifest", "run", s.Run, "within", ps.JoinTimeout)
	if err := peer.AwaitRunPeer(ctx, ps.JoinTimeout); err != nil {
		return store.Manifest{}, fmt.Errorf("node: joining run %q: %w", s.Run, err)
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := peer.FetchManifest(fctx)
	if err != nil {
		return store.Manifest{}, err
	}
	m, err := store.ParseManifest(b)
	if err != nil {
		return m, fmt.Errorf("node: manifest from peers: %w", err)
	}
	if c, err := m.Canonical(); err != nil || !bytes.Equal(c, b) {
		// Every donor serves the canonical bytes (a donor of an older build
		// served another layout of the same manifest: it is read all the same).
		log.Warn("peers served the manifest in a non-canonical form (an older zopeer?)")
	}
	if m.Run != s.Run {
		return m, fmt.Errorf("node: peers sent the manifest of run %q, not %q", m.Run, s.Run)
	}
	log.Info("got the run manifest", "run", m.Run, "base_digest", fmt.Sprintf("%x", m.BaseDigest[:8]))
	return m, nil
}

// announce is the state p2p publishes: the latest consistent (count, digest, hash).
func (d *Daemon) announce() (p2p.State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.snap.WeightsHash == "" {
		return p2p.State{}, false
	}
	var st p2p.State
	st.Count = d.snap.HashUpdates
	dig, _ := hex.DecodeString(d.snap.SetDigest)
	h, _ := hex.DecodeString(d.snap.WeightsHash)
	copy(st.Digest[:], dig)
	copy(st.WeightsHash[:], h)
	return st, true
}

func (d *Daemon) snapshot(f func(*Status)) {
	d.mu.Lock()
	f(&d.snap)
	d.mu.Unlock()
}

// Status returns the current status.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	st := d.snap
	st.Flagged = append([]string(nil), st.Flagged...)
	st.Verification.Banned = append([]string(nil), st.Verification.Banned...)
	st.Verification.SkippedBy = maps.Clone(st.Verification.SkippedBy)
	st.Mismatches = append([]Mismatch(nil), st.Mismatches...)
	st.Discredited = append([]string(nil), st.Discredited...)
	st.Excluded = append([]Excluded(nil), st.Excluded...)
	peer := d.peer
	d.mu.Unlock()
	if peer != nil {
		st.P2P = peer.Stats()
		st.Peers = st.P2P.Peers
		st.Refused, st.RefusedMachines = st.P2P.Refused, st.P2P.RefusedMachines
		st.Network = peer.NetInfo()
		st.Traffic = peer.Traffic()
		st.Addrs = peer.Addrs()
	}
	st.Uptime = time.Since(d.start).Seconds()
	d.fillWatch(&st)
	return st
}
