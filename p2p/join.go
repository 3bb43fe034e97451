package p2p

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// WrongRunError says a bootstrap peer serves another run.
type WrongRunError struct {
	Peer peer.ID
	Runs []string // the runs it serves
	Run  string   // ours
}

func (e *WrongRunError) Error() string {
	return fmt.Sprintf("peer %s serves run %s, not %s: check --bootstrap and --run", e.Peer, strings.Join(quoted(e.Runs), ", "), quote(e.Run))
}

// NoPeerError says no peer of the run was reached in time, and what was tried.
type NoPeerError struct {
	Within time.Duration
	Tried  []string // one line per way of finding peers
}

func (e *NoPeerError) Error() string {
	return fmt.Sprintf("no reachable peer of the run within %s; tried: %s", e.Within.Round(time.Second), strings.Join(e.Tried, "; "))
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}

// noteDial records the outcome of a dial, for NoPeerError.
func (p *Peer) noteDial(id peer.ID, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.dialErrs, id)
		return
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	p.dialErrs[id] = msg
}

// runPeers lists the connected peers that serve our run.
func (p *Peer) runPeers() []peer.ID {
	var out []peer.ID
	for _, id := range p.host.Network().Peers() {
		for _, r := range p.RunsOf(id) {
			if r == p.opts.Run {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// AwaitRunPeer returns nil as soon as a peer of this run is connected. It
// returns a *WrongRunError once every bootstrap peer has been tried and the
// ones reached all serve other runs, and a *NoPeerError, naming what was
// tried, when within passes first. Discovery goes on in the background
// whatever it returns.
func (p *Peer) AwaitRunPeer(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	boot, _ := parseAddrs(p.opts.Bootstrap)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if len(p.runPeers()) > 0 {
			return nil
		}
		if err := p.wrongRun(boot); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return p.noPeer(within, boot)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("p2p: waiting for a peer of the run: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// wrongRun returns a *WrongRunError when every bootstrap peer was either
// dialled in vain or serves other runs, and at least one serves another run.
func (p *Peer) wrongRun(boot []peer.AddrInfo) error {
	var wrong *WrongRunError
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ai := range boot {
		if runs := p.RunsOf(ai.ID); len(runs) > 0 {
			if wrong == nil {
				wrong = &WrongRunError{Peer: ai.ID, Runs: runs, Run: p.opts.Run}
			}
			continue
		}
		if _, failed := p.dialErrs[ai.ID]; !failed {
			return nil // not settled yet
		}
	}
	if wrong == nil {
		return nil
	}
	return wrong
}

func (p *Peer) noPeer(within time.Duration, boot []peer.AddrInfo) error {
	e := &NoPeerError{Within: within}
	p.mu.Lock()
	for _, ai := range boot {
		addr := ai.ID.String()
		if len(ai.Addrs) > 0 {
			addr = ai.Addrs[0].String() + "/p2p/" + ai.ID.String()
		}
		switch runs, msg := p.RunsOf(ai.ID), p.dialErrs[ai.ID]; {
		case len(runs) > 0:
			e.Tried = append(e.Tried, fmt.Sprintf("bootstrap %s: serves run %s", addr, strings.Join(quoted(runs), ", ")))
		case msg != "":
			e.Tried = append(e.Tried, fmt.Sprintf("bootstrap %s: %s", addr, msg))
		default:
			e.Tried = append(e.Tried, fmt.Sprintf("bootstrap %s: connected, not identified as a zopeer peer", addr))
		}
	}
	failedKnown := 0
	for _, s := range p.opts.KnownPeers {
		if ai, err := peer.AddrInfoFromString(s); err == nil {
			if _, failed := p.dialErrs[ai.ID]; failed {
				failedKnown++
			}
		}
	}
	p.mu.Unlock()
	if len(boot) == 0 {
		e.Tried = append(e.Tried, "no --bootstrap given")
	}
	if n := len(p.opts.KnownPeers); n > 0 {
		e.Tried = append(e.Tried, fmt.Sprintf("%d addresses of peers met before (%d peers unreachable)", n, failedKnown))
	}
	if p.opts.MDNS {
		e.Tried = append(e.Tried, "mDNS on the LAN: no peer of the run answered")
	} else {
		e.Tried = append(e.Tried, "mDNS off")
	}
	if p.kdht != nil {
		e.Tried = append(e.Tried, fmt.Sprintf("DHT: %d peers in the routing table, none of the run found", len(p.kdht.RoutingTable().ListPeers())))
	} else {
		e.Tried = append(e.Tried, "DHT off")
	}
	if others := p.otherRuns(); len(others) > 0 {
		e.Tried = append(e.Tried, "connected peers serve only other runs: "+strings.Join(others, ", "))
	}
	return e
}

func (p *Peer) otherRuns() []string {
	set := map[string]bool{}
	for _, id := range p.host.Network().Peers() {
		for _, r := range p.RunsOf(id) {
			set[quote(r)] = true
		}
	}
	var out []string
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// IsWrongRun and IsNoPeer classify AwaitRunPeer's errors.
func IsWrongRun(err error) bool { var e *WrongRunError; return errors.As(err, &e) }
func IsNoPeer(err error) bool   { var e *NoPeerError; return errors.As(err, &e) }
