package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/multiformats/go-multiaddr"

	"github.com/zopeer/zopeer/zo"
)

// Log is the read side of the caller's update log. p2p consults it to judge
// incoming batches and to answer sync requests; it never writes to it: the
// caller stores what Batches delivers. Implementations must be safe for
// concurrent use.
type Log interface {
	// Get returns the update held for (machine, sample), if any.
	Get(machine, sample uint64) (zo.Update, bool, error)
	// Holdings returns, for every machine with updates and in increasing
	// machine order, the samples held (valid, non-empty Ranges).
	Holdings() ([]Holding, error)
	// Batches returns the stored signed batches (Batch.Raw, byte for byte) of
	// machine that hold any sample in [lo, hi], in increasing order of First.
	// It may stop once they total max updates or more.
	Batches(machine, lo, hi uint64, max int) ([][]byte, error)
	// Excluded reports whether machine is excluded from the run; Holdings
	// and Batches leave excluded machines out.
	Excluded(machine uint64) bool
	// Exclusions lists the excluded machines in increasing order.
	Exclusions() []uint64
	// Evidence returns the evidence (Evidence.Raw) that excluded machine.
	Evidence(machine uint64) ([]byte, bool)
}

// Equivocation is evidence that a machine signed two different updates for one
// sample: Batch (signed) conflicts with Held, which the log holds in another
// signed batch of the same machine.
type Equivocation struct {
	Machine, Sample uint64
	Held, Got       zo.Update
	Batch           []byte  // the signed batch carrying Got
	From            peer.ID // the peer that relayed it
}

// Stats are plain counters for metrics. Gossip counts come from the pubsub
// tracer and cover both topics; bytes come from libp2p's bandwidth counter
// (stream payloads, so above yamux and the security layer; totals are folded
// in once a second).
type Stats struct {
	Published        uint64 `json:"published"`         // batches this peer published
	GossipAccepted   uint64 `json:"gossip_accepted"`   // messages validated and delivered
	GossipRejected   uint64 `json:"gossip_rejected"`   // messages failing validation (penalises the sender)
	GossipIgnored    uint64 `json:"gossip_ignored"`    // stale, replayed or already-logged messages
	GossipDuplicates uint64 `json:"gossip_duplicates"` // messages seen before (pubsub seen-cache)
	ValidateDropped  uint64 `json:"validate_dropped"`  // inbound messages dropped: validation queue full or throttled
	GossipDropped    uint64 `json:"gossip_dropped"`    // outbound RPCs dropped on full queues
	Undeliverable    uint64 `json:"undeliverable"`     // messages our subscription was too slow to take
	SyncServed       uint64 `json:"sync_served"`       // sync requests answered
	SyncBusy         uint64 `json:"sync_busy"`         // sync requests refused: too many at once
	SyncFetched      uint64 `json:"sync_fetched"`      // batches delivered from sync responses
	SyncUpdates      uint64 `json:"sync_updates"`      // updates in those batches
	SyncRejected     uint64 `json:"sync_rejected"`     // sync responses cut off for a protocol violation
	StatesDropped    uint64 `json:"states_dropped"`    // state announcements the caller did not take in time
	Equivocations    uint64 `json:"equivocations"`     // conflicting updates detected
	EvidenceReceived uint64 `json:"evidence_received"` // verified evidence delivered (gossip and sync)
	// Refused counts refused batches by reason (Reason* constants); Rejected
	// and Ignored gossip above count messages of both kinds.
	// The node's status shows both at its top level.
	Refused         map[string]uint64 `json:"-"`
	RefusedMachines []Refused         `json:"-"`          // most refused first, at most 256
	Peers           int               `json:"peers"`      // connected peers
	MeshPeers       int               `json:"mesh_peers"` // peers in our gossip mesh of the updates topic
	BytesIn         int64             `json:"bytes_in"`
	BytesOut        int64             `json:"bytes_out"`
	RateIn          float64           `json:"rate_in"` // bytes per second
	RateOut         float64           `json:"rate_out"`
}

type counters struct {
	published, accepted, rejected, ignored, duplicates, valDropped, dropped, undeliverable atomic.Uint64
	served, busy, fetched, syncUpdates, syncRejected, statesDropped, equivocations         atomic.Uint64
	evidence                                                                               atomic.Uint64
}

