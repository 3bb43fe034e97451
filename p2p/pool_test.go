package p2p

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// signV2 signs a version 2 batch exactly as given, with no check of its
// records, to build what an honest signer never would.
func signV2(t *testing.T, tag RunTag, first uint64, exp uint8, codes []int8, exts []Ext) []byte {
	t.Helper()
	key := fixedKey(t, 1)
	cs := make([]byte, len(codes))
	for i, c := range codes {
		cs[i] = byte(c)
	}
	body := rawBody(BatchVersion2, tag, key, binary.AppendUvarint(nil, first), binary.AppendUvarint(nil, uint64(len(codes))), exp, cs)
	return signRaw(key, appendExtBlock(body, exts))
}

// Extension type 2 (PROTOCOL-WIRE.md §3.3): one slot per update, carried
// into the updates; required in a FedKSeed-Pro run, forbidden elsewhere,
// each below m (Reject, reason pool); a record of another length is
// malformed.
func TestPoolSlotsWire(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	ok := func(*Batch) bool { return true }
	pro := zo.Rules{PoolChoices: 4}
	codes := []int8{1, -2, 3}
	b, err := SignBatchExt(key, tag, 40, 120, codes, []Ext{{ExtPool, []byte{0, 3, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	got, reason, err := checkBatch(b.Raw, tag, pro, ok)
	if err != nil {
		t.Fatalf("a valid Pro batch: %s %v", reason, err)
	}
	us := got.Updates()
	for i, want := range []uint8{0, 3, 1} {
		if !us[i].Slotted || us[i].Slot != want || us[i] != got.Update(i) {
			t.Fatalf("update %d: %+v, want slot %d", i, us[i], want)
		}
	}
	v1, err := SignBatch(key, tag, 40, 120, codes)
	if err != nil {
		t.Fatal(err)
	}
	if us := v1.Updates(); us[0].Slotted {
		t.Fatal("a batch without slots gave slotted updates")
	}
	high, err := SignBatchExt(key, tag, 40, 120, codes, []Ext{{ExtPool, []byte{0, 4, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		raw   []byte
		rules zo.Rules
	}{
		{"missing", v1.Raw, pro},
		{"forbidden", b.Raw, zo.Rules{}},
		{"out of range", high.Raw, pro},
	} {
		if _, reason, err := checkBatch(c.raw, tag, c.rules, ok); reason != ReasonPool || !errors.Is(err, zo.ErrPool) {
			t.Errorf("%s: reason %q (%v), want %q", c.name, reason, err, ReasonPool)
		}
	}
	if _, reason, err := checkBatch(v1.Raw, tag, zo.Rules{}, ok); err != nil {
		t.Fatalf("a v1 batch in a uniform run: %s %v", reason, err)
	}
	for _, slots := range [][]byte{{0, 1}, {0, 1, 2, 3}} {
		if _, err := SignBatchExt(key, tag, 40, 120, codes, []Ext{{ExtPool, slots}}); err == nil {
			t.Errorf("%d slots for 3 updates: signed", len(slots))
		}
		raw := signV2(t, tag, 40, 120, codes, []Ext{{ExtPool, slots}})
		if _, reason, err := checkBatch(raw, tag, pro, ok); reason != ReasonMalformed || !errors.Is(err, ErrMalformed) {
			t.Errorf("%d slots for 3 updates: %q %v, want malformed", len(slots), reason, err)
		}
	}
	if _, reason, _ := checkBatch(signV2(t, tag, 40, 120, codes, []Ext{{ExtPool, nil}}), tag, pro, ok); reason != ReasonMalformed {
		t.Errorf("an empty slot record: %q, want malformed", reason)
	}
}

// Two slots for one sample are two values: evidence of equivocation, like
// two codes; the same slot again is not.
func TestPoolSlotEquivocation(t *testing.T) {
	key := fixedKey(t, 1)
	tag := NewRunTag("run")
	sign := func(first uint64, slots []byte) []byte {
		// Sample s's code is s − 5, so overlapping batches agree on codes.
		b, err := SignBatchExt(key, tag, first, 120, []int8{int8(first - 5), int8(first - 4)}, []Ext{{ExtPool, slots}})
		if err != nil {
			t.Fatal(err)
		}
		return b.Raw
	}
	a, same, other := sign(10, []byte{1, 2}), sign(11, []byte{2, 0}), sign(11, []byte{3, 0})
	order := func(x, y []byte) ([]byte, []byte) {
		if string(x) > string(y) {
			return y, x
		}
		return x, y
	}
	if _, err := NewEvidence(tag, a, same); !errors.Is(err, ErrNotEvidence) {
		t.Fatalf("agreeing slots: %v, want ErrNotEvidence", err)
	}
	ev, err := NewEvidence(tag, a, other)
	if err != nil {
		t.Fatalf("another slot for sample 11: %v", err)
	}
	if ev.Sample != 11 {
		t.Fatalf("evidence names sample %d, want 11", ev.Sample)
	}
	x, y := order(a, other)
	raw := slices.Concat([]byte{WireVersion}, tag[:], []byte{evidenceEquivocation})
	raw = binary.AppendUvarint(raw, uint64(len(x)))
	raw = append(raw, x...)
	raw = binary.AppendUvarint(raw, uint64(len(y)))
	raw = append(raw, y...)
	if !slices.Equal(raw, ev.Raw) {
		t.Fatal("evidence encoding differs from PROTOCOL-WIRE §6")
	}
	if _, err := DecodeEvidence(ev.Raw, tag); err != nil {
		t.Fatalf("decoding the evidence: %v", err)
	}
}
