package p2p

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/zopeer/zopeer/zo"
)

// Options configures a Peer. Start from DefaultOptions: it is the one place
// defaults live.
type Options struct {
	Run string         // run identifier; scopes topics, discovery and messages
	Key crypto.PrivKey // Ed25519 identity (LoadIdentity); signs batches
	Log Log            // the caller's update log, read to validate and to serve sync

	ListenAddrs []string // multiaddrs to listen on
	Bootstrap   []string // multiaddrs with /p2p/<id> to dial at start and keep dialled
	// KnownPeers are peers met before (persisted by the caller, KnownPeers):
	// dialled at start and whenever this peer has none, like bootstrap
	// peers, so that discovery survives the loss of any bootstrap host.
	KnownPeers []string
	// PeerExchange makes gossipsub hand pruned peers other peers' signed
	// records (PX): serving and bootstrap nodes turn it on.
	PeerExchange bool
	// DialTimeout bounds one dial of a bootstrap or known peer.
	DialTimeout time.Duration

	MDNS      bool // discover peers on the LAN (service name per run)
	DHT       bool // Kademlia DHT ("/zopeer" prefix) with a per-run rendezvous
	DHTServer bool // force DHT server mode (bootstrap nodes; loopback never looks public)
	// DiscoveryInterval paces bootstrap re-dials and DHT rendezvous lookups.
	DiscoveryInterval time.Duration

	RelayClient  bool     // use circuit relays to reach peers behind NAT (AutoRelay, fed by known peers)
	StaticRelays []string // relays (multiaddrs with /p2p/<id>) to reserve a slot on instead of known peers
	// RelayReservations is how many relays AutoRelay keeps a reservation on
	// while this peer is not known to be public.
	RelayReservations int
	RelayService      bool // be a circuit relay for others, once AutoNAT finds this peer public
	// The relay service's bounds: reservations held for others, and open
	// relayed connections per peer.
	RelayMaxReservations int
	RelayMaxCircuits     int
	HolePunching         bool // DCUtR hole punching (upgrades relayed connections to direct ones)
	NATService           bool // answer AutoNAT dial-back requests for other peers
	AutoNATv2            bool // also check our own reachability per address with AutoNAT v2
	NATPortMap           bool // UPnP / NAT-PMP port mapping

	// MeshDegree is gossipsub's D, the number of peers each peer forwards a
	// message to; every peer receives a message about D times, so D sets the
	// bytes per gradient a swarm costs (docs/BENCHMARKS.md, p2p), against
	// resilience to loss and churn, which anti-entropy backs up. The default,
	// 3 (libp2p's is 6), halves the copies in small runs; peers of a run
	// with other values still interoperate (D is a local choice).
	MeshDegree int

	// Gossip queue sizes: bursts of tiny messages overflow the libp2p defaults (32).
	OutboundQueue int
	ValidateQueue int
	// Deliver is the capacity of the Batches and States channels and of the
	// gossip subscriptions feeding them.
	Deliver int

	SyncInterval  time.Duration // between anti-entropy rounds
	SyncDonors    int           // peers asked for digests in one round
	SyncTimeout   time.Duration // deadline of one sync stream
	SyncInbound   int           // sync streams served at once
	StateInterval time.Duration // between state announcements (when State is set)
	// State, if set, is called every StateInterval and its result announced
	// unless it returns false.
	State func() (State, bool)
	// Manifest is the run manifest, served to joiners that lack it (opaque to
	// p2p, at most MaxManifestSize bytes; nil serves nothing).
	Manifest []byte
	// Snapshots, if set, serves snapshot requests (snapshot.go); nil answers
	// every snapshot request with "none".
	Snapshots Snapshots
	// Rules are the run's admission rules (manifest): a batch with any update
	// outside them is rejected by the validator.
	Rules zo.Rules
	// PowBits is the proof of work every signer's key must carry (open runs).
	PowBits int
	// AuthorRate and AuthorBurst bound, per signing machine, the updates
	// gossip delivers (a token bucket): more are ignored for anti-entropy to
	// fetch later, and a machine that keeps exceeding it is scored down.
	AuthorRate  float64
	AuthorBurst float64
	// DropInbound is the fraction of inbound gossip dropped on purpose, in
	// [0, 1): a test hook that simulates loss; anti-entropy must repair it.
	DropInbound float64

	Logger *slog.Logger
}