// Peer is the node's presence on the network: a libp2p host in one run's
// gossip topics, discovery, and the sync protocol. Incoming updates come out of
// Batches, validated; Close stops everything.
type Peer struct {
	opts    Options
	run     RunTag
	machine uint64
	host    host.Host
	bw      *metrics.BandwidthCounter
	ps      *pubsub.PubSub
	updates *pubsub.Topic
	states  *pubsub.Topic
	updSub  *pubsub.Subscription
	stSub   *pubsub.Subscription
	evTopic *pubsub.Topic
	evSub   *pubsub.Subscription
	pol     *police
	kdht    *dht.IpfsDHT
	mdns    mdns.Service

	batches   chan *Batch
	statesCh  chan State
	evidence  chan *Evidence
	trigger   chan struct{}   // wakes the anti-entropy loop
	announceC chan struct{}   // wakes the announcement loop
	roundMu   sync.Mutex      // held by the anti-entropy round in progress
	inbound   chan struct{}   // semaphore on served sync streams
	serving   map[peer.ID]int // sync streams being served, per peer; guarded by mu
	c         counters
	tr        *tracer

	mu         sync.Mutex
	flagged    map[uint64]Equivocation
	rejected   map[uint64]int            // accusations of each accuser that did not hold up
	accBuckets map[uint64]*accuserBucket // accusations relayed per accuser (allowAccusation)
	wanted     map[uint64]want           // samples the node asked for (Want)
	lastState  map[uint64]uint64         // machine → newest announcement time seen
	// heardStates is what each machine last announced (lean.go).
	heardStates map[uint64]heard
	inflight    []inflight         // batches delivered by gossip, oldest first (lean.go)
	chasing     atomic.Bool        // a chaseLater check is pending
	dialErrs    map[peer.ID]string // last dial error per bootstrap or known peer
	met         map[peer.ID]bool   // peers that joined the run's topic (redialled when alone)
	reach       reach
	punch       punchTracer

	// stopped is closed by Close; calls made on the caller's context
	// (SyncNow) end with it too.
	stopped   chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	gmu       sync.Mutex // guards closed against wg.Add racing wg.Wait
	closed    bool
	closeOnce sync.Once
}

// Topic names of a run.
func updatesTopic(run string) string { return "zopeer/" + run + "/updates/1" }
func statesTopic(run string) string  { return "zopeer/" + run + "/state/1" }
func evidenceTopic(run string) string {
	return "zopeer/" + run + "/evidence/1"
}

