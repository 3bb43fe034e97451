package testnet

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zopeer/zopeer/node"
)

// A late joiner with --snapshot-quorum 3 joins from the snapshot that the
// run's peers agree on, refusing a donor that serves a snapshot whose hash
// disagrees with the majority's pair; (the quorum is 3, not 2: the two
// honest donors' infos alone make 2 at once, before the joiner may know the
// liar, while 3 needs the liar's own announcement, by which time the liar
// is among the peers asked for offers); it then contributes, reaches
// the same hash as everyone, and a background full replay of the
// snapshot's updates confirms it.
func TestSnapshotJoinRefusesLyingDonor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := newNet(t)
	addNodes(t, ctx, n, 2, "--steps", "20")
	liar, err := n.Add(ctx, "--steps", "-1", "--test-snapshot-lie")
	if err != nil {
		t.Fatal(err)
	}
	before := converged(t, ctx, n)
	total := before[0].Updates
	j, err := n.Add(ctx, "--steps", "2", "--snapshot-quorum", "3", "--snapshot-verify")
	if err != nil {
		t.Fatal(err)
	}
	st := awaitSnapshot(t, ctx, j)
	s := st.Snapshot
	ls, err := liar.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Updates != total || s.Verify != "verified" || !slices.Contains(s.Refused, ls.PeerID) || slices.Contains(s.Donors, ls.PeerID) || s.Votes < 3 {
		t.Fatalf("snapshot status %+v: want %d updates, verified, the liar %s refused and not a donor", s, total, ls.PeerID)
	}
	t.Logf("joined by snapshot of %d updates in %.2fs from %d donors (%d votes)", s.Updates, s.Seconds, len(s.Donors), s.Votes)
	sts := converged(t, ctx, n)
	checkTotals(t, sts, 20*16, 20*16, 0, 32)
}

// A donor that serves the majority's pair but sends wrong bytes
// (--test-snapshot-corrupt) cannot stop a snapshot join. The joiner knows
// only the corrupt donor at first (its one bootstrap), so its first fetch
// takes the corrupt bytes: they do not hash to the pair, the joiner takes
// the snapshot whole from one donor at a time and refuses the corrupt one.
// An honest peer started after that dials the joiner, and the joiner
// installs the true snapshot from it.
func TestSnapshotJoinRefusesCorruptDonor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := newNet(t)
	addNodes(t, ctx, n, 2, "--steps", "20")
	bad, err := n.Add(ctx, "--steps", "-1", "--test-snapshot-corrupt")
	if err != nil {
		t.Fatal(err)
	}
	total := converged(t, ctx, n)[0].Updates
	bs, err := bad.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for !served(t, bad, total) {
		if ctx.Err() != nil {
			t.Fatal("the corrupt donor never served the agreed snapshot")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Idle peers re-announce every 10 state intervals, so the quorum and
	// then the late honest donor's agreement can each take 10 s:
	// --state-every 5s stretches the joiner's wait for a snapshot from 30 s
	// to 50 s.
	j, err := n.Add(ctx, "--steps", "2", "--snapshot-quorum", "3", "--snapshot-verify", "--bootstrap", Boot(bad), "--state-every", "5s")
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, err := j.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Snapshot; s != nil && slices.Contains(s.Refused, bs.PeerID) {
			break
		}
		if s := st.Snapshot; s != nil && (s.State == "installed" || s.State == "fallback") || ctx.Err() != nil {
			t.Fatalf("the joiner did not refuse the corrupt donor: %+v", st.Snapshot)
		}
		time.Sleep(100 * time.Millisecond)
	}
	honest, err := n.Add(ctx, "--steps", "-1") // bootstraps to every peer, the joiner included
	if err != nil {
		t.Fatal(err)
	}
	hs, err := honest.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := awaitSnapshot(t, ctx, j).Snapshot
	if s.Updates != total || s.Verify != "verified" || !slices.Equal(s.Donors, []string{hs.PeerID}) {
		t.Fatalf("snapshot status %+v: want %d updates, verified, from %s only", s, total, hs.PeerID)
	}
	t.Logf("refused the corrupt donor, joined by snapshot of %d updates from the honest one in %.2fs (%d votes)", s.Updates, s.Seconds, s.Votes)
	sts := converged(t, ctx, n)
	checkTotals(t, sts, 20*16, 20*16, 0, 32, 0)
}

// served reports whether d's log says it serves the agreed snapshot of
// updates updates.
func served(t *testing.T, d *Node, updates uint64) bool {
	t.Helper()
	b, err := os.ReadFile(d.Log)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("updates=%d", updates)
	return slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
		return strings.Contains(l, `msg="serving an agreed snapshot"`) && strings.HasSuffix(l, want)
	})
}

// While the run trains on without pause, peers' current states differ by the
// updates in flight, but the donors keep serving the checkpoint they agreed
// on: their snapshot infos attest it, so a joiner with --snapshot-quorum 2
// still installs it (then applies the tail) instead of falling back.
func TestSnapshotJoinWhileTraining(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := newNet(t)
	addNodes(t, ctx, n, 2, "--steps", "20")
	agreed := converged(t, ctx, n)[0].Updates
	// Both donors agree on the state before the run moves on: each serves
	// its checkpoint of it once it heard the other announce the same pair.
	for _, d := range n.Nodes() {
		for !served(t, d, agreed) {
			if ctx.Err() != nil {
				t.Fatalf("%s never served the agreed snapshot", d.Name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	trainer, err := n.Add(ctx, "--steps", "0") // never stops
	if err != nil {
		t.Fatal(err)
	}
	for { // the run has moved past the agreed state
		st, err := trainer.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Updates > agreed+64 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the trainer never contributed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	j, err := n.Add(ctx, "--steps", "-1", "--snapshot-quorum", "2", "--snapshot-verify")
	if err != nil {
		t.Fatal(err)
	}
	st := awaitSnapshot(t, ctx, j)
	if s := st.Snapshot; s.Updates < agreed || s.Verify != "verified" || s.Votes < 2 {
		t.Fatalf("snapshot status %+v: want at least the %d agreed updates, verified, 2 votes", s, agreed)
	}
	t.Logf("joined by snapshot of %d updates (agreed at %d) while the run trained on, %d votes", st.Snapshot.Updates, agreed, st.Snapshot.Votes)
}

// awaitSnapshot waits until the joiner j installed a snapshot and its
// background replay has a verdict; a fallback to full replay fails the test.
func awaitSnapshot(t *testing.T, ctx context.Context, j *Node) node.Status {
	t.Helper()
	for {
		st, err := j.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Snapshot; s != nil && s.State == "installed" && s.Verify != "" && s.Verify != "replaying" {
			return st
		}
		if s := st.Snapshot; s != nil && s.State == "fallback" {
			t.Fatalf("the joiner fell back to a full replay: %s", s.Error)
		}
		if ctx.Err() != nil {
			t.Fatalf("the joiner never installed a verified snapshot: %+v", st.Snapshot)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