// DefaultOptions returns the defaults; the caller sets Run, Key and Log.
func DefaultOptions() Options {
	return Options{
		ListenAddrs:          []string{"/ip4/0.0.0.0/tcp/4747", "/ip4/0.0.0.0/udp/4747/quic-v1"},
		MDNS:                 true,
		DHT:                  true,
		RelayClient:          true,
		RelayReservations:    2,
		RelayService:         true,
		RelayMaxReservations: 64,
		RelayMaxCircuits:     8,
		HolePunching:         true,
		NATService:           true,
		AutoNATv2:            true,
		DialTimeout:          5 * time.Second,
		DiscoveryInterval:    30 * time.Second,
		MeshDegree:           3,
		OutboundQueue:        4096,
		ValidateQueue:        4096,
		Deliver:              4096,
		SyncInterval:         5 * time.Second,
		SyncDonors:           4,
		SyncTimeout:          30 * time.Second,
		SyncInbound:          16,
		StateInterval:        30 * time.Second,
		AuthorRate:           8192,
		AuthorBurst:          65536,
		Logger:               slog.Default(),
	}
}

func (o *Options) check() error {
	switch {
	case o.Run == "":
		return fmt.Errorf("p2p: options: empty Run")
	case o.Key == nil || o.Key.Type() != crypto.Ed25519:
		return fmt.Errorf("p2p: options: Key must be an Ed25519 key")
	case o.Log == nil:
		return fmt.Errorf("p2p: options: nil Log")
	case o.MeshDegree < 2:
		return fmt.Errorf("p2p: options: MeshDegree %d, want at least 2", o.MeshDegree)
	case o.OutboundQueue <= 0 || o.ValidateQueue <= 0 || o.Deliver <= 0:
		return fmt.Errorf("p2p: options: queue sizes must be positive")
	case o.SyncInterval <= 0 || o.SyncTimeout <= 0 || o.StateInterval <= 0 || o.DiscoveryInterval <= 0:
		return fmt.Errorf("p2p: options: intervals must be positive")
	case o.SyncDonors <= 0 || o.SyncInbound <= 0:
		return fmt.Errorf("p2p: options: SyncDonors and SyncInbound must be positive")
	case len(o.StaticRelays) > 0 && !o.RelayClient:
		return fmt.Errorf("p2p: options: StaticRelays needs RelayClient")
	case o.RelayService && (o.RelayMaxReservations <= 0 || o.RelayMaxCircuits <= 0):
		return fmt.Errorf("p2p: options: the relay service needs RelayMaxReservations and RelayMaxCircuits > 0")
	case o.DialTimeout <= 0:
		return fmt.Errorf("p2p: options: DialTimeout must be positive")
	case o.DropInbound < 0 || o.DropInbound >= 1:
		return fmt.Errorf("p2p: options: DropInbound %v outside [0, 1)", o.DropInbound)
	case len(o.Manifest) > MaxManifestSize:
		return fmt.Errorf("p2p: options: manifest of %d bytes, limit %d", len(o.Manifest), MaxManifestSize)
	case o.Logger == nil:
		return fmt.Errorf("p2p: options: nil Logger")
	case o.PowBits < 0 || o.PowBits > 64:
		return fmt.Errorf("p2p: options: PowBits %d outside [0, 64]", o.PowBits)
	case !(o.AuthorRate > 0) || !(o.AuthorBurst >= 1):
		return fmt.Errorf("p2p: options: AuthorRate must be positive and AuthorBurst at least 1")
	}
	return nil
}