// New starts a peer: host, gossip, sync protocol, discovery and the
// anti-entropy loop. ctx bounds start-up only (the first bootstrap dials);
// the peer runs until Close.
func New(ctx context.Context, opts Options) (*Peer, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	sk, err := ed25519Key(opts.Key)
	if err != nil {
		return nil, err
	}
	p := &Peer{
		opts:        opts,
		run:         NewRunTag(opts.Run),
		bw:          metrics.NewBandwidthCounter(),
		batches:     make(chan *Batch, opts.Deliver),
		statesCh:    make(chan State, opts.Deliver),
		evidence:    make(chan *Evidence, opts.Deliver),
		pol:         newPolice(opts.AuthorRate, opts.AuthorBurst),
		trigger:     make(chan struct{}, 1),
		announceC:   make(chan struct{}, 1),
		inbound:     make(chan struct{}, opts.SyncInbound),
		serving:     map[peer.ID]int{},
		flagged:     map[uint64]Equivocation{},
		rejected:    map[uint64]int{},
		accBuckets:  map[uint64]*accuserBucket{},
		wanted:      map[uint64]want{},
		lastState:   map[uint64]uint64{},
		heardStates: map[uint64]heard{},
		dialErrs:    map[peer.ID]string{},
		met:         map[peer.ID]bool{},
		stopped:     make(chan struct{}),
	}
	p.machine = MachineOf(sk.Public().(ed25519.PublicKey))
	life, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if err := p.start(ctx, life); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Peer) start(ctx, life context.Context) error {
	o := &p.opts
	boot, err := parseAddrs(o.Bootstrap)
	if err != nil {
		return err
	}
	if _, err := parseAddrs(o.KnownPeers); err != nil {
		return err
	}
	if err := CheckListen(o.ListenAddrs); err != nil {
		return err
	}
	lopts := []libp2p.Option{
		libp2p.Identity(o.Key),
		libp2p.ListenAddrStrings(o.ListenAddrs...),
		libp2p.BandwidthReporter(p.bw),
	}
	nat, err := p.natOptions(boot)
	if err != nil {
		return err
	}
	lopts = append(lopts, nat...)
	h, err := libp2p.New(lopts...)
	if err != nil {
		return fmt.Errorf("p2p: host: %w", err)
	}
	p.host = h

	ut, st, et := updatesTopic(o.Run), statesTopic(o.Run), evidenceTopic(o.Run)
	p.tr = newTracer(&p.c, ut, st, et)
	p.ps, err = pubsub.NewGossipSub(life, h,
		// Authenticity comes from the batch's own signature: pubsub's per-message
		// signature, author and seqno would cost ~110 bytes per message.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithPeerOutboundQueueSize(o.OutboundQueue),
		pubsub.WithValidateQueueSize(o.ValidateQueue),
		pubsub.WithRawTracer(p.tr),
		pubsub.WithPeerScore(scoreParams(p.pol.appScore, ut, st, et), scoreThresholds()),
		pubsub.WithGossipSubParams(meshParams(o.MeshDegree)),
		pubsub.WithPeerExchange(o.PeerExchange),
	)
	if err != nil {
		return fmt.Errorf("p2p: gossipsub: %w", err)
	}
	if err := p.ps.RegisterTopicValidator(ut, p.validateBatch); err != nil {
		return fmt.Errorf("p2p: validator: %w", err)
	}
	if err := p.ps.RegisterTopicValidator(st, p.validateState); err != nil {
		return fmt.Errorf("p2p: validator: %w", err)
	}
	if err := p.ps.RegisterTopicValidator(et, p.validateEvidence); err != nil {
		return fmt.Errorf("p2p: validator: %w", err)
	}
	if p.evTopic, err = p.ps.Join(et); err != nil {
		return fmt.Errorf("p2p: join %s: %w", et, err)
	}
	if p.evSub, err = p.evTopic.Subscribe(pubsub.WithBufferSize(o.Deliver)); err != nil {
		return fmt.Errorf("p2p: subscribe: %w", err)
	}
	if p.updates, err = p.ps.Join(ut); err != nil {
		return fmt.Errorf("p2p: join %s: %w", ut, err)
	}
	if p.states, err = p.ps.Join(st); err != nil {
		return fmt.Errorf("p2p: join %s: %w", st, err)
	}
	if p.updSub, err = p.updates.Subscribe(pubsub.WithBufferSize(o.Deliver)); err != nil {
		return fmt.Errorf("p2p: subscribe: %w", err)
	}
	if p.stSub, err = p.states.Subscribe(pubsub.WithBufferSize(o.Deliver)); err != nil {
		return fmt.Errorf("p2p: subscribe: %w", err)
	}

	h.SetStreamHandler(SyncProtocol, p.serveSync)
	// Says which run this peer serves (identify lists it); nothing is spoken on it.
	h.SetStreamHandler(runProtocol(o.Run), func(s network.Stream) { s.Reset() })
	events, err := p.updates.EventHandler()
	if err != nil {
		return fmt.Errorf("p2p: topic events: %w", err)
	}

	if o.DHT {
		mode := dht.ModeAuto
		if o.DHTServer {
			mode = dht.ModeServer
		}
		// The discovery loop refreshes the routing table (dhtRefresh): the
		// DHT's own refresh runs every 2 min while it knows 10 peers or
		// fewer, i.e. always in a small run, and was most of an idle
		// peer's DHT traffic.
		p.kdht, err = dht.New(h, dht.ProtocolPrefix("/zopeer"), dht.Mode(mode), dht.BootstrapPeers(boot...),
			dht.AddressFilter(dhtAddrs), dht.DisableAutoRefresh())
		if err != nil {
			return fmt.Errorf("p2p: dht: %w", err)
		}
	}
	if o.MDNS {
		p.mdns = mdns.NewMdnsService(h, "zopeer-"+hex.EncodeToString(p.run[:]), mdnsNotifee{p})
		if err := p.mdns.Start(); err != nil {
			return fmt.Errorf("p2p: mdns: %w", err)
		}
	}
	for _, ai := range boot {
		h.ConnManager().Protect(ai.ID, "zopeer-bootstrap")
	}
	p.spawn(func() { p.watchReachability(life) })
	p.connectAll(ctx, boot)
	if p.kdht != nil {
		if err := p.kdht.Bootstrap(life); err != nil {
			return fmt.Errorf("p2p: dht bootstrap: %w", err)
		}
	}

	p.spawn(func() { p.readBatches(life) })
	p.spawn(func() { p.readStates(life) })
	p.spawn(func() { p.readEvidence(life) })
	p.spawn(func() { p.syncLoop(life) })
	p.spawn(func() { p.watchJoins(life, events) })
	if len(boot) > 0 || p.kdht != nil || len(o.KnownPeers) > 0 {
		p.spawn(func() { p.discoveryLoop(life, boot) })
	}
	if o.State != nil {
		p.spawn(func() { p.announceLoop(life) })
	}
	o.Logger.Info("p2p: started", "peer", h.ID(), "machine", p.machine, "run", o.Run, "addrs", h.Addrs())
	return nil
}

// spawn runs f in a goroutine that Close waits for; after Close it does nothing.
func (p *Peer) spawn(f func()) {
	p.gmu.Lock()
	defer p.gmu.Unlock()
	if p.closed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// watchJoins starts an anti-entropy round whenever a peer joins the run's
// topic, so a joiner (or a peer back from a partition) syncs at once; it
// exits when life ends.
func (p *Peer) watchJoins(life context.Context, events *pubsub.TopicEventHandler) {
	defer events.Cancel()
	for {
		ev, err := events.NextPeerEvent(life)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			p.remember(ev.Peer)
			p.wake()
		}
	}
}

// enter registers with Close a goroutine it did not start: a stream handler,
// a caller in SyncNow.
func (p *Peer) enter() bool {
	p.gmu.Lock()
	defer p.gmu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// Close stops every goroutine, leaves the topics and closes the host. The
// Batches and States channels are closed once nothing can send on them.
// It is idempotent.
func (p *Peer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.gmu.Lock()
		p.closed = true
		p.gmu.Unlock()
		close(p.stopped)
		p.cancel()
		if p.updSub != nil {
			p.updSub.Cancel()
		}
		if p.stSub != nil {
			p.stSub.Cancel()
		}
		if p.evSub != nil {
			p.evSub.Cancel()
		}
		if p.mdns != nil {
			p.mdns.Close()
		}
		if p.kdht != nil {
			p.kdht.Close()
		}
		if p.host != nil {
			p.host.RemoveStreamHandler(SyncProtocol)
			// Closing the host resets open streams, which unblocks handlers
			// and fetches waiting on the network.
			if cerr := p.host.Close(); cerr != nil {
				err = fmt.Errorf("p2p: close host: %w", cerr)
			}
		}
		p.wg.Wait()
		close(p.batches)
		close(p.statesCh)
		close(p.evidence)
	})
	return err
}

// Batches delivers validated batches from gossip and sync that hold at least
// one update the Log did not hold when they were checked. The caller stores
// them; the same batch may come twice, so storing must be idempotent and must
// re-check for conflicts (see ReportEquivocation).
func (p *Peer) Batches() <-chan *Batch { return p.batches }

// States delivers other peers' state announcements, newest per machine; when
// the caller falls behind, announcements are dropped (and counted).
func (p *Peer) States() <-chan State { return p.statesCh }

// ID is the libp2p peer ID.
func (p *Peer) ID() peer.ID { return p.host.ID() }

// Machine is this peer's machine id, bound to its key (MachineOf).
func (p *Peer) Machine() uint64 { return p.machine }

// RunTag is the run's tag on the wire.
func (p *Peer) RunTag() RunTag { return p.run }

// Addrs returns the listen addresses with /p2p/<id>, usable as Bootstrap.
func (p *Peer) Addrs() []string {
	ai := peer.AddrInfo{ID: p.host.ID(), Addrs: p.host.Addrs()}
	mas, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	out := make([]string, len(mas))
	for i, m := range mas {
		out[i] = m.String()
	}
	return out
}

// Connect dials a peer given a multiaddr with /p2p/<id>.
func (p *Peer) Connect(ctx context.Context, addr string) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("p2p: connect: %w", err)
	}
	if err := p.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// NewBatch signs a batch of this peer's updates: samples first..first+len(codes)-1.
func (p *Peer) NewBatch(first uint64, exp uint8, codes []int8) (*Batch, error) {
	return SignBatch(p.opts.Key, p.run, first, exp, codes)
}

// NewBatchExt signs a batch with extension records (version 2 if any).
func (p *Peer) NewBatchExt(first uint64, exp uint8, codes []int8, exts []Ext) (*Batch, error) {
	return SignBatchExt(p.opts.Key, p.run, first, exp, codes, exts)
}

// NewAccusation signs this peer's accusation of sample of the batch raw.
func (p *Peer) NewAccusation(raw []byte, sample uint64) (*Evidence, error) {
	return NewAccusation(p.opts.Key, p.run, raw, sample)
}

// Publish gossips a batch made by NewBatch. Store it first: peers that miss
// the gossip fetch it from the log.
func (p *Peer) Publish(ctx context.Context, b *Batch) error {
	if err := p.updates.Publish(ctx, b.Raw); err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	p.c.published.Add(1)
	return nil
}

// Announce gossips a state announcement; Machine and PubKey are filled in.
func (p *Peer) Announce(ctx context.Context, s State) error {
	raw, err := EncodeState(p.opts.Key, p.run, s)
	if err != nil {
		return err
	}
	if err := p.states.Publish(ctx, raw); err != nil {
		return fmt.Errorf("p2p: announce: %w", err)
	}
	return nil
}

// Flagged returns the first evidence recorded against each machine caught
// equivocating, by machine.
func (p *Peer) Flagged() []Equivocation {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Equivocation, 0, len(p.flagged))
	for _, e := range p.flagged {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Machine < out[j].Machine })
	return out
}

// ReportEquivocation records a conflict the caller found while storing (two
// conflicting batches can both pass validation before either is stored).
func (p *Peer) ReportEquivocation(e Equivocation) {
	p.c.equivocations.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.flagged[e.Machine]; !ok {
		p.flagged[e.Machine] = e
		p.opts.Logger.Warn("p2p: machine equivocated", "machine", e.Machine, "sample", e.Sample, "from", e.From)
	}
}

// Stats returns the counters.
func (p *Peer) Stats() Stats {
	bw := p.bw.GetBandwidthTotals()
	refused, machines := p.pol.stats()
	return Stats{
		Refused:          refused,
		RefusedMachines:  machines,
		Published:        p.c.published.Load(),
		GossipAccepted:   p.c.accepted.Load(),
		GossipRejected:   p.c.rejected.Load(),
		GossipIgnored:    p.c.ignored.Load(),
		GossipDuplicates: p.c.duplicates.Load(),
		ValidateDropped:  p.c.valDropped.Load(),
		GossipDropped:    p.c.dropped.Load(),
		Undeliverable:    p.c.undeliverable.Load(),
		SyncServed:       p.c.served.Load(),
		SyncBusy:         p.c.busy.Load(),
		SyncFetched:      p.c.fetched.Load(),
		SyncUpdates:      p.c.syncUpdates.Load(),
		SyncRejected:     p.c.syncRejected.Load(),
		StatesDropped:    p.c.statesDropped.Load(),
		Equivocations:    p.c.equivocations.Load(),
		EvidenceReceived: p.c.evidence.Load(),
		Peers:            len(p.host.Network().Peers()),
		MeshPeers:        p.tr.meshSize(),
		BytesIn:          bw.TotalIn,
		BytesOut:         bw.TotalOut,
		RateIn:           bw.RateIn,
		RateOut:          bw.RateOut,
	}
}

// verdict is what the log says about a decoded, authentic batch.
type verdict int

const (
	fresh    verdict = iota // holds an update the log lacks
	known                   // every update already logged
	conflict                // contradicts the log: the machine equivocated
	unknown                 // the log failed to answer
)

func (p *Peer) judge(b *Batch, from peer.ID) verdict {
	v := known
	for i := range b.Codes {
		s := b.First + uint64(i)
		held, ok, err := p.opts.Log.Get(b.Machine, s)
		if err != nil {
			p.opts.Logger.Warn("p2p: log lookup", "err", err)
			return unknown
		}
		if !ok {
			v = fresh
			continue
		}
		if got := b.Update(i); !held.SameValue(got) {
			p.ReportEquivocation(Equivocation{
				Machine: b.Machine, Sample: s, Held: held,
				Got:   got,
				Batch: b.Raw, From: from,
			})
			if ev := p.evidenceAgainst(b, s); ev != nil {
				p.offerEvidence(ev)
			}
			return conflict
		}
	}
	return v
}

// validateBatch is the gossip validator of the updates topic. What breaks a
// rule of the run (a pure function of the batch and the manifest, so an
// honest relayer never forwards it) is rejected and penalises the forwarder;
// what depends on what this peer holds (a replay, one half of an
// equivocation, a machine it has excluded) is ignored, so honest relayers
// that have not seen as much are never penalised, and the author, not the
// relayer, is scored down where it misbehaved.
func (p *Peer) validateBatch(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == p.host.ID() {
		return pubsub.ValidationAccept // our own, made by NewBatch
	}
	if p.opts.DropInbound > 0 && rand.Float64() < p.opts.DropInbound {
		return pubsub.ValidationIgnore
	}
	b, err := p.admitBatch(msg.Data)
	if err != nil {
		p.opts.Logger.Debug("p2p: rejected batch", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	if p.opts.Log.Excluded(b.Machine) {
		p.pol.refuse(b.Machine, true, ReasonExcluded)
		p.pol.penalise(b.PubKey, penaltyTime)
		return pubsub.ValidationIgnore
	}
	if ok, abusive := p.pol.allow(b.Machine, len(b.Codes), time.Now()); !ok {
		p.pol.refuse(b.Machine, true, ReasonRate)
		if abusive {
			p.pol.penalise(b.PubKey, penaltyTime)
		}
		return pubsub.ValidationIgnore // anti-entropy fetches it later, at our pace
	}
	switch p.judge(b, from) {
	case fresh:
		msg.ValidatorData = b
		return pubsub.ValidationAccept
	case conflict:
		p.pol.refuse(b.Machine, true, ReasonEquivocation)
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationIgnore
	}
}

// penaltyTime is how long an author that floods or was excluded stays graylisted.
const penaltyTime = 10 * time.Minute

// admitBatch decodes and authenticates a batch and checks it against the
// run's rules and the signer's proof of work, counting a refusal's reason.
// Gossip and sync both use it.
func (p *Peer) admitBatch(data []byte) (*Batch, error) {
	b, reason, err := checkBatch(data, p.run, p.opts.Rules, func(b *Batch) bool {
		return p.pol.powOK(p.opts.Run, b.PubKey, b.Machine, p.opts.PowBits)
	})
	if err != nil {
		var machine uint64
		if b != nil {
			machine = b.Machine
		}
		p.pol.refuse(machine, b != nil, reason)
		return nil, err
	}
	return b, nil
}

// checkBatch runs every Reject row of docs/PROTOCOL-WIRE.md §3.2 in order:
// decoding and the signature, the run's rules, the proof of work. On a
// refusal after decoding it returns the batch too, with the reason.
func checkBatch(data []byte, run RunTag, rules zo.Rules, powOK func(*Batch) bool) (*Batch, string, error) {
	b, err := DecodeBatch(data, run)
	if err != nil {
		return nil, reasonOf(err), err
	}
	if err := rules.CheckBatch(b.Machine, b.First, b.Exp, b.Codes); err != nil {
		return b, reasonOf(err), err
	}
	if err := checkBasis(b, rules.NeedBasis); err != nil {
		return b, ReasonBasis, err
	}
	if err := rules.CheckSlots(b.First, b.Slots()); err != nil {
		return b, ReasonPool, err
	}
	if !powOK(b) {
		return b, ReasonPow, fmt.Errorf("%w: machine %016x", errPow, b.Machine)
	}
	return b, "", nil
}

// evidenceAgainst builds the evidence that b conflicts, at sample s, with
// the batch the log holds; nil if the log keeps no signed batch for s (an
// update logged without one cannot convict anybody).
func (p *Peer) evidenceAgainst(b *Batch, s uint64) *Evidence {
	raws, err := p.opts.Log.Batches(b.Machine, s, s, 1)
	if err != nil {
		return nil
	}
	for _, raw := range raws {
		if ev, err := NewEvidence(p.run, raw, b.Raw); err == nil {
			return ev
		}
	}
	return nil
}

// offerEvidence hands evidence to the caller without blocking a validator;
// if the caller is behind, the next conflict found makes it again.
func (p *Peer) offerEvidence(ev *Evidence) {
	select {
	case p.evidence <- ev:
		p.c.evidence.Add(1)
	default:
	}
}

// Evidences delivers verified evidence of machines this peer's log has not
// excluded (from gossip, sync, or conflicts it caught itself). The caller
// excludes the machine (a pure function of the evidence) and publishes it
// with PublishEvidence.
func (p *Peer) Evidences() <-chan *Evidence { return p.evidence }

// PublishEvidence gossips evidence so every peer excludes the machine.
func (p *Peer) PublishEvidence(ctx context.Context, ev *Evidence) error {
	if err := p.evTopic.Publish(ctx, ev.Raw); err != nil {
		return fmt.Errorf("p2p: publish evidence: %w", err)
	}
	return nil
}

func (p *Peer) validateEvidence(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == p.host.ID() {
		return pubsub.ValidationAccept
	}
	ev, err := DecodeEvidence(msg.Data, p.run)
	if err != nil {
		p.opts.Logger.Debug("p2p: rejected evidence", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	if p.opts.Log.Excluded(ev.Machine) {
		return pubsub.ValidationIgnore // known: relaying it again helps nobody
	}
	if ev.IsAccusation() && p.accuserIgnored(ev.Accuser) {
		return pubsub.ValidationIgnore
	}
	if ev.IsAccusation() && !p.allowAccusation(ev.Accuser, time.Now()) {
		p.pol.penalise(ev.AccuserKey, penaltyTime)
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = ev
	return pubsub.ValidationAccept
}

// readEvidence hands gossiped evidence to the caller; exits when life ends.
func (p *Peer) readEvidence(life context.Context) {
	for {
		msg, err := p.evSub.Next(life)
		if err != nil {
			return
		}
		ev, ok := msg.ValidatorData.(*Evidence)
		if !ok || msg.ReceivedFrom == p.host.ID() {
			continue
		}
		select {
		case p.evidence <- ev:
			p.c.evidence.Add(1)
		case <-life.Done():
			return
		}
	}
}

// maxStateMachines bounds the machines whose announcements are tracked.
const maxStateMachines = 1 << 16

// maxClockSkew bounds how far in the future an announcement's time may be,
// so one bogus timestamp cannot silence a machine's later announcements.
const maxClockSkew = 5 * time.Minute

func (p *Peer) validateState(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == p.host.ID() {
		return pubsub.ValidationAccept
	}
	s, err := DecodeState(msg.Data, p.run)
	if err != nil {
		p.opts.Logger.Debug("p2p: rejected state", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	if s.Time > uint64(time.Now().Add(maxClockSkew).UnixMilli()) {
		return pubsub.ValidationIgnore
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	last, seen := p.lastState[s.Machine]
	if seen && s.Time <= last {
		return pubsub.ValidationIgnore // replayed or out of date
	}
	if !seen && len(p.lastState) >= maxStateMachines {
		return pubsub.ValidationIgnore // keys are free: bound the memory they cost
	}
	p.lastState[s.Machine] = s.Time
	p.noteStateLocked(s, time.Now())
	msg.ValidatorData = s
	return pubsub.ValidationAccept
}

// readBatches hands validated gossip to the caller; exits when life ends.
func (p *Peer) readBatches(life context.Context) {
	for {
		msg, err := p.updSub.Next(life)
		if err != nil {
			return
		}
		b, ok := msg.ValidatorData.(*Batch)
		if !ok || msg.ReceivedFrom == p.host.ID() {
			continue
		}
		p.noteInflight(b)
		if !p.deliver(life, b) {
			return
		}
	}
}

func (p *Peer) deliver(ctx context.Context, b *Batch) bool {
	select {
	case p.batches <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// readStates hands announcements to the caller and starts anti-entropy when
// a peer holds more than we do; exits when life ends.
func (p *Peer) readStates(life context.Context) {
	for {
		msg, err := p.stSub.Next(life)
		if err != nil {
			return
		}
		s, ok := msg.ValidatorData.(State)
		if !ok || msg.ReceivedFrom == p.host.ID() {
			continue
		}
		if hs, err := p.opts.Log.Holdings(); err == nil && s.Count > countHeld(hs) {
			p.chaseLater(s.Count)
		} else if p.opts.State != nil {
			// As many updates as ours but another set: sync.
			if own, ok := p.opts.State(); ok && own.Count == s.Count && own.Digest != s.Digest {
				p.wake()
			}
		}
		select {
		case p.statesCh <- s:
		default:
			p.c.statesDropped.Add(1)
		}
	}
}

// announceLoop publishes opts.State: at once when AnnounceSoon asks, every
// StateInterval when it changed since the last announcement, and every
// IdleAnnounce intervals when it did not (a heartbeat, so peers' views of it
// do not expire). It exits when life ends.
func (p *Peer) announceLoop(life context.Context) {
	t := time.NewTicker(p.opts.StateInterval)
	defer t.Stop()
	var last State
	var lastAt time.Time
	for {
		soon := false
		select {
		case <-life.Done():
			return
		case <-t.C:
		case <-p.announceC:
			soon = true
		}
		s, ok := p.opts.State()
		if !ok {
			continue
		}
		same := s.Count == last.Count && s.Digest == last.Digest && s.WeightsHash == last.WeightsHash
		if same && (soon || time.Since(lastAt) < IdleAnnounce*p.opts.StateInterval-p.opts.StateInterval/2) {
			continue
		}
		s.Time = uint64(time.Now().UnixMilli())
		if err := p.Announce(life, s); err != nil && life.Err() == nil {
			p.opts.Logger.Warn("p2p: announce", "err", err)
		}
		last, lastAt = s, time.Now()
	}
}

// IdleAnnounce is how many StateIntervals an unchanged state waits before
// it is announced again: each announcement costs every peer about D copies
// of ~200 bytes, the largest part of an idle swarm's traffic.
const IdleAnnounce = 10

// AnnounceSoon asks for the state to be announced now, if it changed.
func (p *Peer) AnnounceSoon() {
	select {
	case p.announceC <- struct{}{}:
	default:
	}
}

func countHeld(hs []Holding) uint64 {
	var n uint64
	for _, h := range hs {
		n += h.Samples.Count()
	}
	return n
}

// meshParams scales gossipsub's degree parameters from D, keeping libp2p's
// defaults at D = 6 (Dlo 5, Dhi 12, Dscore 4, Dout 2).
//
// Each message ID is offered (IHAVE) to non-mesh peers in one heartbeat
// only, not in HistoryGossip = 3 successive ones: a small run has few
// non-mesh peers, and anti-entropy fills what lazy gossip misses.
func meshParams(d int) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi, p.Dscore = d, max(1, d*5/6), 2*d, d*2/3
	p.Dout = max(0, min(p.Dlo-1, d/2-1)) // gossipsub wants Dout < Dlo and Dout < D/2
	p.HistoryGossip = 1
	return p
}

// messageID identifies a gossip message by its content, so the same batch
// relayed by different peers is one message.
func messageID(m *pb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:20])
}

func parseAddrs(ss []string) ([]peer.AddrInfo, error) {
	mas := make([]multiaddr.Multiaddr, 0, len(ss))
	for _, s := range ss {
		m, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: address %q: %w", s, err)
		}
		mas = append(mas, m)
	}
	ais, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("p2p: addresses: %w", err)
	}
	return ais, nil
}
